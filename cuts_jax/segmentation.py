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

from typing import Any, Optional, Sequence, Union

import numpy as np
from scipy import ndimage

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import features as features_lib
from cuts_jax import pixels
from cuts_jax import regions
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
           "resolve_settings", "segment", "segment_features", "segments_from_features", "select"]


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
  """
  settings = resolve_settings(params, settings=settings, **overrides)
  features = features_lib.image_features(params, image, settings=settings)
  return _labels(features, np.shape(image)[:2], settings)


def segments_from_features(params: SegmentationParams, features: np.ndarray, *,
                           size: Optional[Sequence[int]] = None,
                           settings: Optional[SegmentSettings] = None,
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

  Returns:
    int32 (H, W) labels numbered 0, 1, ... in raster order.
  """
  settings = resolve_settings(params, settings=settings, **overrides)
  return _labels(np.asarray(features), size, settings)


def _labels(features: np.ndarray, size: Optional[Sequence[int]],
            settings: SegmentSettings) -> np.ndarray:
  labels = clustering.cluster_image(features, num_clusters=settings.num_clusters,
                                    method=settings.method, seed=settings.seed,
                                    on_device=settings.on_device)
  if settings.connected:
    labels = regions.connected_segments(
        labels, min_size=max(1, round(settings.min_segment_fraction * labels.size)))
  if size is not None and labels.shape != tuple(size):
    labels = regions.renumber(pixels.resize_labels(labels, size))
  return labels.astype(np.int32)


def select(labels: Union[np.ndarray, regions.Hierarchy], pixel: Sequence[int], *,
           connected: Optional[bool] = None, level: Union[str, int] = "persistent",
           target_size: Optional[int] = None) -> np.ndarray:
  """The binary mask of the segment under one click: a pixel of an image or a voxel of a volume.

  Args:
    labels: int (H, W) label map (e.g. from `segment`), int (D0, D1, D2)
      label volume (e.g. from `cuts_jax.segment_volume`), or a `Hierarchy`
      (from `segment_hierarchy`).
    pixel: (row, col) of an image, or (i, j, k) of a volume; 0-based,
      negative indices are refused.
    connected: True: only the connected part of the clicked segment that
      holds the click (face neighbours: 4-connectivity in 2-D,
      6-connectivity in 3-D); False: every pixel with the clicked label.
      Default: True for a volume, False for an image (the paper's one-click
      protocol; `segment`'s segments are connected already).
    level: for a hierarchy: "persistent" (the level at which the clicked
      segment survives the widest range of granularity) or a level index.
    target_size: for a hierarchy: instead of `level`, the level whose clicked
      segment has the number of pixels closest to this.

  Returns:
    bool mask of the labels' shape.
  """
  if isinstance(labels, regions.Hierarchy):
    return regions.select_level(labels, pixel, level=level, target_size=target_size)
  if np.ndim(labels) == 3:
    return _select_in_volume(labels, pixel, connected=connected is None or connected)
  labels = _validation.check_label_map(labels)
  row, col = _validation.check_pixel(pixel, shape=labels.shape)
  mask = labels == labels[row, col]
  return _component_holding(mask, (row, col)) if connected else mask


def _select_in_volume(labels: Any, voxel: Sequence[int], *, connected: bool) -> np.ndarray:
  # In a volume clustered as a whole, one label spans every structure of a
  # similar look (the ventricles and all other fluid), so a click means the
  # clicked structure itself: its connected part.
  labels = _validation.check_label_map(labels, ndim=3)
  if np.ndim(voxel) == 1 and len(voxel) == 2:
    raise ValueError(f"labels of shape {labels.shape} are a 3-D label volume, which takes a "
                     f"voxel (i, j, k), three integers; got the pixel {tuple(voxel)!r}. For a 2-D (H, W) "
                     "label map pass a 2-D array.")
  voxel = _validation.check_pixel(voxel, shape=labels.shape, what="voxel",
                                  where="label volume", ndim=3)
  mask = labels == labels[voxel]
  return _component_holding(mask, voxel) if connected else mask


def _component_holding(mask: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
  """The face-connected component of `mask` that holds `index`.

  Face neighbours only: diagonal contacts, which at the rim of two segments
  often join structures that are not one, do not link.
  """
  structure = ndimage.generate_binary_structure(mask.ndim, 1)
  components, _ = ndimage.label(mask, structure=structure)
  return components == components[index]
