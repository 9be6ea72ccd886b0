"""Two ideas for crisper regions under the click, tried on the tuning parts; snapping adopted.

    python experiments/tune_graph.py --dataset=retina --seeds=0,1,2   # about 5 min on 2 cores
    python experiments/tune_graph.py --dataset=brain --seeds=0,1,2    # about 8 min

Felzenszwalb's graph segmentation beats CUTS's scale stack under one click on the brain's
tune part, and CUTS's clusters of 31 px receptive fields blur boundaries. So:

- `fh_<features>`: Felzenszwalb at the 14 scales of `baselines.felzenszwalb_stack`, run on the
  CUTS features `segment` clusters (`features.image_features`: embeddings and smoothed image),
  on the embedding part alone, or on the image (the baseline). The features are rescaled so
  that their root-mean-square difference between neighbouring pixels equals the image's, which
  gives Felzenszwalb's `scale` the same meaning on each.
- `cuts_snapped_<superpixels>`: each level of `segment_hierarchy` (not snapped:
  `snap_scale=0`) relabelled by the majority label inside each fine superpixel of the image
  (Felzenszwalb at scale 32 or 16, or 600 SLIC superpixels), then cut into connected segments
  with the 30 px fold; `colour_snapped_fh32` the same for the colours' stack
  (`baselines.colour_stack`). The first measurement, before the option existed.
- `cuts_default`, `colour_default`: the stacks as the package now builds them with the
  config's settings (`snap_scale`, the adopted snapping: Felzenszwalb at scale 32), to check
  that the implementation gives what was measured.

Each stack gets the default scale rule (`select` with one click at the expert region's median
pixel, the paper's protocol); `*_oracle` is the best level per image (with the mask, not
label-free). Models: the tune part's (`<dataset>_tune_none_paper`, the brain's
`brain_report_none_paper` trained on every slice without labels), clustering seed = the
model's seed. The labels are read only to place the click and to score.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time

import numpy as np
from skimage import segmentation as skimage_segmentation

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "experiments"))

import clicks  # pylint: disable=g-import-not-at-top
import cuts_jax
from cuts_jax import features as features_lib
from cuts_jax import regions
from cuts_jax import scales
from cuts_jax.evaluation import baselines
from cuts_jax.evaluation import metrics
from cuts_jax.evaluation import paired

SUPERPIXELS = {
    "fh32": lambda image: scales.image_superpixels(image, 32.0),  # The adopted `snap_scale`.
    "fh16": lambda image: skimage_segmentation.felzenszwalb(
        image, scale=16, sigma=0.5, min_size=10, channel_axis=-1),
    "slic600": lambda image: skimage_segmentation.slic(
        image, n_segments=600, compactness=0.1 if image.shape[-1] == 1 else 10,
        channel_axis=-1, start_label=0),
}


def neighbour_rms(values: np.ndarray) -> float:
  """Root-mean-square Euclidean difference between 4-neighbouring pixels of (H, W, C)."""
  return float(np.sqrt(np.mean([np.mean(np.sum(np.diff(values, axis=axis) ** 2, axis=-1))
                                for axis in (0, 1)])))


def graph_stack(values: np.ndarray, like: scales.ScaleStack) -> scales.ScaleStack:
  """Felzenszwalb at `felzenszwalb_stack`'s scales on any (H, W, C) values, `like`'s rule."""
  levels = [skimage_segmentation.felzenszwalb(values, scale=float(s), sigma=0.8, min_size=20,
                                              channel_axis=-1)
            for s in baselines.FELZENSZWALB_SCALES]
  counts = [int(level.max()) + 1 for level in levels]
  order = np.argsort(counts, kind="stable")
  return scales.ScaleStack(labels=np.stack([levels[i] for i in order]),
                           num_clusters=tuple(counts[i] for i in order), rule=like.rule,
                           max_fraction=like.max_fraction)


def snapped(stack: scales.ScaleStack, superpixels: np.ndarray, fold: int) -> scales.ScaleStack:
  """Every level relabelled by its majority label in each superpixel, then connected."""
  levels = [regions.connected_segments(scales.snap_to_superpixels(labels, superpixels),
                                       min_size=fold) for labels in stack.labels]
  return scales.ScaleStack(labels=np.stack(levels).astype(np.int32),
                           num_clusters=stack.num_clusters, rule=stack.rule,
                           max_fraction=stack.max_fraction, fixed_clusters=stack.fixed_clusters)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", choices=("retina", "brain"), required=True)
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--workdir_root", default="/work/runs")
  args = parser.parse_args()
  started = time.perf_counter()
  cases, config = clicks.load_cases(args.dataset, "tune")
  fold = int(config.evaluation.min_segment_pixels)
  scores: dict[str, list[float]] = {}  # row -> each seed's mean over images
  records = []  # Per image and seed, for the paired differences.
  seeds = [int(s) for s in args.seeds.split(",")]
  for seed, params in clicks.tune_models(args.dataset, seeds, args.workdir_root):
    settings = dataclasses.replace(
        cuts_jax.SegmentSettings.from_config(config.evaluation), seed=seed)
    plain = dataclasses.replace(settings, snap_scale=None)
    per_image: dict[str, list[float]] = {}
    for case in cases:
      image = case.image if case.image.ndim == 3 else case.image[..., None]
      image = image.astype(np.float64)
      click = metrics.centre_pixel(case.target, percentile=config.evaluation.click_percentile)
      stack = cuts_jax.segment_hierarchy(params, case.image, settings=plain)
      features = features_lib.image_features(params, case.image, settings=settings)
      features = features.astype(np.float64)
      embedding = features[..., :-image.shape[-1]]
      reference = neighbour_rms(image)
      stacks = {"cuts": stack, "fh_image": graph_stack(image, stack),
                "fh_cuts_features": graph_stack(features * reference / neighbour_rms(features),
                                                stack),
                "fh_embedding": graph_stack(embedding * reference / neighbour_rms(embedding),
                                            stack)}
      colour_options = dict(num_clusters=settings.scale_num_clusters,
                            smoothing_sigma=config.evaluation.oracle_smoothing_sigma,
                            min_size=fold, size=image.shape[:2], seed=seed)
      colour = dataclasses.replace(
          baselines.colour_stack(case.image, **colour_options), rule=stack.rule,
          max_fraction=stack.max_fraction, fixed_clusters=stack.fixed_clusters)
      stacks["colour"] = colour
      if settings.snap_scale is not None:
        stacks["cuts_default"] = cuts_jax.segment_hierarchy(params, case.image,
                                                            settings=settings)
        stacks["colour_default"] = dataclasses.replace(
            baselines.colour_stack(case.image, snap=settings.snap_scale, **colour_options),
            rule=stack.rule, max_fraction=stack.max_fraction,
            fixed_clusters=stack.fixed_clusters)
      for name, superpixels in SUPERPIXELS.items():
        stacks[f"cuts_snapped_{name}"] = snapped(stack, superpixels(image), fold)
      stacks["colour_snapped_fh32"] = snapped(colour, SUPERPIXELS["fh32"](image), fold)
      for name, candidate in stacks.items():
        dice = metrics.dice(cuts_jax.select(candidate, click), case.target)
        per_image.setdefault(name, []).append(dice)
        records.append(dict(run=f"seed{seed}", image=case.name, method=name, dice=dice))
        per_image.setdefault(f"{name}_oracle", []).append(max(
            metrics.dice(cuts_jax.select(candidate, click, level=level), case.target)
            for level in range(len(candidate))))
    for name, values in per_image.items():
      scores.setdefault(name, []).append(float(np.mean(values)))
    print(f"seed {seed}: " + ", ".join(f"{n} {v[-1]:.3f}" for n, v in scores.items()),
          flush=True)
  print(f"\n{args.dataset}, tune part, {len(cases)} images, seeds {args.seeds}, "
        f"{(time.perf_counter() - started) / 60:.1f} min\n")
  print("| row | one click, mean +- std over seeds |\n| --- | --- |")
  for name, values in scores.items():
    print(f"| {name} | {np.mean(values):.3f} +- {np.std(values):.3f} |")
  for reference in ("cuts", "cuts_snapped_fh32", "cuts_default"):
    print(f"\nPaired, one click: {reference} minus each row, per image averaged over seeds, "
          "bootstrap 95% interval over images\n")
    print(paired.markdown(paired.paired_differences(records, metric="dice", reference=reference),
                          metric="dice", reference=reference))


if __name__ == "__main__":
  main()
