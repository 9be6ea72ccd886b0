"""Draws experiments/splits.json once: which images settings are chosen on, which are reported.

    python experiments/make_splits.py      # rewrites splits.json; the committed file rules

The retina split is a seeded shuffle of the file names, drawn once (2026-12-01). It was
not drawn before every choice: four settings were chosen on all 28 retina images, report
part included, before it was drawn: 300 training steps, 64 px training crops, reflect
padding, and the reconstruction space for clustering. Later choices were made on the tuning
part only (experiments/results/tuning_*.md). The four were re-checked on the tuning part on
2026-12-07 (experiments/results/tuning_network.md, last section): each holds.
- retina: 14 tuning and 14 report images (of the 28 in ../shared/data/retina_ga);
- bsds500: BSDS500's own splits, tuning on `train` and reporting on `val`;
- brain (added 2026-12-06): trained on every slice along axis 0 (sagittal); the slices of one
  hemisphere are the tuning part and those of the other the report part, the side drawn with
  the seed. The midline is the centre of the brain along axis 0 (the mean index of its
  non-zero voxels), found without labels. Slices are scored where they cross the ventricles
  (chosen with the labels at scoring time, never for training).
"""

import json
import pathlib
import re

import numpy as np

SEED = 20261201
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
BRAIN_AXIS = 0
OUTPUT = pathlib.Path(__file__).resolve().parent / "splits.json"


def _number(name: str) -> int:
  return int(re.sub(r"\D", "", name))


def main() -> None:
  retina = sorted((SHARED / "retina_ga" / "image_with_GA").glob("image*.png"), key=lambda path: _number(path.stem))
  names = [path.stem for path in retina]
  order = np.random.default_rng(SEED).permutation(len(names))
  half = len(names) // 2
  with np.load(SHARED / "brain_mri" / "test_scan.npz") as archive:
    volume = archive["vol"]
  other_axes = tuple(axis for axis in range(3) if axis != BRAIN_AXIS)
  weights = (volume > 0).sum(axis=other_axes)
  midline = int(round(float(np.average(np.arange(len(weights)), weights=weights))))
  halves = [[0, midline], [midline, len(weights)]]
  tune_side = int(np.random.default_rng([SEED, 1]).integers(2))
  splits = {
      "seed": SEED,
      "retina": {"tune": sorted((names[i] for i in order[:half]), key=_number),
                 "report": sorted((names[i] for i in order[half:]), key=_number)},
      "bsds500": {"tune": ["train"], "report": ["val"]},
      "brain": {"train": "all slices along data.axis",
                "axis": BRAIN_AXIS,
                "midline": midline,
                "tune": halves[tune_side],
                "report": halves[1 - tune_side],
                "scored": "slices of the part with at least one ventricle voxel"},
  }
  OUTPUT.write_text(json.dumps(splits, indent=2) + "\n")
  print(f"wrote {OUTPUT}")


if __name__ == "__main__":
  main()
