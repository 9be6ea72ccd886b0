"""Snapping `segment`'s segments to superpixels on BSDS500's tuning part, scored at full size.

    python experiments/tune_bsds_snap.py   # about 10 min on 2 shared cores (40 images)

For the 40 tuning images (the 26th to 65th image of BSDS500's `train` split in name order, as
in experiments/results/tuning_berkeley.md; `train` is the tuning part of
experiments/splits.json) and the tune-part model (`configs/berkeley.py` trained on `train`,
seed 0: `berkeley_tune_none_paper/seed0`), the rows are

- `off`: `cuts_jax.segment(params, image, snap_scale=0)`, the segments as clustered;
- `snap <s>`: `cuts_jax.segment(params, image, snap_scale=s)` for each of --scales: the
  segments snapped to the superpixels of the image as it is segmented (128 x 128);
- `full-size snap <s> (prototype)`: `off`'s map, already at the image's own 481 x 321 size,
  snapped to Felzenszwalb superpixels of the full-size image (`scales.image_superpixels`
  at scale s, for each of --full_scales) and cut again into connected segments with pieces
  under the configured share (2%) of the full image's pixels folded. Not a package feature.

k and the fold are the model's (k = 6, 2%). Every row is scored against every human
segmentation at the image's own size by the independent scorer's own functions
(`../shared/tools/score_bsds.py`: `rand_index`, `voi` in bits, `human_segmentations`,
imported from that file), averaged over the humans. Printed: a Markdown table with each row's
mean PRI, VoI and segments per image, and its paired differences against `off` (row minus
`off`, 95% bootstrap interval over images, `cuts_jax.evaluation.paired`). --csv keeps the
per-image scores. The labels are read only to score.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import pathlib
import sys
import time

import numpy as np
from PIL import Image

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import cuts_jax  # pylint: disable=g-import-not-at-top
from cuts_jax import regions
from cuts_jax import scales
from cuts_jax.evaluation import paired

SHARED = REPO_ROOT.parent / "shared"


def _scorer(path: pathlib.Path):
  """The independent BSDS500 scorer, imported from its file (its functions, not a copy)."""
  spec = importlib.util.spec_from_file_location("score_bsds", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _full_size_snap(labels: np.ndarray, image: np.ndarray, scale: float,
                    fraction: float) -> np.ndarray:
  """`labels` (at the image's size) snapped to the full-size image's superpixels, re-cut."""
  superpixels = scales.image_superpixels(image.astype(np.float64) / 255.0, scale)
  return regions.connected_segments(scales.snap_to_superpixels(labels, superpixels),
                                    min_size=max(1, round(fraction * labels.size)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", default="/work/runs/berkeley_tune_none_paper/seed0")
  parser.add_argument("--data_root", default=str(SHARED / "data" / "bsds500"))
  parser.add_argument("--scorer", default=str(SHARED / "tools" / "score_bsds.py"))
  parser.add_argument("--first", type=int, default=25, help="0-based index of the first image")
  parser.add_argument("--count", type=int, default=40)
  parser.add_argument("--scales", default="16,32,64,128")
  parser.add_argument("--full_scales", default="100,300")
  parser.add_argument("--csv", default="", help="where to write the per-image scores")
  args = parser.parse_args()
  score = _scorer(pathlib.Path(args.scorer))
  params = cuts_jax.load(args.workdir)
  fraction = params.settings.min_segment_fraction
  snap_scales = [float(s) for s in args.scales.split(",") if s]
  full_scales = [float(s) for s in args.full_scales.split(",") if s]
  root = pathlib.Path(args.data_root)
  paths = sorted((root / "images" / "train").glob("*.jpg"))[args.first:args.first + args.count]
  records = []
  started = time.perf_counter()
  for number, path in enumerate(paths):
    image = np.asarray(Image.open(path).convert("RGB"))
    humans = score.human_segmentations(root / "groundTruth" / "train" / (path.stem + ".mat"))
    off = np.asarray(cuts_jax.segment(params, image, snap_scale=0))
    maps = {"off": off}
    for s in snap_scales:
      maps[f"snap {s:g}"] = np.asarray(cuts_jax.segment(params, image, snap_scale=s))
    for s in full_scales:
      maps[f"full-size snap {s:g} (prototype)"] = _full_size_snap(off, image, s, fraction)
    for name, labels in maps.items():
      records.append(dict(
          run="seed0", image=path.stem, method=name,
          pri=float(np.mean([score.rand_index(labels, h) for h in humans])),
          voi=float(np.mean([score.voi(labels, h) for h in humans])),
          segments=len(np.unique(labels))))
    print(f"{number + 1}/{len(paths)} {path.stem} "
          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
  if args.csv:
    with open(args.csv, "w", newline="") as handle:
      writer = csv.DictWriter(handle, fieldnames=list(records[0]))
      writer.writeheader()
      writer.writerows(records)
  names = list(dict.fromkeys(r["method"] for r in records))
  print(f"BSDS500 tune part (`train`), images {args.first + 1}-{args.first + len(paths)} in "
        f"name order ({len(paths)}), model {args.workdir}, k {params.settings.num_clusters}, "
        f"fold {fraction:.0%}; {time.perf_counter() - started:.0f} s\n")
  print("| setting | PRI | VoI | segments per image | PRI minus off [95%] "
        "| VoI minus off [95%] |")
  print("| --- | --- | --- | --- | --- | --- |")
  for name in names:
    mine = [r for r in records if r["method"] == name]
    cells = [f"{np.mean([r['pri'] for r in mine]):.3f}",
             f"{np.mean([r['voi'] for r in mine]):.3f}",
             f"{np.mean([r['segments'] for r in mine]):.1f}"]
    for metric in ("pri", "voi"):
      if name == "off":
        cells.append("")
        continue
      row = paired.paired_differences(records, metric=metric, reference=name,
                                      methods=["off"])["off"]
      cells.append(f"{row.difference:+.3f} [{row.low:+.3f}, {row.high:+.3f}]")
    print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
