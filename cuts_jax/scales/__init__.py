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
piece itself (from `pieces`), not with the neighbour that swallowed it,
unless it is a speck of fewer than `min_kept` pixels (voxels): then it is
answered with that neighbour's segment, as any folded piece.

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

The package: `ScaleStack` and its `StackIndex` (`_stack`), how clicks choose and edit a
region among its levels (`_choosing`), and here the functions that build a stack.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from skimage import segmentation as skimage_segmentation

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import features as features_lib
from cuts_jax import pixels
from cuts_jax import regions
from cuts_jax import segment_settings
from cuts_jax.scales._choosing import NEGATIVE_MODES
from cuts_jax.scales._choosing import choose_region
from cuts_jax.scales._stack import RULES
from cuts_jax.scales._stack import ScaleStack
from cuts_jax.scales._stack import StackIndex

__all__ = ["NEGATIVE_MODES", "RULES", "ScaleStack", "StackIndex", "choose_region",
           "image_superpixels", "scale_stack", "segment_hierarchy", "snap_to_superpixels",
           "stack_from_features"]


def image_superpixels(image: Any, scale: float, *, min_size: int = 20) -> np.ndarray:
  """An image's superpixels, which stack levels are snapped to (`SegmentSettings.snap_scale`).

  Felzenszwalb's graph segmentation at `scale` (sigma 0.8, pieces of at
  least `min_size` px): many small regions whose borders follow the image's
  edges.

  Args:
    image: float (h, w) or (h, w, C) in [0, 1], at the size the stack's
      levels are clustered at.
    scale: Felzenszwalb's `scale` (larger: fewer, larger superpixels).
    min_size: the smallest superpixel in pixels (a volume's slices use 5:
      `volume_features.grid_superpixels`).

  Returns:
    int (h, w) superpixel numbers from 0.
  """
  array = np.asarray(image, np.float64)
  if array.ndim == 2:
    array = array[..., None]
  if array.ndim != 3:
    raise ValueError(f"image must be (h, w) or (h, w, C); got shape {np.shape(image)}.")
  return skimage_segmentation.felzenszwalb(array, scale=float(scale), sigma=0.8,
                                           min_size=int(min_size),
                                           channel_axis=-1)


def snap_to_superpixels(labels: np.ndarray, superpixels: np.ndarray, *,
                        restore_lost: bool = False) -> np.ndarray:
  """Each superpixel relabelled with the label holding most of its pixels (ties: the lower).

  Labels come back numbered 0, 1, ... in the order of their values. With
  `restore_lost`, a label that holds the majority of no superpixel (a
  structure smaller than the superpixels around it) is put back where it
  was instead of vanishing (volumes: a small lesion's voxels).
  """
  labels, superpixels = np.asarray(labels), np.asarray(superpixels)
  if labels.shape != superpixels.shape:
    raise ValueError(f"superpixels have shape {superpixels.shape}, the labels {labels.shape}.")
  _, dense = np.unique(labels, return_inverse=True)
  dense = dense.reshape(labels.shape)
  _, numbers = np.unique(superpixels, return_inverse=True)
  label_count = int(dense.max()) + 1
  votes = np.bincount(numbers.ravel() * label_count + dense.ravel(),
                      minlength=(int(numbers.max()) + 1) * label_count).reshape(-1, label_count)
  snapped = votes.argmax(axis=1)[numbers.reshape(labels.shape)].astype(np.int32)
  if restore_lost:
    lost = np.setdiff1d(np.arange(label_count), np.unique(snapped))
    if len(lost):
      where = np.isin(dense, lost)
      snapped[where] = dense[where]
  return snapped


def stack_from_features(features: np.ndarray, *, num_clusters: Sequence[int] = tuple(range(2, 16)),
                        method: str = "spectral", seed: int = 0, min_size: int = 1,
                        on_device: Any = "auto", size: Optional[Sequence[int]] = None,
                        superpixels: Optional[np.ndarray] = None,
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
    superpixels: None, or int (h, w) superpixels (`image_superpixels`) each
      level's segments are snapped to (`snap_to_superpixels`) before being
      cut into connected segments and folded again.
    **stack_options: `rule`, `max_fraction`, `fixed_clusters`, `min_kept` of
      the stack.

  Returns:
    A `ScaleStack` with `pieces`.
  """
  features = np.asarray(features)
  if features.ndim != 3:
    raise ValueError(f"features must be (h, w, R); got shape {features.shape}.")
  ks = sorted({int(k) for k in num_clusters})
  _validation.check_positive_integers(**{f"num_clusters[{i}]": k for i, k in enumerate(ks)},
                                      min_size=min_size)
  if superpixels is not None:
    _validation.check_same_shape(np.shape(superpixels), features.shape[:2],
                                 names=("superpixels", "the features' pixels"))
  pieces, labels = [], []
  for k in ks:
    clusters = clustering.cluster_image(features, num_clusters=k, method=method, seed=seed,
                                        on_device=on_device)
    piece_map, segment_map = regions.pieces_and_segments(clusters, min_size=min_size)
    if superpixels is not None:
      piece_map, segment_map = regions.pieces_and_segments(
          snap_to_superpixels(segment_map, superpixels), min_size=min_size)
    if size is not None and tuple(size) != piece_map.shape:
      piece_map = regions.renumber(pixels.resize_labels(piece_map, size))
      segment_map = regions.renumber(pixels.resize_labels(segment_map, size))
    pieces.append(piece_map)
    labels.append(segment_map)
  return ScaleStack(labels=np.stack(labels), num_clusters=tuple(ks), pieces=np.stack(pieces),
                    folded_below=min_size, **stack_options)


def scale_stack(params: Any, image_or_features: Any, *, size: Optional[Sequence[int]] = None,
                settings: Optional[segment_settings.SegmentSettings] = None,
                superpixels: Optional[np.ndarray] = None, **overrides: Any) -> ScaleStack:
  """An image's segments at every k of `scale_num_clusters`, from one feature computation.

  Args:
    params: a `SegmentationParams` (from `cuts_jax.load`).
    image_or_features: an (H, W) or (H, W, C) image as `segment` takes it
      (C <= 4), or float (h, w, R) features from `features.image_features`
      (R > 4), computed once and reused (e.g. for several clicks' stacks).
    size: (H, W) to return the levels at; default: the image's own size,
      or the features' (h, w).
    superpixels: for features, the image's `image_superpixels` at the
      features' size, to snap the levels to (`snap_scale`); None: not
      snapped. For an image they are made here when `snap_scale` is set.
    settings, **overrides: as in `segment`; read here: `scale_num_clusters`,
      `method`, `seed`, `on_device`, the fold threshold
      (`min_segment_pixels`, else `min_segment_fraction`), and the stack's
      rule defaults `scale_rule`, `scale_max_fraction` and `num_clusters`
      (the k of the rule "fixed"); for an image also `snap_scale` and what
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
    prepared = features_lib.image_to_segment(params, image_or_features, settings=settings)
    features = features_lib.segment_features(params, prepared, settings=settings)
    size = size or array.shape[:2]
    if settings.snap_scale is not None:
      superpixels = image_superpixels(prepared, settings.snap_scale)
  pixel_count = features.shape[0] * features.shape[1]
  return stack_from_features(
      features, num_clusters=settings.scale_num_clusters, method=settings.method,
      seed=settings.seed, on_device=settings.on_device, size=size, superpixels=superpixels,
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
