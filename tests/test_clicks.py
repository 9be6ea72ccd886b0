"""The simulated user of experiments/clicks.py: where it clicks, and the NoC it reports."""

import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
import cuts_jax
from cuts_jax import scales

sys.path.insert(0, str(REPO_ROOT / "experiments"))
import clicks  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_the_next_click_is_deep_inside_the_largest_error_and_signed():
  target = np.zeros((20, 20), bool)
  target[2:12, 2:12] = True
  mask = np.zeros_like(target)
  mask[2:12, 2:6] = True  # Misses a 10 x 6 block of the target...
  mask[15:18, 15:18] = True  # ...and spills over 9 pixels.
  point, positive = clicks.next_click(mask, target)
  assert positive and 4 <= point[0] <= 9 and point[1] in (8, 9)  # 3 px from every edge.
  mask = target.copy()
  mask[14:20, 0:20] = True  # Only a spill is left; it touches the border.
  point, positive = clicks.next_click(mask, target)
  assert not positive and point[0] == 16  # Farthest from its border, the image edge included.
  with pytest.raises(ValueError, match="nothing left"):
    clicks.next_click(target, target)


def test_a_negative_click_splits_a_merged_segment_and_noc_counts_clicks():
  # Level 0 merges the target (left) with its neighbour; level 1 separates them.
  levels = np.zeros((2, 10, 10), np.int32)
  levels[1, :, 5:] = 1
  stack = scales.ScaleStack(labels=levels, num_clusters=(1, 2), rule="fixed", fixed_clusters=1)
  target = np.zeros((10, 10), bool)
  target[:, :5] = True
  dices = clicks.simulate(lambda p, n: cuts_jax.select(stack, p, negative=n), target, (5, 2))
  assert len(dices) == clicks.MAX_CLICKS
  assert dices[0] == pytest.approx(2 * 50 / 150) and dices[1] == 1.0
  assert clicks.number_of_clicks(dices, 0.9) == 2
  assert clicks.number_of_clicks([0.5] * 10, 0.9) == 10
  summary = clicks.summary_row([{"a": dices, "b": [0.5] * 10}])
  assert summary["noc@90"][0] == pytest.approx(6.0) and summary["dice@1"][2] == 1
