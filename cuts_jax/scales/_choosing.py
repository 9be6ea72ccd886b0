"""The region one or several clicks mean in a `ScaleStack` (`choose_region`; rules in `cuts_jax.scales`)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from scipy import ndimage

from cuts_jax import _validation
from cuts_jax.scales._stack import RULES
from cuts_jax.scales._stack import ScaleStack

# How several clicks combine (`choose_region`'s `negatives`): "bounded" edits the mask click by
# click; the other three choose each click's region on its own.
NEGATIVE_MODES = ("bounded", "exclude", "subtract", "both")
# A local edit's disc reaches at most this many times the click's distance to the mask's edge
# (plus one pixel); chosen on the tune parts (2 against 1, 1.5 and 3: tuning_scale.md).
_REACH = 2.0
# A later positive click's level segment that does not touch the mask (a separate structure)
# may add up to this share of the mask's size (`grow` holds for segments that touch it).
_APART_SHARE = 1.0


def _component_holding(mask: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
  """The face-connected component of `mask` that holds `index` (all False when it is outside)."""
  if not mask[index]:
    return np.zeros_like(mask)
  components, _ = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))
  return components == components[index]


def _clicked_regions(stack: ScaleStack, click: tuple[int, ...], *, connected: bool) -> np.ndarray:
  """bool (L, *spatial): the region under `click` at each level (kept small pieces included)."""
  expand = (slice(None),) + (None,) * len(click)
  index = (slice(None),) + click
  regions_ = stack.labels == stack.labels[index][expand]
  if stack.pieces is not None and stack.folded_below > 1:
    piece = stack.pieces == stack.pieces[index][expand]
    sizes = piece.reshape(len(stack), -1).sum(axis=1)
    small = (sizes < stack.folded_below) & (sizes >= stack.min_kept)
    regions_[small] = piece[small]
  if connected:
    for level in range(len(stack)):
      regions_[level] = _component_holding(regions_[level], click)
  return regions_


def _holding_none(levels: np.ndarray, clicks: Sequence[tuple[int, ...]]) -> np.ndarray:
  """bool (L,): the levels whose region (rows of `levels`, bool (L, *spatial)) holds no click."""
  free = np.ones(len(levels), bool)
  for click in clicks:
    free &= ~levels[(slice(None),) + tuple(click)]
  return free


def _nearest_k(stack: ScaleStack, candidates: np.ndarray, num_clusters: int) -> int:
  """The candidate level whose k is nearest `num_clusters`, the finer one on a tie (the rule
  "fixed"; as `ScaleStack.level_of`, among `candidates` only)."""
  ks = np.asarray(stack.num_clusters)[candidates]
  return int(candidates[min(range(len(candidates)),
                            key=lambda i: (abs(ks[i] - num_clusters), -ks[i]))])


def _squared_distance(shape: tuple[int, ...], point: tuple[int, ...]) -> np.ndarray:
  """Each pixel's (voxel's) squared distance to `point`, as an array of `shape`."""
  grid = np.ogrid[tuple(slice(0, n) for n in shape)]
  return sum((axis - c) ** 2 for axis, c in zip(grid, point))


def _agreement(regions_: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """(M, L) Jaccard index of every mask (rows of `masks`) with every region (float, flat)."""
  inter = masks.astype(np.float32) @ regions_.astype(np.float32).T
  union = masks.sum(axis=1)[:, None] + regions_.sum(axis=1)[None, :] - inter
  return inter / np.maximum(union, 1)


def _consensus(regions_: np.ndarray) -> np.ndarray:
  # The vote thresholded at each count of levels (strictest first: ties keep the smaller
  # mask); each threshold's overlap with each region is read off the region's histogram of
  # votes, which draws no (thresholds x voxels) array.
  votes = regions_.sum(axis=0)
  levels = len(regions_)
  counts = np.unique(votes[votes > 0])[::-1]
  at_least = lambda histogram: np.cumsum(histogram[..., ::-1], axis=-1)[..., ::-1]
  inter = at_least(np.stack([np.bincount(votes[region], minlength=levels + 1)
                             for region in regions_]))[:, counts].T
  sizes = at_least(np.bincount(votes, minlength=levels + 1))[counts]
  union = sizes[:, None] + regions_.sum(axis=1)[None, :] - inter
  agreement = inter / np.maximum(union, 1)
  return votes >= counts[int(np.argmax(agreement.mean(axis=1)))]


def _medoid(regions_: np.ndarray) -> np.ndarray:
  return regions_[int(np.argmax(_agreement(regions_, regions_).mean(axis=1)))]


def _stability(regions_: np.ndarray) -> np.ndarray:
  if len(regions_) == 1:
    return regions_[0]
  agreement = _agreement(regions_, regions_)
  beside = np.array([np.mean([agreement[i, j] for j in (i - 1, i + 1) if 0 <= j < len(regions_)])
                     for i in range(len(regions_))])
  return regions_[int(np.argmax(beside))]


_COMBINE = {"consensus": _consensus, "medoid": _medoid, "stability": _stability}


def _split_between(region: np.ndarray, click: tuple[int, ...],
                   negative: Sequence[tuple[int, ...]]) -> np.ndarray:
  """The pixels of `region` nearer `click` than every negative click inside it."""
  inside = [n for n in negative if region[n]]
  points = np.argwhere(region)
  own = np.sum((points - np.asarray(click)) ** 2, axis=1)
  others = np.min([np.sum((points - np.asarray(n)) ** 2, axis=1) for n in inside], axis=0)
  split = np.zeros_like(region)
  split[tuple(points[own < others].T)] = True
  return _component_holding(split, click)


def _region_for_click(stack: ScaleStack, click: tuple[int, ...],
                      negative: Sequence[tuple[int, ...]], *, rule: str, max_fraction: float,
                      fixed_clusters: int, connected: bool) -> np.ndarray:
  if connected:  # Each level's segment cut to its part under the click: full-size masks.
    return _choose(_clicked_regions(stack, click, connected=True), stack, click, negative,
                   rule=rule, max_fraction=max_fraction, fixed_clusters=fixed_clusters)
  # The levels' regions under the click read from the stack's index: their sizes and boxes
  # come without a pass over the volume, and only the regions the rule compares are drawn,
  # inside the box that holds them all.
  regions_ = _ClickedRegions(stack, click, connected=False)
  sizes = regions_.sizes
  candidates = np.flatnonzero(regions_.holding_none(negative))
  full = tuple(slice(0, n) for n in stack.shape)
  whole = lambda level: regions_.crop(int(level), full)
  if not len(candidates):
    return _split_between(whole(np.argmin(sizes)), click, negative)
  if rule == "fixed":
    return whole(_nearest_k(stack, candidates, fixed_clusters))
  small = candidates[sizes[candidates] <= max_fraction * stack.index.voxels]
  if not len(small):
    return whole(candidates[int(np.argmin(sizes[candidates]))])
  chosen, box = regions_.combined(small, rule)
  return _holding_in_box(chosen, box, click, stack.shape)


def _choose(levels: np.ndarray, stack: ScaleStack, click: tuple[int, ...],
            negative: Sequence[tuple[int, ...]], *, rule: str, max_fraction: float,
            fixed_clusters: int) -> np.ndarray:
  """`_region_for_click` on the levels' regions drawn in full (bool (L, *spatial))."""
  flat = levels.reshape(len(stack), -1)
  free = _holding_none(levels, negative)
  if not free.any():
    finest = int(np.argmin(flat.sum(axis=1)))
    return _split_between(levels[finest], click, negative)
  candidates = np.flatnonzero(free)
  if rule == "fixed":
    return levels[_nearest_k(stack, candidates, fixed_clusters)]
  sizes = flat[candidates].sum(axis=1)
  small = candidates[sizes <= max_fraction * flat.shape[1]]
  if not len(small):
    return levels[candidates[int(np.argmin(sizes))]]
  chosen = _COMBINE[rule](flat[small]).reshape(stack.shape)
  return _component_holding(chosen, click)


Box = tuple  # A tuple of slices, one per spatial axis.


def _bounding_box(mask: np.ndarray) -> Box:
  """The smallest box (tuple of slices) holding every True of a non-empty mask."""
  where = [np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
           for axis in range(mask.ndim)]
  return tuple(slice(int(w[0]), int(w[-1]) + 1) for w in where)


def _meet(first: Box, second: Box) -> Optional[Box]:
  """The common part of two boxes, None when they do not overlap."""
  box = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(first, second))
  return None if any(cut.start >= cut.stop for cut in box) else box


def _around(point: tuple[int, ...], reach: int, shape: tuple[int, ...]) -> Box:
  """The box of the voxels within `reach` steps of `point` along every axis, inside `shape`."""
  return tuple(slice(max(0, c - reach), min(n, c + reach + 1)) for c, n in zip(point, shape))


def _local(point: tuple[int, ...], box: Box) -> tuple[int, ...]:
  return tuple(c - cut.start for c, cut in zip(point, box))


def _holding_in_box(region: np.ndarray, box: Box, click: tuple[int, ...],
                    shape: tuple[int, ...]) -> np.ndarray:
  """Full-size mask of the connected part of `region` (the crop of `box`) holding `click`."""
  mask = np.zeros(shape, bool)
  mask[box] = _component_holding(region, _local(click, box))
  return mask


class _ClickedRegions:
  """The region under one click at each level of a stack, for a later click's edit.

  Sizes and boxes are looked up in the stack's index and a region is drawn
  only inside the box asked for, so that an edit of a volume's mask costs
  passes over boxes, not over every level of the volume; with `connected`
  (stacks of clusters) every level's region is drawn in full once.
  """

  def __init__(self, stack: ScaleStack, click: tuple[int, ...], *, connected: bool):
    self.shape = stack.shape
    full = tuple(slice(0, n) for n in stack.shape)
    if connected:
      drawn = _clicked_regions(stack, click, connected=True)
      self.sizes = drawn.reshape(len(stack), -1).sum(axis=1)
      self.boxes = [full] * len(stack)
      self._crop = lambda level, box: drawn[level][box]
      self._holds = lambda point: drawn[(slice(None),) + tuple(point)]
    else:
      found = [stack.index.region(level, click) for level in range(len(stack))]
      self.sizes = np.array([size for _, _, size, _ in found])
      self.boxes = [box for _, _, _, box in found]
      self._crop = lambda level, box: found[level][0][level][box] == found[level][1]
      self._holds = lambda point: np.array([maps[level][tuple(point)] == label for level, (
          maps, label, _, _) in enumerate(found)])

  def crop(self, level: int, box: Box) -> np.ndarray:
    """bool array of `box`'s shape: the level's region inside `box`."""
    return self._crop(level, box)

  def holding_none(self, points: Sequence[tuple[int, ...]]) -> np.ndarray:
    """bool (L,): the levels whose region holds none of `points`."""
    free = np.ones(len(self.sizes), bool)
    for point in points:
      free &= ~self._holds(point)
    return free

  def overlaps(self, mask: np.ndarray, box: Box) -> np.ndarray:
    """int (L,): how many voxels of `mask` (all inside `box`) each level's region holds."""
    counts = np.zeros(len(self.sizes), np.int64)
    for level, own in enumerate(self.boxes):
      common = _meet(own, box)
      if common is not None:
        counts[level] = int(np.count_nonzero(self.crop(level, common) & mask[common]))
    return counts

  def combined(self, levels: np.ndarray, rule: str) -> tuple[np.ndarray, Box]:
    """The rule's region among `levels` (rule "fixed": the one level given), with its box."""
    box = tuple(slice(min(self.boxes[level][axis].start for level in levels),
                      max(self.boxes[level][axis].stop for level in levels))
                for axis in range(len(self.shape)))
    crops = np.stack([self.crop(int(level), box) for level in levels])
    if rule == "fixed":
      return crops[0], box
    # Voxels outside every region count in no overlap and no size: the rule sees only the rest.
    covered = crops.any(axis=0)
    chosen = np.zeros(covered.shape, bool)
    chosen[covered] = _COMBINE[rule](crops[:, covered])
    return chosen, box


def _nearer(box: Box, click: tuple[int, ...], others: Sequence[tuple[int, ...]]) -> np.ndarray:
  """bool mask of `box`'s voxels strictly nearer `click` than every click of `others`."""
  shape = tuple(cut.stop - cut.start for cut in box)
  own = _squared_distance(shape, _local(click, box))
  inside = np.ones(shape, bool)
  for other in others:
    inside &= own < _squared_distance(shape, _local(other, box))
  return inside


def _distance_to_outside(side: np.ndarray, click: tuple[int, ...], reach: int) -> float:
  """The distance from `click` to the nearest voxel outside `side`, exact up to `reach`.

  Only the box within `reach` + 1 steps of the click is transformed: its faces
  that lie inside the volume count as outside, so a farther edge reads as
  more than `reach`, which is all a local edit's radius needs to know.
  """
  box = _around(click, reach + 1, side.shape)
  crop = side[box].copy()
  for axis, (cut, n) in enumerate(zip(box, side.shape)):
    face = [slice(None)] * side.ndim
    if cut.start > 0:
      face[axis] = 0
      crop[tuple(face)] = False
    if cut.stop < n:
      face[axis] = -1
      crop[tuple(face)] = False
  return float(ndimage.distance_transform_edt(crop)[_local(click, box)])


def _edit(stack: ScaleStack, click: tuple[int, ...], mask: np.ndarray,
          others: Sequence[tuple[int, ...]], *, adding: bool, budget_share: float, rule: str,
          max_fraction: float, fixed_clusters: int, connected: bool) -> np.ndarray:
  """The region a later click adds to (`adding`) or removes from `mask`: see the module doc."""
  regions_ = _ClickedRegions(stack, click, connected=connected)
  sizes = regions_.sizes
  free = regions_.holding_none(others)
  mask_box = _bounding_box(mask)
  inside = regions_.overlaps(mask, mask_box)
  touched = sizes - inside if adding else inside
  mask_size = max(int(np.count_nonzero(mask[mask_box])), 1)
  budget = budget_share * mask_size
  allowed = free & (touched <= budget)
  if adding:
    grown = tuple(slice(max(0, cut.start - 1), min(n, cut.stop + 1))
                  for cut, n in zip(mask_box, mask.shape))
    dilated = np.zeros(mask.shape, bool)
    dilated[grown] = ndimage.binary_dilation(mask[grown])
    apart = regions_.overlaps(dilated, grown) == 0
    allowed |= free & apart & (touched <= _APART_SHARE * mask_size)
  if rule != "fixed":
    allowed &= sizes <= max_fraction * mask.size
  candidates = np.flatnonzero(allowed)
  if len(candidates):
    if rule == "fixed":
      candidates = np.array([_nearest_k(stack, candidates, fixed_clusters)])
    region, box = regions_.combined(candidates, rule)
  else:
    # No level is small enough: a local edit, as large as the budget allows.
    dims = mask.ndim
    unit_ball = np.pi if dims == 2 else 4 * np.pi / 3
    widest = (budget / unit_ball) ** (1 / dims)
    side = mask if not adding else ~mask  # The voxels the edit may change.
    reach = max(0, int(np.ceil((widest - 1) / _REACH)))  # Farther edges leave `widest`.
    radius = min(widest, _REACH * _distance_to_outside(side, click, reach) + 1)
    box = _around(click, int(np.floor(radius)), mask.shape)
    shape = tuple(cut.stop - cut.start for cut in box)
    ball = _squared_distance(shape, _local(click, box)) <= radius ** 2
    region = ball & _nearer(box, click, others) & side[box]
    if free.any():
      finest = np.flatnonzero(free)[int(np.argmin(sizes[free]))]
      region &= regions_.crop(int(finest), box)
    points = np.argwhere(region)
    if len(points) > budget:  # A discrete disc can hold a few pixels more than its area.
      order = np.argsort(np.sum((points - np.asarray(_local(click, box))) ** 2, axis=1),
                         kind="stable")
      region = np.zeros_like(region)
      region[tuple(points[order[:max(int(budget), 1)]].T)] = True
  region = region.copy()
  region[_local(click, box)] = True
  return _holding_in_box(region, box, click, mask.shape)


def _bounded(stack: ScaleStack, positive: Sequence[tuple[int, ...]],
             negative: Sequence[tuple[int, ...]], *, grow: float, shrink: float,
             **options: Any) -> np.ndarray:
  mask = _region_for_click(stack, positive[0], (), **options)
  for click in positive[1:]:
    if not mask[click]:
      mask |= _edit(stack, click, mask, negative, adding=True, budget_share=grow, **options)
  for click in negative:
    if mask[click]:
      mask &= ~_edit(stack, click, mask, positive, adding=False, budget_share=shrink, **options)
  return mask


def choose_region(stack: ScaleStack, clicks: Any, *, negative: Any = (),
                  rule: Optional[str] = None, max_fraction: Optional[float] = None,
                  fixed_clusters: Optional[int] = None, negatives: str = "bounded",
                  grow: float = 0.25, shrink: float = 0.5,
                  connected: bool = False) -> np.ndarray:
  """The region the clicks mean, chosen among a stack's levels by a label-free rule.

  Args:
    stack: a `ScaleStack` (2-D or 3-D).
    clicks: one positive click, (row, col) or (i, j, k), or a sequence of
      them; 0-based, inside the stack.
    negative: clicks on what is not wanted, in the same form (may be empty).
    rule: one of `RULES`; None: the stack's `rule`.
    max_fraction: the largest share of the image a region chosen by
      "consensus", "medoid" or "stability" may cover; None: the stack's.
    fixed_clusters: the k of the rule "fixed"; None: the stack's.
    negatives: how the clicks combine (`NEGATIVE_MODES`): "bounded" (the
      first click's region, then each later click edits the mask within
      `grow` / `shrink`; see the module doc), or regions chosen click by
      click: "exclude" (each positive click's region is chosen among the
      levels whose clicked segment holds no negative click), "subtract"
      (each negative click's own region, chosen by the rule among the levels
      whose segment holds no positive click, is removed from the positive
      clicks' regions) or "both".
    grow: "bounded": a later positive click adds at most this share of the
      current mask's size through a level's region (else a local edit).
    shrink: "bounded": a negative click removes at most this share of the
      current mask's size through a level's region (else a local edit).
    connected: reduce each level's clicked segment to its face-connected
      part holding the click (for stacks of clusters rather than segments).

  Returns:
    bool mask of the stack's spatial shape: the positive clicks' regions
    less the negative clicks' regions; only the parts connected to a
    positive click are kept; every positive click is in it and every
    negative click out.

  Raises:
    ValueError: a click outside the stack, with the wrong number of indices,
      or both positive and negative; an unknown rule, mode or invalid share.
  """
  where, what = ("label map", "pixel") if len(stack.shape) == 2 else ("label volume", "voxel")
  positive = _validation.check_clicks(clicks, shape=stack.shape, what=what, where=where)
  negative = _validation.check_clicks(negative, shape=stack.shape, what=f"negative {what}",
                                      where=where, allow_empty=True)
  both = sorted(set(positive) & set(negative))
  if both:
    raise ValueError(f"click(s) {both} are both positive and negative; give each point once.")
  rule = stack.rule if rule is None else rule
  _validation.check_one_of(rule, RULES, what="scale rule")
  _validation.check_one_of(negatives, NEGATIVE_MODES, what="negatives mode")
  max_fraction = stack.max_fraction if max_fraction is None else max_fraction
  _validation.check_share(max_fraction, name="max_fraction")
  fixed_clusters = stack.fixed_clusters if fixed_clusters is None else fixed_clusters
  _validation.check_positive_integers(fixed_clusters=fixed_clusters)
  _validation.check_share(grow, name="grow")
  _validation.check_share(shrink, name="shrink")
  options = dict(rule=rule, max_fraction=max_fraction, fixed_clusters=fixed_clusters,
                 connected=connected)
  if negatives == "bounded":
    mask = _bounded(stack, positive, negative, grow=grow, shrink=shrink, **options)
  else:
    avoided = negative if negatives != "subtract" else ()
    mask = np.zeros(stack.shape, bool)
    for click in positive:
      mask |= _region_for_click(stack, click, avoided, **options)
    if negatives != "exclude":
      for click in negative:
        mask &= ~_region_for_click(stack, click, positive, **options)
  if ((negative and negatives != "exclude") or (negatives == "bounded" and len(positive) > 1)) \
      and mask.any():
    box = _bounding_box(mask)  # Components of the mask's box only: a volume's are the same.
    components, _ = ndimage.label(mask[box],
                                  structure=ndimage.generate_binary_structure(mask.ndim, 1))
    kept = {components[_local(click, box)] for click in positive
            if all(cut.start <= c < cut.stop for c, cut in zip(click, box))} - {0}
    mask = np.zeros_like(mask)
    mask[box] = np.isin(components, list(kept))
  for click in positive:  # What a user expects after every click.
    mask[click] = True
  for click in negative:
    mask[click] = False
  return mask
