"""Segmenting a layer image in two halves, without Qt: its features once, then segments per k.

The expensive half embeds the image (a volume: slice by slice, reporting each
slice so the widget can show progress and cancel) into the per-pixel
features segmentation clusters (`cuts_jax.features.image_features`). The
widget keeps them for the image and model, so a new k, a granularity or a
click never embeds again: `segments` clusters the kept features (and builds
a 2-D image's `ScaleStack` once per feature set). The results are those of
`cuts_jax.segment`, `cuts_jax.segment_hierarchy` and
`cuts_jax.segment_volume`, which the tests check.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import jax
import numpy as np

import cuts_jax
from cuts_jax import clustering
from cuts_jax import features as features_lib
from cuts_jax import pixels
from cuts_jax import scales
from cuts_jax import segmentation
from cuts_jax import volume as volume_lib
from cuts_jax import volume_features as volume_features_lib
from cuts_jax.apps.napari import _actions

# progress(slices done, slices in all, seconds left or None) -> True to stop.
Progress = Callable[[int, int, Optional[float]], bool]

# The settings the features depend on; a change of any other (k, seed, ...) keeps them.
_FEATURE_FIELDS = ("space", "image_weight", "image_sigma", "at_training_size", "resize_to")
# The settings a scale stack's levels depend on beside the features.
_STACK_FIELDS = ("scale_num_clusters", "method", "seed", "min_segment_fraction",
                 "min_segment_pixels", "on_device", "snap_scale")


def volume_cache() -> volume_features_lib.FeatureCache:
  """Where one widget keeps volumes' features: 2 GB in memory, the least recently used out first.

  A 160-slice brain scan's kept features (float16, 32 components at
  128 x 128) take about 170 MB, so several volumes and models fit.
  """
  return volume_features_lib.FeatureCache(max_bytes=2 * 2**30)


class Cancelled(Exception):
  """Raised when the user cancels while a volume's slices are embedded."""


@dataclasses.dataclass
class Features:
  """One layer image's features, and what they were computed from.

  Attributes:
    values: float32 (h, w, R) for an image, scaled as segmentation clusters
      them; a volume's `cuts_jax.volume_features.VolumeFeatures`.
    shape: the shape of the image's label maps (a volume's own shape).
    axis: for a volume, the axis it was sliced along.
    key: identifies the image, model and feature settings (see `features_key`).
    stack: a 2-D image's `cuts_jax.ScaleStack`, once built, and the
      settings it was built with.
    prepared: a 2-D image as it was embedded (at the segmenting size), for
      the superpixels its segments and stack's levels are snapped to; None
      for a volume.
    superpixels: those superpixels, once made, and the `snap_scale` they
      were made at.
  """

  values: np.ndarray
  shape: tuple[int, ...]
  axis: int
  key: tuple
  stack: Optional[tuple[tuple, Any]] = None
  prepared: Optional[np.ndarray] = None
  superpixels: Optional[tuple[float, np.ndarray]] = None

  def superpixels_at(self, snap_scale: Optional[float]) -> Optional[np.ndarray]:
    """The image's superpixels at `snap_scale` (made once per scale); None without one."""
    if self.prepared is None or snap_scale is None:
      return None
    if self.superpixels is None or self.superpixels[0] != snap_scale:
      self.superpixels = (snap_scale, scales.image_superpixels(self.prepared, snap_scale))
    return self.superpixels[1]


def interactive_settings(params: cuts_jax.SegmentationParams,
                         **overrides: Any) -> cuts_jax.SegmentSettings:
  """The model's settings with the widget's `overrides`, for trying k after k.

  On a CPU the clustering stays on the host: `on_device="auto"` runs a small
  k-means as jitted JAX, which compiles anew for every k (7.5-9 s a new k
  on the 2-core CPU for a 128x128 image, against 0.2 s on the host), the
  wait a user trying another k would meet each time.
  """
  on_device = False if jax.default_backend() == "cpu" else None
  return cuts_jax.resolve_settings(params, on_device=on_device, **overrides)


def features_key(image_id: Any, model_id: Any, image: _actions.LayerImage,
                 settings: cuts_jax.SegmentSettings) -> tuple:
  """What kept features must match to be reused: the image, the model and the feature settings."""
  return (image_id, model_id, image.shape, image.is_volume, image.axis, image.spacing,
          tuple(getattr(settings, name) for name in _FEATURE_FIELDS))


def _left(started: float, done: int, total: int) -> Optional[float]:
  return (time.perf_counter() - started) / done * (total - done) if done else None


def compute_features(params: cuts_jax.SegmentationParams, image: _actions.LayerImage,
                     settings: cuts_jax.SegmentSettings, *, key: tuple = (),
                     progress: Optional[Progress] = None,
                     cache: Optional[volume_features_lib.FeatureCache] = None) -> Features:
  """Embeds a layer image into its features (the slow half of segmenting).

  A volume's are `cuts_jax.volume_features.volume_features` (kept in
  `cache`, so the same volume and model are embedded once): `progress`
  hears after each slice and stops the work (raising `Cancelled`) by
  returning True.
  """
  if not image.is_volume:
    array = pixels.match_channels(image.data, params.channels, source=image.name)
    prepared = features_lib.image_to_segment(params, array, settings=settings)
    values = features_lib.segment_features(params, prepared, settings=settings)
    return Features(values=values, shape=image.shape, axis=0, key=key, prepared=prepared)
  started = time.perf_counter()

  def report(done: int, total: int) -> None:
    if progress is not None and progress(done, total, _left(started, done, total)):
      raise Cancelled()

  if progress is not None and progress(0, image.shape[image.axis], None):
    raise Cancelled()
  kept = volume_features_lib.volume_features(params, image.data, axis=image.axis,
                                             spacing=image.spacing, cache=cache,
                                             settings=settings, progress=report)
  return Features(values=kept, shape=image.shape, axis=image.axis, key=key)


@dataclasses.dataclass
class Segments:
  """The segments of one layer image at one k.

  Attributes:
    labels: int32 label map of the image's shape (a volume's for volumes).
    axis: for a volume, the axis it was segmented along.
    stack: a 2-D image's segments at every k of the settings'
      `scale_num_clusters` (a `cuts_jax.ScaleStack`, levels coarse to fine);
      None for a volume.
    settings: the `cuts_jax.SegmentSettings` they were made with (the
      model's, with the widget's choices), e.g. the k the widget shows.
  """

  labels: np.ndarray
  axis: int = 0
  stack: Any = None
  settings: Optional[cuts_jax.SegmentSettings] = None

  @property
  def num_levels(self) -> int:
    """Levels the granularity control can choose among (0: no stack)."""
    return 0 if self.stack is None else len(self.stack)

  def at_level(self, level: Optional[int]) -> np.ndarray:
    """The label map of a stack level; the segments at k for None (or without a stack)."""
    if self.stack is None or level is None:
      return self.labels
    return np.asarray(self.stack.labels[int(level)])


def _stack(params: cuts_jax.SegmentationParams, features: Features,
           settings: cuts_jax.SegmentSettings) -> Any:
  """`cuts_jax.segment_hierarchy` from kept features (built once per features and settings).

  A new k changes only the stack's default for the rule "fixed"; its levels are kept.
  """
  key = tuple(getattr(settings, name) for name in _STACK_FIELDS)
  if features.stack is None or features.stack[0] != key:
    features.stack = (key, scales.scale_stack(
        params, features.values, size=features.shape, settings=settings,
        superpixels=features.superpixels_at(settings.snap_scale)))
  return dataclasses.replace(features.stack[1], rule=settings.scale_rule,
                             max_fraction=settings.scale_max_fraction,
                             fixed_clusters=settings.num_clusters)


def segments(params: cuts_jax.SegmentationParams, features: Features,
             settings: cuts_jax.SegmentSettings, *,
             cache: Optional[volume_features_lib.FeatureCache] = None) -> Segments:
  """Clusters kept features at the settings' k (the fast half of segmenting).

  2-D: `segmentation.segments_from_features` and the scale stack. A volume:
  `cuts_jax.volume.segments_from_volume_features`, as `cuts_jax.segment_volume`
  segments (3-D connected segments).
  """
  values = features.values
  if isinstance(values, np.ndarray):
    labels = segmentation.segments_from_features(
        params, values, size=features.shape, settings=settings,
        superpixels=features.superpixels_at(settings.snap_scale))
    return Segments(labels=labels, stack=_stack(params, features, settings), settings=settings)
  labels = volume_lib.segments_from_volume_features(values, cache=cache, settings=settings)
  return Segments(labels=np.asarray(labels, np.int32), axis=features.axis, settings=settings)


def segment(params: cuts_jax.SegmentationParams, image: _actions.LayerImage, *,
            settings: Optional[cuts_jax.SegmentSettings] = None,
            **overrides: Any) -> Segments:
  """Both halves at once: the model's settings with `overrides` (None keeps the model's)."""
  settings = cuts_jax.resolve_settings(params, settings=settings, **overrides)
  return segments(params, compute_features(params, image, settings), settings)

