"""Paired differences between methods with a bootstrap interval over images."""

import math

import numpy as np
import pytest

from cuts_jax.evaluation import paired


def _records(differences, runs=("a", "b")):
  records = []
  for index, difference in enumerate(differences):
    for run in runs:
      records.append(dict(run=run, image=f"i{index}", method="cuts", dice=0.5 + difference))
      records.append(dict(run=run, image=f"i{index}", method="other", dice=0.5))
  return records


def test_a_constant_difference_has_a_zero_width_interval():
  table = paired.paired_differences(_records([0.1] * 5), metric="dice")
  row = table["other"]
  assert row.difference == pytest.approx(0.1)
  assert row.low == pytest.approx(0.1) and row.high == pytest.approx(0.1)
  assert (row.num_images, row.num_runs) == (5, 2)
  assert row.reference_mean == pytest.approx(0.6) and row.method_mean == pytest.approx(0.5)


def test_runs_are_averaged_per_image_and_missing_pairs_are_left_out():
  records = [dict(run="a", image="x", method="cuts", dice=0.9),
             dict(run="b", image="x", method="cuts", dice=0.7),
             dict(run="a", image="x", method="other", dice=0.5),
             dict(run="b", image="x", method="other", dice=0.3),
             # Image y: only the reference was scored (and a NaN and an empty cell).
             dict(run="a", image="y", method="cuts", dice=0.1),
             dict(run="b", image="y", method="other", dice=math.nan),
             dict(run="a", image="y", method="other", dice="")]
  row = paired.paired_differences(records, metric="dice")["other"]
  assert row.num_images == 1 and row.difference == pytest.approx(0.4)


def test_the_interval_covers_the_mean_and_widens_with_spread():
  rng = np.random.default_rng(0)
  narrow = paired.paired_differences(_records(0.05 + 0.01 * rng.standard_normal(20)),
                                     metric="dice")["other"]
  wide = paired.paired_differences(_records(0.05 + 0.2 * rng.standard_normal(20)),
                                   metric="dice")["other"]
  for row in (narrow, wide):
    assert row.low < row.difference < row.high
  assert narrow.low > 0 and wide.high - wide.low > 5 * (narrow.high - narrow.low)
  text = paired.markdown({"other": narrow}, metric="dice")
  assert "| other |" in text and "[+0.0" in text


def test_errors_name_the_problem():
  with pytest.raises(ValueError, match="reference"):
    paired.paired_differences([dict(run="a", image="x", method="other", dice=1.0)],
                              metric="dice")
  with pytest.raises(ValueError, match="num_resamples"):
    paired.paired_differences(_records([0.1]), metric="dice", num_resamples=0)
