"""A volume's segments snapped to its slices' superpixels, on the brain's tune hemisphere.

    python experiments/tune_volume_snap.py --cache=DIR   # about 5 min on 2 cores (3 models)

For each model (`brain_report_none_paper/seed<k>`, trained on every slice without labels;
clustering seed = k), the 3-D scale stack (`volume.stack_from_volume_features`, k = 2..15)
is built twice from the same kept features: as clustered (`snap_scale` None) and snapped
(the settings' `snap_scale`: each slice's superpixels, `volume_features.grid_superpixels`).
Each is clicked at the tune hemisphere's protocol voxel (`brain_volume.hemisphere_protocol`)
and at 16 voxels of its lateral ventricle's rim (`tune_volume.rim_clicks`), the mask kept
inside the hemisphere and scored against its ventricle mask. Printed: one JSON line per model
and variant (Dice of the protocol click, mean over the rim clicks and over all 17 clicks,
seconds to build the stack), then the means over the models. The labels are read only to
place the clicks and to score.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "experiments"))

import numpy as np  # pylint: disable=g-import-not-at-top

import brain_volume  # pylint: disable=g-import-not-at-top
import tune_volume  # pylint: disable=g-import-not-at-top
from configs import brain_ventricles  # pylint: disable=g-import-not-at-top
from cuts_jax import segmentation
from cuts_jax import volume as volume_lib
from cuts_jax import volume_features
from cuts_jax.evaluation import metrics


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdirs", default=",".join(
      f"/work/runs/brain_report_none_paper/seed{seed}" for seed in range(3)))
  parser.add_argument("--data_root", default=str(brain_volume.DEFAULT_DATA))
  parser.add_argument("--cache", default="", help="keep the volume's features on disk here")
  args = parser.parse_args()
  volume, target = brain_volume.load_scan(args.data_root)
  inside, part_target, click = brain_volume.hemisphere_protocol(target, "tune")
  clicks = tune_volume.protocol_and_rim_clicks(part_target, click)
  cache = volume_features.FeatureCache(directory=args.cache or None)
  workdirs = [pathlib.Path(w) for w in args.workdirs.split(",")]
  rows = []
  for index, (_, _, params, _) in enumerate(
      brain_volume.trained_models(workdirs, brain_ventricles.get_config())):
    settings = segmentation.resolve_settings(params, seed=index)
    kept = volume_features.volume_features(params, volume, axis=0, cache=cache,
                                           settings=settings)
    for name, chosen in (("as clustered", dataclasses.replace(settings, snap_scale=None)),
                         (f"snapped at {settings.snap_scale:g}", settings)):
      started = time.perf_counter()
      stack = volume_lib.stack_from_volume_features(kept, settings=chosen, cache=cache)
      seconds = time.perf_counter() - started
      dices = [metrics.dice(volume_lib.select_voxels(kept, stack, [voxel]) & inside, part_target)
               for voxel in clicks]
      rows.append(dict(model=index, variant=name, protocol=dices[0],
                       rim=float(np.mean(dices[1:])), all=float(np.mean(dices)),
                       build_s=seconds))
      print(json.dumps(rows[-1]), flush=True)
  print("\n| variant | protocol click | rim clicks | all clicks | stack (s) |")
  print("| --- | --- | --- | --- | --- |")
  for name in dict.fromkeys(r["variant"] for r in rows):
    mine = [r for r in rows if r["variant"] == name]
    print(f"| {name} | " + " | ".join(f"{np.mean([r[c] for r in mine]):.3f}"
                                       for c in ("protocol", "rim", "all"))
          + f" | {np.mean([r['build_s'] for r in mine]):.0f} |")


if __name__ == "__main__":
  main()
