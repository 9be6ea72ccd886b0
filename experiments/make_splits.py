"""Draws experiments/splits.json once: which images settings are chosen on, which are reported.

    python experiments/make_splits.py      # rewrites splits.json; the committed file rules

The split is a seeded shuffle of the file names, drawn before any result was looked at:
- retina: 14 tuning and 14 report images (of the 28 in ../shared/data/retina_ga);
- bsds500: BSDS500's own splits, tuning on `train` and reporting on `val`;
- brain: trained on every slice; reported on the slices that cross the ventricles (chosen
  with the labels at scoring time, never for training). The one volume has no tuning part:
  its settings come from the retina and BSDS500 tuning parts.
"""

import json
import pathlib
import re

import numpy as np

SEED = 20261201
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
OUTPUT = pathlib.Path(__file__).resolve().parent / "splits.json"


def _number(name: str) -> int:
  return int(re.sub(r"\D", "", name))


def main() -> None:
  retina = sorted((SHARED / "retina_ga" / "image_with_GA").glob("image*.png"), key=lambda path: _number(path.stem))
  names = [path.stem for path in retina]
  order = np.random.default_rng(SEED).permutation(len(names))
  half = len(names) // 2
  splits = {
      "seed": SEED,
      "retina": {"tune": sorted((names[i] for i in order[:half]), key=_number),
                 "report": sorted((names[i] for i in order[half:]), key=_number)},
      "bsds500": {"tune": ["train"], "report": ["val"]},
      "brain": {"train": "all slices along data.axis",
                "report": "slices along data.axis with at least one ventricle voxel"},
  }
  OUTPUT.write_text(json.dumps(splits, indent=2) + "\n")
  print(f"wrote {OUTPUT}")


if __name__ == "__main__":
  main()
