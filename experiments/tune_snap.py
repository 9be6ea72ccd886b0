"""`segment`'s flat map snapped to the image's superpixels, on a tuning part (the paper's click).

    python experiments/tune_snap.py --dataset=retina   # about 2 min on 2 cores
    python experiments/tune_snap.py --dataset=brain    # about 3 min

For each of the tune part's images and each of the 3 tune models (`<dataset>_tune_none_paper`;
the brain's `brain_report_none_paper`, trained on every slice without labels; clustering seed
= training seed), the one-pixel Dice of three label maps at the config's k:

- `flat`: `segment` with `snap_scale=0` (the connected segments as clustered);
- `flat_snapped`: that map snapped here, by `scales.snap_to_superpixels` on Felzenszwalb
  superpixels of the image at scale 32, then re-cut into connected segments with the fold;
- `default`: `segment` with the config's settings (`snap_scale`), which must equal
  `flat_snapped` when the config snaps at 32.

Printed: the paired differences, `flat_snapped` minus each row, with a bootstrap 95% interval
over images. The labels are read only to place the click and to score.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "experiments"))

import clicks  # pylint: disable=g-import-not-at-top
import cuts_jax
from cuts_jax import features as features_lib
from cuts_jax import regions
from cuts_jax import scales
from cuts_jax.evaluation import metrics
from cuts_jax.evaluation import paired


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", choices=("retina", "brain"), required=True)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--workdir_root", default="/work/runs")
  args = parser.parse_args()
  cases, config = clicks.load_cases(args.dataset, "tune")
  records = []
  seeds = [int(s) for s in args.seeds.split(",")]
  for seed, params in clicks.tune_models(args.dataset, seeds, args.workdir_root):
    settings = dataclasses.replace(
        cuts_jax.SegmentSettings.from_config(config.evaluation), seed=seed)
    plain = dataclasses.replace(settings, snap_scale=None)
    for case in cases:
      flat = cuts_jax.segment(params, case.image, settings=plain)
      prepared = features_lib.image_to_segment(params, case.image, settings=plain)
      superpixels = scales.image_superpixels(prepared, 32.0)
      snapped = regions.connected_segments(scales.snap_to_superpixels(flat, superpixels),
                                           min_size=settings.fold_threshold(flat.size))
      maps = {"flat": flat, "flat_snapped": snapped,
              "default": cuts_jax.segment(params, case.image, settings=settings)}
      for name, labels in maps.items():
        dice = metrics.dice_one_pixel(labels, case.target,
                                      percentile=config.evaluation.click_percentile)
        records.append(dict(run=f"seed{seed}", image=case.name, method=name, dice=dice))
  print(f"{args.dataset}, tune part, {len(cases)} images, seeds {args.seeds}\n")
  table = paired.paired_differences(records, metric="dice", reference="flat_snapped")
  print(paired.markdown(table, metric="dice", reference="flat_snapped"))


if __name__ == "__main__":
  main()
