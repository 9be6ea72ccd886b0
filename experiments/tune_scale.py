"""Choosing the scale rule on the tuning parts: every rule, size limit and fold threshold tried.

    python experiments/tune_scale.py --dataset=retina     # about 3 min on 2 cores
    python experiments/tune_scale.py --dataset=brain      # about 8 min

On the `tune` part of experiments/splits.json (retina: its 14 images with the tune model;
brain: the slices of the tune hemisphere that cross the ventricles, with the model trained on
every slice), each image's CUTS features are computed once and clustered once at each
k = 2..15 (clustering seed 0); the stacks of every fold threshold are cut from those
clusterings (`regions.pieces_and_segments`). Each variant is scored by its one-click Dice
(the paper's median-pixel click) and the simulated user's NoC@85/90 (experiments/clicks.py).
The rows are appended to experiments/results/tuning_scale.md under a heading per data set.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
import time

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "experiments"))

import clicks  # pylint: disable=g-import-not-at-top
import cuts_jax
from cuts_jax import clustering
from cuts_jax import features as features_lib
from cuts_jax import pixels
from cuts_jax import regions
from cuts_jax import scales
from cuts_jax.evaluation import metrics

KS = tuple(range(2, 16))
FOLD_THRESHOLDS = (82, 30, 15)  # 82 px = the former 0.5% of 128 x 128.
RULES = ("consensus", "medoid", "stability")
MAX_FRACTIONS = (0.15, 0.25, 0.5)


def _stack(clusterings: list[np.ndarray], size, min_size: int, keep: bool) -> scales.ScaleStack:
  pieces, labels = [], []
  for clusters in clusterings:
    piece_map, segment_map = regions.pieces_and_segments(clusters, min_size=min_size)
    pieces.append(regions.renumber(pixels.resize_labels(piece_map, size)))
    labels.append(regions.renumber(pixels.resize_labels(segment_map, size)))
  return scales.ScaleStack(labels=np.stack(labels), num_clusters=KS,
                           pieces=np.stack(pieces) if keep else None,
                           folded_below=min_size if keep else 1)


def tune_cases(dataset: str, *, workdir_root: str, cache_dir: str = "", stride: int = 1):
  """Yields (case, its clusterings at each k of `KS`, the first click) of the tune part.

  The model is the seed 0 one (the brain's trained on every slice); clustering seed 0. With
  `cache_dir`, each image's clusterings are kept there and reused on a rerun.
  """
  cases, config = clicks.load_cases(dataset, "tune")
  trained_part = "report" if dataset == "brain" else "tune"
  params = settings = None
  for case in cases[::stride]:
    cache = pathlib.Path(cache_dir) / f"{dataset}_{case.name}.npz" if cache_dir else None
    if cache is not None and cache.exists():
      clusterings = list(np.load(cache)["clusterings"])
    else:
      if params is None:
        params = cuts_jax.load(pathlib.Path(workdir_root) / f"{dataset}_{trained_part}_none_paper"
                               / "seed0")
        settings = cuts_jax.SegmentSettings.from_config(config.evaluation)
      features = features_lib.image_features(params, case.image, settings=settings)
      clusterings = [clustering.cluster_image(features, num_clusters=k, method=settings.method,
                                              seed=0) for k in KS]
      if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, clusterings=np.stack(clusterings))
    yield case, clusterings, metrics.centre_pixel(
        case.target, percentile=config.evaluation.click_percentile)


def write_section(output: pathlib.Path, heading: str, lines: list[str]) -> None:
  """Appends `lines` to the tuning notes, replacing an earlier section that starts with
  `heading` (a rerun replaces its own section)."""
  text = output.read_text() if output.exists() else (
      "# Tuning the scale rule (cuts_jax.scales)\n\nEvery variant tried, on the tune parts only "
      "(experiments/splits.json); the report parts' numbers are in clicks_*_report.md.\n")
  if heading in text:
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    text = text[:start] + text[end + 1:] if end >= 0 else text[:start]
  output.write_text(text.rstrip() + "\n\n" + "\n".join(lines) + "\n")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", choices=("retina", "brain"), required=True)
  parser.add_argument("--workdir_root", default="/work/runs")
  parser.add_argument("--cache_dir", default="",
                      help="keep each image's clusterings here and reuse them on a rerun")
  parser.add_argument("--stride", type=int, default=1,
                      help="score every stride-th image of the part (to save time)")
  parser.add_argument("--output", default=str(REPO_ROOT / "experiments" / "results" /
                                              "tuning_scale.md"))
  args = parser.parse_args()
  started = time.perf_counter()
  variants = {}  # name -> (fold threshold, keep pieces, rule, max fraction or k, negatives)
  for fold in FOLD_THRESHOLDS:
    variants[f"fixed k=10, fold {fold} px"] = (fold, False, "fixed", 10, "both")
    variants[f"oracle k, fold {fold} px"] = (fold, True, "oracle", None, None)
    for rule in RULES:
      variants[f"{rule}, max 25%, fold {fold} px"] = (fold, True, rule, 0.25, "both")
  for rule in RULES:
    for fraction in MAX_FRACTIONS:
      for negatives in scales.NEGATIVE_MODES:
        variants[f"{rule}, max {fraction:.0%}, negatives {negatives}, fold 30 px"] = (
            30, True, rule, fraction, negatives)
  variants["fixed k=10, negatives exclude, fold 30 px"] = (30, False, "fixed", 10, "exclude")
  variants["consensus, max 25%, fold 30 px, small pieces folded"] = (
      30, False, "consensus", 0.25, "both")
  variants["fixed k=10, fold 30 px, small clicked piece kept"] = (30, True, "fixed", 10, "both")
  scores = {name: [] for name in variants}
  cases = list(tune_cases(args.dataset, workdir_root=args.workdir_root, cache_dir=args.cache_dir,
                          stride=args.stride))
  for index, (case, clusterings, first) in enumerate(cases):
    stacks = {}
    for name, (fold, keep, rule, option, negatives) in variants.items():
      if (fold, keep) not in stacks:
        stacks[(fold, keep)] = _stack(clusterings, case.image.shape[:2], fold, keep)
      stack = stacks[(fold, keep)]
      if rule == "oracle":
        scores[name].append([clicks.one_click_oracle(stack, case.target, first)] * 10)
        continue
      options = dict(rule="fixed", fixed_clusters=option) if rule == "fixed" else \
          dict(rule=rule, max_fraction=option)
      options["negatives"] = negatives
      scores[name].append(clicks.simulate(
          lambda p, n, s=stack, o=options: scales.choose_region(s, p, negative=n, **o), case.target,
          first))
    print(f"[{index + 1}/{len(cases)}] {case.name}", flush=True)
  wall = time.perf_counter() - started
  noc = (0.85, 0.90)
  lines = [f"## {args.dataset}: tune part ({len(cases)} images), model seed 0, clustering "
           f"seed 0", "",
           f"{datetime.date.today().isoformat()}, `python experiments/tune_scale.py "
           f"--dataset={args.dataset}" + (f" --stride={args.stride}" if args.stride > 1 else "")
           + f"` ({wall / 60:.1f} min). One click: the median pixel; "
           "NoC: the simulated user of experiments/clicks.py (at most 10 clicks). Oracle rows "
           "choose the level with the mask (not label-free).", "",
           "| variant | dice@1 | dice@3 | NoC@85 | NoC@90 |", "| --- | --- | --- | --- | --- |"]
  for name, curves in scores.items():
    curves = np.array(curves)
    cells = [f"{curves[:, 0].mean():.3f}", f"{curves[:, 2].mean():.3f}"] + [
        "-" if name.startswith("oracle") else
        f"{np.mean([clicks.number_of_clicks(c, t) for c in curves]):.2f}" for t in noc]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  write_section(pathlib.Path(args.output), f"## {args.dataset}:", lines)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
