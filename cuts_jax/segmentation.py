"""From a trained model to segments: `segment`, and `select` with one click.

`segment` is called from the host (it is not jit-able): it resolves the
settings (`resolve_settings`: the model's, with the caller's overrides),
computes the image's per-pixel features (`features.image_features`: scaled,
resized, embedded in tiles when it is large, beside the smoothed image),
clusters them (`clustering`: on the host or as jitted JAX on the device, as
the `on_device` setting says) and cuts the clusters into connected segments.
The pieces live in their own modules and are re-exported here: the model and
its embeddings (`embedding`), the settings (`segment_settings`) and the
features (`features`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Union

import numpy as np

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import features as features_lib
from cuts_jax import pixels
from cuts_jax import regions
from cuts_jax import scales
from cuts_jax.embedding import SegmentationParams
from cuts_jax.embedding import clustering_features
from cuts_jax.embedding import embed
from cuts_jax.embedding import embed_image
from cuts_jax.features import image_features
from cuts_jax.features import image_to_segment
from cuts_jax.features import prepare_image
from cuts_jax.features import segment_features
from cuts_jax.segment_settings import CLUSTER_SPACES
from cuts_jax.segment_settings import SegmentSettings
from cuts_jax.segment_settings import resolve_settings

__all__ = ["CLUSTER_SPACES", "SegmentSettings", "SegmentationParams", "clustering_features",
           "embed", "embed_image", "image_features", "image_to_segment", "prepare_image",
           "resolve_settings", "segment", "segment_features", "segments_from_features", "select",
           "superpixels_for"]


def segment(params: SegmentationParams, image: Any, *,
            settings: Optional[SegmentSettings] = None, **overrides: Any) -> np.ndarray:
  """Segments one image into regions.

  The image is embedded (at the training image size by default), its pixels'
  features (`features.image_features`) are clustered (spectral k-means by
  default), and each cluster is cut into its connected pieces, tiny pieces
  joining a neighbour. Every option not given takes the model's default (its
  `SegmentSettings`, from the run's config).

  Args:
    params: a `SegmentationParams` (from `load` or `from_train_state`).
    image: (H, W) or (H, W, C) array of any numeric dtype: uint8 is read as
      0-255, bool as 0/1, float already in [0, 1] as is, anything else is
      min-max scaled. C must match the channels the model was trained on
      (RGBA loses alpha).
    settings: the settings to start from instead of the model's (e.g. from
      `resolve_settings`, resolved once for many images).
    **overrides: any field of `SegmentSettings`, e.g. `num_clusters` (k),
      `method` ("spectral" or "kmeans"), `seed`, `resize_to` (segment at
      this (H, W); overrides `at_training_size`), `at_training_size`,
      `space`, `image_weight`, `image_sigma`, `connected` (False returns the
      clusters themselves, as the paper does), `min_segment_fraction`,
      `on_device`. None keeps the model's value.

  Returns:
    int32 (H, W) label map numbered 0, 1, ... in raster order: connected
    segments, or at most `num_clusters` clusters when `connected=False`.

  Raises:
    ValueError: the image is unusable (see `features.prepare_image`),
      `resize_to` is not two sides of at least 2 px, or an option is invalid.
    TypeError: an option that is not a field of `SegmentSettings`.

  Example:
    params = cuts_jax.load("/tmp/retina")
    labels = cuts_jax.segment(params, skimage.io.imread("fundus.png"))
    lesion = cuts_jax.select(labels, (64, 40))   # bool (H, W): the segment under the click
    stack = cuts_jax.segment_hierarchy(params, image)   # every k of scale_num_clusters
    lesion = cuts_jax.select(stack, (64, 40))    # the region the scale rule chooses
  """
  settings = resolve_settings(params, settings=settings, **overrides)
  prepared = features_lib.image_to_segment(params, image, settings=settings)
  features = features_lib.segment_features(params, prepared, settings=settings)
  return _labels(features, np.shape(image)[:2], settings,
                 superpixels=superpixels_for(prepared, settings))


def segments_from_features(params: SegmentationParams, features: np.ndarray, *,
                           size: Optional[Sequence[int]] = None,
                           settings: Optional[SegmentSettings] = None,
                           superpixels: Optional[np.ndarray] = None,
                           **overrides: Any) -> np.ndarray:
  """The second half of `segment`: (h, w, R) `image_features` -> int32 label map.

  Call it several times on one image's features to try several options
  (e.g. values of k) without embedding the image again.

  Args:
    params: the model (its settings fill the options not given).
    features: float (h, w, R), from `image_features` or `segment_features`.
    size: (H, W) to return the labels at (the image's own size); None: (h, w).
    settings, **overrides: as in `segment` (`num_clusters`, `method`, `seed`,
      `connected`, `min_segment_fraction` and `on_device` matter here).
    superpixels: the image's superpixels at the features' size
      (`superpixels_for(prepared, settings)`), to snap the segments to as
      `segment` does; None: not snapped.

  Returns:
    int32 (H, W) labels numbered 0, 1, ... in raster order.
  """
  settings = resolve_settings(params, settings=settings, **overrides)
  features = np.asarray(features)
  if superpixels is not None:
    _validation.check_same_shape(np.shape(superpixels), features.shape[:2],
                                 names=("superpixels", "the features' pixels"))
  return _labels(features, size, settings,
                 superpixels=superpixels if settings.connected else None)


def superpixels_for(prepared: np.ndarray, settings: SegmentSettings) -> Optional[np.ndarray]:
  """The superpixels an image's segments are snapped to, or None (`snap_scale` off).

  Args:
    prepared: the image as it is embedded (`features.image_to_segment`).
    settings: its `SegmentSettings`.
  """
  if settings.snap_scale is None or not settings.connected:
    return None
  return scales.image_superpixels(prepared, settings.snap_scale)


def _labels(features: np.ndarray, size: Optional[Sequence[int]], settings: SegmentSettings,
            *, superpixels: Optional[np.ndarray] = None) -> np.ndarray:
  labels = clustering.cluster_image(features, num_clusters=settings.num_clusters,
                                    method=settings.method, seed=settings.seed,
                                    on_device=settings.on_device)
  if settings.connected:
    fold = settings.fold_threshold(labels.size)
    labels = regions.connected_segments(labels, min_size=fold)
    if superpixels is not None:
      labels = regions.connected_segments(scales.snap_to_superpixels(labels, superpixels),
                                          min_size=fold)
  if size is not None and labels.shape != tuple(size):
    labels = regions.renumber(pixels.resize_labels(labels, size))
  return labels.astype(np.int32)


def select(segments: Union[np.ndarray, scales.ScaleStack], clicks: Any, *, negative: Any = (),
           rule: Union[str, int, None] = None, level: Union[int, str, None] = None,
           max_fraction: Optional[float] = None, negatives: Optional[str] = None,
           grow: float = 0.25, shrink: float = 0.5,
           connected: Optional[bool] = None) -> np.ndarray:
  """The binary mask of what the clicks select: pixels of an image or voxels of a volume.

  Positive clicks add the region under them, negative clicks remove the
  region under them. On a `ScaleStack` (from `segment_hierarchy`) the first
  positive click's region is the one-click answer and each later click
  edits the mask it finds (`negatives="bounded"`, `cuts_jax.scales`): a
  later positive click adds the segment under it where that adds at most
  `grow` times the mask's size, a negative click removes its segment where
  that removes at most `shrink` times the mask's size, else the click edits
  the mask locally around itself; each click's segment is chosen among the
  levels by the scale rule, among those whose segment holds no click of the
  other sign, so a negative click inside a segment splits it at a finer
  scale rather than dropping it. On a flat label map, whose segments the
  user sees and picks, the segment under each positive click is taken whole
  (`negatives="both"`), except that one holding a negative click is split
  between the clicks (each pixel to the nearest one). Every positive click
  is in the mask and every negative click out.

  Args:
    segments: a `ScaleStack` (2-D or 3-D), an int (H, W) label map (e.g.
      from `segment`), or an int (D0, D1, D2) label volume (e.g. from
      `cuts_jax.segment_volume`).
    clicks: one click, (row, col) of an image or (i, j, k) of a volume, or a
      list of them; 0-based, inside the labels.
    negative: clicks on what must not be selected, in the same form.
    rule: for a stack: one of `SCALE_RULES` ("consensus", "medoid",
      "stability", "fixed"), or an int k (the level with the nearest k);
      None: the stack's rule (the model's `scale_rule`).
    level: for a stack, instead of `rule`: this level's index (0 coarsest),
      as a flat map; "persistent" (the label-free level of the former
      hierarchy, kept for code written against it) means the stack's own
      label-free choice, as `level=None`.
    max_fraction: for a stack: the largest share of the image a region
      chosen by a rule other than "fixed" may cover; None: the stack's.
    negatives: how several clicks combine: "bounded" (as above; chosen on
      the tuning parts) or the modes that choose every click's region on its
      own, "both", "exclude" or "subtract" (`scales.choose_region`); None:
      "bounded" on a stack, "both" on a flat label map or one `level`.
    grow: the largest share of the mask's size a later positive click adds
      through a segment (more: a local edit).
    shrink: the largest share of the mask's size a negative click removes
      through a segment (more: a local edit).
    connected: True: only the connected part of each clicked segment that
      holds the click (face neighbours: 4-connectivity in 2-D,
      6-connectivity in 3-D); False: every pixel of its label. Default:
      True for a volume, False for an image (the paper's one-click
      protocol; `segment`'s segments are connected already).

  Returns:
    bool mask of the labels' spatial shape.

  Raises:
    ValueError: a click outside the labels, with the wrong number of
      indices (a pixel for a volume, or a voxel for an image), or both
      positive and negative; an unknown rule or level.

  Example:
    stack = cuts_jax.segment_hierarchy(params, image)
    mask = cuts_jax.select(stack, [(64, 40), (60, 70)], negative=(80, 40))
  """
  if isinstance(segments, scales.ScaleStack):
    stack = segments
    if isinstance(level, str) and level == "persistent":
      level = None  # The stack's rule is the label-free choice the name stood for.
    if level is not None:
      count = len(stack)
      if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)) \
          or not -count <= level < count:
        raise ValueError(f"level is {level!r}; expected an integer in [{-count}, {count}) for "
                         f"this stack of {count} levels.")
      index = slice(int(level) % count, int(level) % count + 1)
      stack = dataclasses.replace(
          stack, labels=stack.labels[index], num_clusters=stack.num_clusters[index],
          pieces=None if stack.pieces is None else stack.pieces[index])
      rule = "fixed"
      # One level is a flat map: later clicks pick its segments whole, as on a label map.
      negatives = negatives or "both"
    fixed = None
    if isinstance(rule, (int, np.integer)) and not isinstance(rule, (bool, np.bool_)):
      rule, fixed = "fixed", int(rule)
    return scales.choose_region(stack, clicks, negative=negative, rule=rule,
                                max_fraction=max_fraction, fixed_clusters=fixed,
                                negatives=negatives or "bounded", grow=grow, shrink=shrink,
                                connected=bool(connected) if connected is not None
                                else len(stack.shape) == 3)
  labels = np.asarray(segments)
  if labels.ndim not in (2, 3):
    raise ValueError(f"segments must be a ScaleStack, an (H, W) label map or a (D0, D1, D2) "
                     f"label volume; got an array of shape {labels.shape}.")
  labels = _validation.check_label_map(labels, ndim=labels.ndim)
  if rule is not None or level is not None or max_fraction is not None:
    raise ValueError("rule, level and max_fraction choose among a ScaleStack's levels; a flat "
                     "label map has one. Pass cuts_jax.segment_hierarchy(params, image) to "
                     "choose the scale per click.")
  flat = scales.ScaleStack(labels=labels[None], num_clusters=(1,), rule="fixed",
                           fixed_clusters=1)
  return scales.choose_region(flat, clicks, negative=negative, negatives=negatives or "both",
                              grow=grow, shrink=shrink,
                              connected=labels.ndim == 3 if connected is None else bool(connected))
