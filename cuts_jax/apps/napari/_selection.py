"""Clicks and what they select, without Qt: positive and negative clicks, undo, commit.

A selection is made of clicks: positive ones add the region under them,
negative ones remove it. `ClickHistory` keeps the clicks and what they were
before each change, so that the last change can be undone. `select` turns
the clicks into a mask through `cuts_jax.select`; it is the one place that
knows how the segments' multi-scale object takes several clicks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Union

import numpy as np

import cuts_jax
from cuts_jax import regions

# A granularity: a level of the segments' scales (0 finest), or "persistent"
# for the level each click's segment persists at.
Level = Union[int, str]
PERSISTENT = "persistent"


@dataclasses.dataclass(frozen=True)
class Click:
  """One click: the pixel (row, col) or voxel (i, j, k), and whether it adds or removes."""

  index: tuple[int, ...]
  positive: bool = True


class ClickHistory:
  """The clicks of the current selection, and the states before each change (for undo)."""

  def __init__(self):
    self.clicks: tuple[Click, ...] = ()
    self._past: list[tuple[Click, ...]] = []

  def _change(self, clicks: Sequence[Click]) -> bool:
    clicks = tuple(clicks)
    if clicks == self.clicks:
      return False
    self._past.append(self.clicks)
    self.clicks = clicks
    return True

  def click(self, click: Click, *, keep: bool) -> bool:
    """Adds a click; `keep` False starts a new selection with it. True when anything changed.

    A click on a point clicked before replaces that click (so a ctrl-click on
    a positive click's point turns it negative).
    """
    kept = tuple(c for c in self.clicks if c.index != click.index) if keep else ()
    return self._change(kept + (click,))

  def replace(self, clicks: Sequence[Click]) -> bool:
    """The clicks as edited elsewhere (the Points layer); undoable as one change."""
    return self._change(clicks)

  def reset(self) -> bool:
    """No clicks (undoable)."""
    return self._change(())

  def undo(self) -> bool:
    """Goes back to the clicks before the last change; False when there is none."""
    if not self._past:
      return False
    self.clicks = self._past.pop()
    return True

  def forget(self) -> None:
    """No clicks and no history (new segments: old clicks mean nothing in them)."""
    self.clicks, self._past = (), []

  @property
  def can_undo(self) -> bool:
    """Whether `undo` has something to undo."""
    return bool(self._past)


@dataclasses.dataclass(frozen=True)
class Selection:
  """What the clicks select.

  Attributes:
    mask: bool mask of the label maps' shape.
    level: the level (scale) of the segments the last positive click was
      selected at; None for segments with one scale.
    num_clusters: the clusters of that level, or None.
  """

  mask: np.ndarray
  level: Optional[int] = None
  num_clusters: Optional[int] = None


def _under(labels: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
  return np.asarray(cuts_jax.select(labels, index), bool)


def select(labels: np.ndarray, scales: Any, clicks: Sequence[Click], *,
           level: Level = PERSISTENT) -> Selection:
  """The region the clicks select: positive clicks' segments minus negative clicks' segments.

  Args:
    labels: int label map (2-D) or label volume (3-D): the segments a click
      picks from when there are no `scales`.
    scales: the multi-scale segments (a `cuts_jax.Hierarchy`), or None.
    clicks: in order; the last positive one's level is reported.
    level: with `scales`: "persistent" (each positive click at the level its
      segment persists at; negative clicks remove the finest segment under
      them, the least they can) or one level for every click.

  Returns:
    The `Selection`.
  """
  mask = np.zeros(np.shape(labels), bool)
  chosen = None
  for click in clicks:
    if scales is None:
      region = _under(labels, click.index)
    else:
      if click.positive:
        index = (regions.persistent_level(scales, click.index) if level == PERSISTENT
                 else int(level))
        chosen = index
      else:
        index = 0 if level == PERSISTENT else int(level)
      region = _under(scales.labels[index], click.index)
    if click.positive:
      mask |= region
    else:
      mask &= ~region
  if chosen is None:
    return Selection(mask)
  return Selection(mask, level=chosen, num_clusters=int(scales.num_clusters[chosen]))


def contains(shape: Sequence[int], index: Sequence[int]) -> bool:
  """Whether an integer index lies inside an array of `shape` (clicks can miss the image)."""
  return len(index) == len(shape) and all(0 <= i < s for i, s in zip(index, shape))


def next_free_label(labels: np.ndarray) -> int:
  """The label a new structure gets by default: one above the largest in use (1 when empty)."""
  return int(np.max(labels, initial=0)) + 1


def commit_indices(target: np.ndarray, mask: np.ndarray, *,
                   over_labels: bool = False) -> tuple[np.ndarray, ...]:
  """Where committing `mask` into the Labels data `target` writes.

  Args:
    target: the target layer's integer labels, of the mask's shape.
    mask: bool selection.
    over_labels: False writes only where `target` is 0, so structures
      labelled (or painted) before keep their pixels; True writes the whole
      mask.

  Returns:
    A tuple of index arrays, as `Labels.data_setitem` takes them.

  Raises:
    ValueError: the shapes differ.
  """
  if np.shape(target) != np.shape(mask):
    raise ValueError(f"the target Labels layer has shape {np.shape(target)}, the selection "
                     f"{np.shape(mask)}; pick a Labels layer of the segmented image's shape.")
  where = np.asarray(mask, bool)
  if not over_labels:
    where = where & (np.asarray(target) == 0)
  return np.nonzero(where)
