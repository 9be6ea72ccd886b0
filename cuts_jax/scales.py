"""One image's segments at every scale, and the region a click means: `ScaleStack`, `choose_region`.

A single k cannot suit every click: a lesion may be one segment at k = 4 and
split in three at k = 10, while a small ventricle horn appears only at
k = 12. `scale_stack` computes an image's features once
(`features.image_features`) and clusters them at each k of
`scale_num_clusters` (2..15 by default), cutting every clustering into
connected segments (`regions.pieces_and_segments`); the stack holds one
label map per k. Re-clustering at each k keeps what a fresh clustering at
that k finds, which merging one fine clustering (a hierarchy) loses.

Which level's segment a click means is decided by a rule that reads no
label (`RULES`; chosen on the tuning parts, experiments/results/tuning_scale.md):

- "stability" (the default): the level segment that changes least between
  neighbouring k (mean intersection over union with the levels beside it):
  the scale at which the clicked structure holds still.
- "consensus": the clicked segments of the levels are put to a pixel-wise
  vote; the region is the vote thresholded where it agrees best (mean
  Jaccard index) with the levels' segments.
- "medoid": the one level segment with the highest mean Jaccard index to the
  others.
- "fixed": the level with k = `fixed_clusters` (what `segment` returns).

Levels whose clicked segment covers more than `max_fraction` of the image (a
background half) are passed over by the first three rules, unless no level
is smaller. Clicks read the segments alone, never where in a segment they
fall.

Small structures are kept: a clicked piece smaller than the fold threshold
(`folded_below`, joined to a neighbour in `labels`) is answered with the
piece itself (from `pieces`), not with the neighbour that swallowed it.

Several clicks (`choose_region`, and `cuts_jax.select`), the default
(`negatives="bounded"`): the first positive click's region is the one-click
region and stays put; each later click edits the mask it finds. A later
positive click outside the mask adds its region by the rule among the levels
whose clicked segment holds no negative click and would add at most `grow`
times the mask's size (a segment apart from the mask, a second structure, up
to the mask's size); a negative click inside the mask removes its region
among the levels whose segment holds no positive click and would remove at
most `shrink` times the mask's size. When no level is that small, the click
edits the mask locally: the part of its finest segment within a disc (ball in
3-D) around it, no larger than the budget and reaching at most twice the
click's distance to the mask's edge (plus a pixel), on the click's side of
every click of the other sign. Only the parts connected to a positive click are kept, every
positive click's pixel is in the mask and every negative click's pixel is
out. (The earlier modes "exclude", "subtract" and "both" choose every click's
region independently of the mask; a later click then often swallowed a
background segment several times the mask's size: tuning_scale.md.) When even
the finest level cannot separate two clicks, their segment is split between
them (each pixel to the nearest click). Everything works on 2-D stacks and on
3-D ones (label volumes) alike.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, Sequence

import numpy as np
from scipy import ndimage

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import features as features_lib
from cuts_jax import pixels
from cuts_jax import regions
from cuts_jax import segment_settings

__all__ = ["NEGATIVE_MODES", "RULES", "ScaleStack", "StackIndex", "choose_region", "scale_stack",
           "segment_hierarchy", "stack_from_features"]

RULES = segment_settings.SCALE_RULES
# How several clicks combine (`choose_region`'s `negatives`): "bounded" edits the mask click by
# click; the other three choose each click's region on its own.
NEGATIVE_MODES = ("bounded", "exclude", "subtract", "both")
# A local edit's disc reaches at most this many times the click's distance to the mask's edge
# (plus one pixel); chosen on the tune parts (2 against 1, 1.5 and 3: tuning_scale.md).
_REACH = 2.0
# A later positive click's level segment that does not touch the mask (a separate structure)
# may add up to this share of the mask's size (`grow` holds for segments that touch it).
_APART_SHARE = 1.0


class StackIndex:
  """Every segment's size and bounding box at every level of a `ScaleStack`, made once.

  A click then finds the size and box of the region under it at each level by
  lookups, and draws only the regions the scale rule compares, inside their
  common box: on a 14-level stack of 2.6 million voxels, a click costs
  milliseconds instead of passes over all levels.

  Attributes:
    labels: L int arrays: the stack's levels, numbered 0..n-1 where they
      were not.
    pieces: like `labels` for the stack's pieces, or None.
    voxels: the pixels (voxels) of one level.
  """

  def __init__(self, stack: "ScaleStack"):
    self.labels, self._label_sizes = _numbered(stack.labels)
    self._label_boxes = [ndimage.find_objects(level + 1) for level in self.labels]
    self.pieces = None
    if stack.pieces is not None and stack.folded_below > 1:
      # Pieces are many (a fine level of a volume has 10^5): no boxes, which take seconds to
      # list; the box of a small one is found around the click when it is clicked.
      self.pieces, self._piece_sizes = _numbered(stack.pieces)
    self._folded_below = stack.folded_below
    self.voxels = int(np.prod(stack.shape))

  def region(self, level: int, click: tuple[int, ...]
             ) -> tuple[np.ndarray, int, int, tuple[slice, ...]]:
    """The region under `click` at `level`: (maps, label, size, box).

    The region is `maps[level] == label` (a kept small piece where the click
    falls on one, else its segment); `box` is its bounding box, a tuple of
    slices.
    """
    if self.pieces is not None:
      piece = int(self.pieces[level][click])
      size = int(self._piece_sizes[level][piece])
      if size < self._folded_below:
        return self.pieces, piece, size, self._piece_box(level, piece, size, click)
    label = int(self.labels[level][click])
    return self.labels, label, int(self._label_sizes[level][label]), self._label_boxes[level][label]

  def _piece_box(self, level: int, piece: int, size: int, click: tuple[int, ...]
                 ) -> tuple[slice, ...]:
    """The bounding box of a small piece: a connected piece of `size` voxels lies within
    `size` - 1 steps of the click along every axis."""
    maps = self.pieces[level]
    near = tuple(slice(max(0, c - size + 1), min(n, c + size)) for c, n in zip(click, maps.shape))
    where = np.nonzero(maps[near] == piece)
    if len(where[0]) != size:  # Not one connected piece (a stack made by hand): look everywhere.
      near = tuple(slice(0, n) for n in maps.shape)
      where = np.nonzero(maps == piece)
    return tuple(slice(cut.start + int(w.min()), cut.start + int(w.max()) + 1)
                 for cut, w in zip(near, where))


def _numbered(maps: np.ndarray) -> tuple[list, list]:
  """(each level numbered 0..n-1, where it is not already so; each level's label sizes)."""
  numbered, sizes = [], []
  for labels in maps:
    if int(labels.min()) < 0 or int(labels.max()) >= labels.size:
      labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape).astype(np.int32)
    numbered.append(labels)
    sizes.append(np.bincount(labels.ravel()))
  return numbered, sizes


@dataclasses.dataclass(frozen=True)
class ScaleStack:
  """One image's (or volume's) segmentations at several scales, coarse to fine.

  Attributes:
    labels: int32 (L, *spatial): one label map per level, spatial (H, W) or
      (D0, D1, D2); for `scale_stack`, connected segments of a clustering.
    num_clusters: the k of each level (L ints, e.g. 2, 3, ..., 15), or its
      granularity for stacks not made by clustering (e.g. segment counts).
    pieces: None, or int32 (L, *spatial): each level's connected pieces
      before pieces smaller than `folded_below` were folded into a
      neighbour; a click on such a piece is answered with the piece.
    folded_below: the fold threshold in pixels (1: nothing was folded).
    rule: the default rule of `choose_region` (one of `RULES`).
    max_fraction: the default largest share of the image a chosen region
      may cover (the rules other than "fixed").
    fixed_clusters: the k of the rule "fixed" (the level with the nearest k).

  Raises:
    ValueError: inconsistent shapes or an invalid option.
  """

  labels: np.ndarray
  num_clusters: tuple[int, ...]
  pieces: Optional[np.ndarray] = None
  folded_below: int = 1
  rule: str = "stability"
  max_fraction: float = 0.25
  fixed_clusters: int = 10

  def __post_init__(self):
    labels = np.asarray(self.labels)
    if labels.ndim not in (3, 4) or 0 in labels.shape:
      raise ValueError(f"a ScaleStack's labels must be (L, H, W) or (L, D0, D1, D2) with L >= 1; "
                       f"got shape {labels.shape}.")
    _validation.check_integer_dtype(labels, what="ScaleStack labels")
    object.__setattr__(self, "labels", labels.astype(np.int32, copy=False))
    num_clusters = tuple(int(k) for k in np.ravel(self.num_clusters))
    if len(num_clusters) != len(labels):
      raise ValueError(f"num_clusters has {len(num_clusters)} entries for {len(labels)} levels.")
    object.__setattr__(self, "num_clusters", num_clusters)
    if self.pieces is not None:
      pieces = np.asarray(self.pieces)
      if pieces.shape != labels.shape:
        raise ValueError(f"pieces of shape {pieces.shape} do not match labels of shape "
                         f"{labels.shape}.")
      _validation.check_integer_dtype(pieces, what="ScaleStack pieces")
      object.__setattr__(self, "pieces", pieces.astype(np.int32, copy=False))
    _validation.check_positive_integers(folded_below=self.folded_below,
                                        fixed_clusters=self.fixed_clusters)
    _validation.check_one_of(self.rule, RULES, what="scale rule")
    _validation.check_share(self.max_fraction, name="max_fraction")

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def shape(self) -> tuple[int, ...]:
    """The spatial shape of each level: (H, W) or (D0, D1, D2)."""
    return self.labels.shape[1:]

  @functools.cached_property
  def index(self) -> StackIndex:
    """Each level's segment sizes and boxes (made on first use, then kept), for fast clicks."""
    return StackIndex(self)

  def level_of(self, num_clusters: int) -> int:
    """The index of the level whose k is nearest `num_clusters` (the finer one on a tie)."""
    distance = [(abs(k - num_clusters), -k) for k in self.num_clusters]
    return int(min(range(len(distance)), key=distance.__getitem__))


def stack_from_features(features: np.ndarray, *, num_clusters: Sequence[int] = tuple(range(2, 16)),
                        method: str = "spectral", seed: int = 0, min_size: int = 1,
                        on_device: Any = "auto", size: Optional[Sequence[int]] = None,
                        **stack_options: Any) -> ScaleStack:
  """Clusters (h, w, R) per-pixel features at each k and cuts each clustering into segments.

  Args:
    features: float (h, w, R), e.g. from `features.image_features` or smoothed
      colours.
    num_clusters: the k of the levels (each at least 1; sorted ascending).
    method, seed, on_device: as in `clustering.cluster_image`.
    min_size: pieces with fewer pixels (at the features' size) are folded
      into a neighbour in `labels` and kept in `pieces`.
    size: (H, W) to return the levels at; None: (h, w).
    **stack_options: `rule`, `max_fraction`, `fixed_clusters` of the stack.

  Returns:
    A `ScaleStack` with `pieces`.
  """
  features = np.asarray(features)
  if features.ndim != 3:
    raise ValueError(f"features must be (h, w, R); got shape {features.shape}.")
  ks = sorted({int(k) for k in num_clusters})
  _validation.check_positive_integers(**{f"num_clusters[{i}]": k for i, k in enumerate(ks)},
                                      min_size=min_size)
  pieces, labels = [], []
  for k in ks:
    clusters = clustering.cluster_image(features, num_clusters=k, method=method, seed=seed,
                                        on_device=on_device)
    piece_map, segment_map = regions.pieces_and_segments(clusters, min_size=min_size)
    if size is not None and tuple(size) != piece_map.shape:
      piece_map = regions.renumber(pixels.resize_labels(piece_map, size))
      segment_map = regions.renumber(pixels.resize_labels(segment_map, size))
    pieces.append(piece_map)
    labels.append(segment_map)
  return ScaleStack(labels=np.stack(labels), num_clusters=tuple(ks), pieces=np.stack(pieces),
                    folded_below=min_size, **stack_options)


def scale_stack(params: Any, image_or_features: Any, *, size: Optional[Sequence[int]] = None,
                settings: Optional[segment_settings.SegmentSettings] = None,
                **overrides: Any) -> ScaleStack:
  """An image's segments at every k of `scale_num_clusters`, from one feature computation.

  Args:
    params: a `SegmentationParams` (from `cuts_jax.load`).
    image_or_features: an (H, W) or (H, W, C) image as `segment` takes it
      (C <= 4), or float (h, w, R) features from `features.image_features`
      (R > 4), computed once and reused (e.g. for several clicks' stacks).
    size: (H, W) to return the levels at; default: the image's own size,
      or the features' (h, w).
    settings, **overrides: as in `segment`; read here: `scale_num_clusters`,
      `method`, `seed`, `on_device`, the fold threshold
      (`min_segment_pixels`, else `min_segment_fraction`), and the stack's
      rule defaults `scale_rule`, `scale_max_fraction` and `num_clusters`
      (the k of the rule "fixed"); for an image also what
      `image_features` reads.

  Returns:
    A `ScaleStack` (levels coarse to fine).

  Example:
    stack = cuts_jax.segment_hierarchy(params, image)       # this, for one image
    mask = cuts_jax.select(stack, [(64, 40), (70, 52)], negative=(90, 40))
  """
  settings = segment_settings.resolve_settings(params, settings=settings, **overrides)
  array = np.asarray(image_or_features)
  if array.ndim == 3 and array.shape[-1] > 4:
    features = array
  else:
    features = features_lib.image_features(params, image_or_features, settings=settings)
    size = size or array.shape[:2]
  pixel_count = features.shape[0] * features.shape[1]
  return stack_from_features(
      features, num_clusters=settings.scale_num_clusters, method=settings.method,
      seed=settings.seed, on_device=settings.on_device, size=size,
      min_size=settings.fold_threshold(pixel_count), rule=settings.scale_rule,
      max_fraction=settings.scale_max_fraction, fixed_clusters=settings.num_clusters)


def segment_hierarchy(params: Any, image: Any, *,
                      settings: Optional[segment_settings.SegmentSettings] = None,
                      **overrides: Any) -> ScaleStack:
  """One image's segments at every scale: the `ScaleStack` `cuts_jax.select` chooses in.

  `scale_stack` of an image: its features are computed once and clustered at
  each k of the settings' `scale_num_clusters` (2..15 by default), each
  clustering cut into connected segments; the levels come back at the
  image's own size.

  Args:
    params: a `SegmentationParams` (from `cuts_jax.load`).
    image: (H, W) or (H, W, C) image, as `segment` takes it.
    settings, **overrides: as in `scale_stack`.

  Returns:
    A `ScaleStack` of (H, W) levels, coarse to fine, carrying the model's
    scale rule as its default.

  Example:
    stack = cuts_jax.segment_hierarchy(params, image)
    mask = cuts_jax.select(stack, (row, col))                 # the scale rule's region
    mask = cuts_jax.select(stack, [(r1, c1), (r2, c2)], negative=[(r3, c3)])
  """
  _validation.check_image(image, hint=" For a batch, call segment_hierarchy once per image.")
  return scale_stack(params, image, settings=settings, **overrides)


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
    small = piece.reshape(len(stack), -1).sum(axis=1) < stack.folded_below
    regions_[small] = piece[small]
  if connected:
    for level in range(len(stack)):
      regions_[level] = _component_holding(regions_[level], click)
  return regions_


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
  index = stack.index
  found = [index.region(level, click) for level in range(len(stack))]
  sizes = np.array([size for _, _, size, _ in found])
  free = np.ones(len(stack), bool)
  for point in negative:
    free &= np.array([maps[level][point] == label for level, (maps, label, _, _)
                      in enumerate(found)]) == 0
  candidates = np.flatnonzero(free)

  def whole(level: int) -> np.ndarray:
    maps, label, _, _ = found[level]
    return maps[level] == label

  if not len(candidates):
    return _split_between(whole(int(np.argmin(sizes))), click, negative)
  if rule == "fixed":
    ks = np.asarray(stack.num_clusters)[candidates]
    return whole(candidates[min(range(len(candidates)),
                                key=lambda i: (abs(ks[i] - fixed_clusters), -ks[i]))])
  small = candidates[sizes[candidates] <= max_fraction * index.voxels]
  if not len(small):
    return whole(candidates[int(np.argmin(sizes[candidates]))])
  boxes = [found[level][3] for level in small]
  box = tuple(slice(min(b[axis].start for b in boxes), max(b[axis].stop for b in boxes))
              for axis in range(len(click)))
  crops = np.stack([found[level][0][level][box] == found[level][1] for level in small])
  # Voxels outside every region count in no overlap and no size: the rule sees only the rest.
  covered = crops.any(axis=0)
  chosen = np.zeros(covered.shape, bool)
  chosen[covered] = _COMBINE[rule](crops[:, covered])
  mask = np.zeros(stack.shape, bool)
  mask[box] = _component_holding(chosen, tuple(c - b.start for c, b in zip(click, box)))
  return mask


def _choose(levels: np.ndarray, stack: ScaleStack, click: tuple[int, ...],
            negative: Sequence[tuple[int, ...]], *, rule: str, max_fraction: float,
            fixed_clusters: int) -> np.ndarray:
  """`_region_for_click` on the levels' regions drawn in full (bool (L, *spatial))."""
  flat = levels.reshape(len(stack), -1)
  free = np.ones(len(stack), bool)
  for index in negative:
    free &= ~levels[(slice(None),) + index]
  if not free.any():
    finest = int(np.argmin(flat.sum(axis=1)))
    return _split_between(levels[finest], click, negative)
  candidates = np.flatnonzero(free)
  if rule == "fixed":
    ks = np.asarray(stack.num_clusters)[candidates]
    best = min(range(len(candidates)), key=lambda i: (abs(ks[i] - fixed_clusters), -ks[i]))
    return levels[candidates[best]]
  sizes = flat[candidates].sum(axis=1)
  small = candidates[sizes <= max_fraction * flat.shape[1]]
  if not len(small):
    return levels[candidates[int(np.argmin(sizes))]]
  chosen = _COMBINE[rule](flat[small]).reshape(stack.shape)
  return _component_holding(chosen, click)


def _ball(shape: tuple[int, ...], centre: tuple[int, ...], radius: float) -> np.ndarray:
  """bool mask of the pixels (voxels) within `radius` of `centre`."""
  grid = np.ogrid[tuple(slice(0, n) for n in shape)]
  return sum((axis - c) ** 2 for axis, c in zip(grid, centre)) <= radius ** 2


def _nearer(shape: tuple[int, ...], click: tuple[int, ...],
            others: Sequence[tuple[int, ...]]) -> np.ndarray:
  """bool mask of the pixels strictly nearer `click` than every click of `others`."""
  grid = np.ogrid[tuple(slice(0, n) for n in shape)]
  own = sum((axis - c) ** 2 for axis, c in zip(grid, click))
  inside = np.ones(shape, bool)
  for other in others:
    inside &= own < sum((axis - c) ** 2 for axis, c in zip(grid, other))
  return inside


def _edit(stack: ScaleStack, click: tuple[int, ...], mask: np.ndarray,
          others: Sequence[tuple[int, ...]], *, adding: bool, budget_share: float, rule: str,
          max_fraction: float, fixed_clusters: int, connected: bool) -> np.ndarray:
  """The region a later click adds to (`adding`) or removes from `mask`: see the module doc."""
  levels = _clicked_regions(stack, click, connected=connected)
  flat = levels.reshape(len(stack), -1)
  free = np.ones(len(stack), bool)
  for index in others:
    free &= ~levels[(slice(None),) + index]
  touched = flat & (~mask.ravel() if adding else mask.ravel())
  budget = budget_share * max(int(mask.sum()), 1)
  allowed = free & (touched.sum(axis=1) <= budget)
  if adding:
    apart = ~(flat & ndimage.binary_dilation(mask).ravel()).any(axis=1)
    allowed |= free & apart & (touched.sum(axis=1) <= _APART_SHARE * max(int(mask.sum()), 1))
  if rule != "fixed":
    allowed &= flat.sum(axis=1) <= max_fraction * flat.shape[1]
  candidates = np.flatnonzero(allowed)
  if len(candidates):
    if rule == "fixed":
      ks = np.asarray(stack.num_clusters)[candidates]
      region = levels[candidates[int(np.argmin(np.abs(ks - fixed_clusters)))]]
    else:
      region = _COMBINE[rule](flat[candidates]).reshape(stack.shape)
  else:
    # No level is small enough: a local edit, as large as the budget allows.
    side = mask if not adding else ~mask  # The pixels the edit may change.
    distance = ndimage.distance_transform_edt(side)[click]
    dims = mask.ndim
    unit_ball = np.pi if dims == 2 else 4 * np.pi / 3
    radius = min((budget / unit_ball) ** (1 / dims), _REACH * distance + 1)
    region = _ball(mask.shape, click, radius) & _nearer(mask.shape, click, others) & side
    if free.any():
      finest = np.flatnonzero(free)[int(np.argmin(flat[free].sum(axis=1)))]
      region &= levels[finest]
    points = np.argwhere(region)
    if len(points) > budget:  # A discrete disc can hold a few pixels more than its area.
      order = np.argsort(np.sum((points - np.asarray(click)) ** 2, axis=1), kind="stable")
      region = np.zeros_like(region)
      region[tuple(points[order[:max(int(budget), 1)]].T)] = True
  region = region.copy()
  region[click] = True
  return _component_holding(region, click)


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
  if (negative and negatives != "exclude") or (negatives == "bounded" and len(positive) > 1):
    components, _ = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))
    kept = {components[click] for click in positive} - {0}
    mask = np.isin(components, list(kept))
  for click in positive:  # What a user expects after every click.
    mask[click] = True
  for click in negative:
    mask[click] = False
  return mask
