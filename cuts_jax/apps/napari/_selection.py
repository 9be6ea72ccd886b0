"""Clicks and what they select, without Qt: positive and negative clicks, undo, commit.

A selection is made of clicks: positive ones add the region under them,
negative ones remove it. `ClickHistory` keeps the clicks and what they were
before each change, so that the last change can be undone. `select` turns
the clicks into a mask with one call of `cuts_jax.select` (on a 2-D image's
`ScaleStack`, by the scale rule or at one level).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np
from scipy import ndimage

import cuts_jax


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
    level: the stack level that matches the last positive click's region
      best (the largest overlap over union), or None without a stack.
    num_clusters: that level's k, or None.
  """

  mask: np.ndarray
  level: Optional[int] = None
  num_clusters: Optional[int] = None


def _closest_level(stack: Any, mask: np.ndarray, click: tuple[int, ...]) -> int:
  """The level whose segment under `click` overlaps the selected region there the most (IoU)."""
  region = mask
  if mask[click]:
    components, _ = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))
    region = components == components[click]
  clicked = stack.labels == stack.labels[(slice(None),) + click][(slice(None),)
                                                                 + (None,) * mask.ndim]
  overlap = np.logical_and(clicked, region).reshape(len(stack), -1).sum(axis=1)
  union = np.logical_or(clicked, region).reshape(len(stack), -1).sum(axis=1)
  return int(np.argmax(overlap / np.maximum(union, 1)))


def select(labels: np.ndarray, stack: Any, clicks: Sequence[Click], *,
           rule: Optional[str] = None, level: Optional[int] = None) -> Selection:
  """The region the clicks select: `cuts_jax.select` with the positive and negative clicks.

  Args:
    labels: int label map (2-D) or label volume (3-D): the segments clicks
      pick from when there is no `stack`.
    stack: a 2-D image's `cuts_jax.ScaleStack`, or None.
    clicks: the clicks; nothing is selected without a positive one.
    rule: with a stack: the scale rule (one of `cuts_jax.SegmentSettings`'
      scale rules); None: the stack's (the model's).
    level: with a stack, instead of the rule: this level for every click.

  Returns:
    The `Selection`.
  """
  positive = [c.index for c in clicks if c.positive]
  negative = [c.index for c in clicks if not c.positive]
  if not positive:
    return Selection(np.zeros(np.shape(labels), bool))
  if stack is None:
    return Selection(np.asarray(cuts_jax.select(labels, positive, negative=negative), bool))
  options = {"level": int(level)} if level is not None else {"rule": rule}
  mask = np.asarray(cuts_jax.select(stack, positive, negative=negative, **options), bool)
  chosen = int(level) if level is not None else _closest_level(stack, mask, positive[-1])
  return Selection(mask, level=chosen, num_clusters=int(stack.num_clusters[chosen]))


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
