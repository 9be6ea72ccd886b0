"""experiments/compare_variants.py: variants and controls paired with the default by (run, image)."""

import csv
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "experiments"))
import compare_variants  # pylint: disable=g-import-not-at-top,wrong-import-position


def _write(path, scores):
  """scores: method -> dice of image i is scores[method] + i / 10, the same in both runs."""
  with path.open("w", newline="") as stream:
    writer = csv.DictWriter(stream, fieldnames=["run", "image", "method", "dice"])
    writer.writeheader()
    for run in ("seed0_cluster0", "seed1_cluster0"):
      for i in range(3):
        for method, score in scores.items():
          writer.writerow({"run": run, "image": f"image{i}", "method": method,
                           "dice": score + i / 10})


def test_variant_and_control_differences_are_paired_per_image(tmp_path):
  _write(tmp_path / "base_per_image.csv", {"cuts": 0.5, "colour_segments": 0.4})
  _write(tmp_path / "aug_per_image.csv", {"cuts": 0.7})
  table = compare_variants.compare(tmp_path, "base", {"augment": "aug"},
                                   controls=("colour_segments",))
  lines = table.splitlines()
  assert "| augment | 0.600 | 0.800 | +0.200 [+0.200, +0.200] | 3 | 2 |" in lines
  assert ("| default | colour_segments | 0.600 | 0.500 | +0.100 [+0.100, +0.100] | 3 | 2 |"
          in lines)
  assert ("| augment | colour_segments | 0.800 | 0.500 | +0.300 [+0.300, +0.300] | 3 | 2 |"
          in lines)
  assert "control" not in compare_variants.compare(tmp_path, "base", {"augment": "aug"})
  with pytest.raises(ValueError, match="patch_segments"):
    compare_variants.compare(tmp_path, "base", {"augment": "aug"}, controls=("patch_segments",))
