"""Segmenting a 3-D volume: `segment_volume`.

By default the volume is clustered as a whole, so a label means the same
thing on every slice and one click (`cuts_jax.select(labels, (i, j, k))`)
follows a structure through the volume:

1. The volume is scaled to [0, 1] once (as the `volume` data loader does in
   training), so an intensity looks the same on every slice.
2. Each slice along `axis` gets the features `segment` clusters
   (`features.image_features`: at the size the settings choose, the
   embeddings in the settings' space beside the smoothed intensities), one
   slice at a time; only those float32 vectors are kept, never a slice's
   activations beyond its own features.
3. Both parts are scaled to unit total variance over the whole volume
   (`features.scale_features`), not slice by slice, so that a feature means
   the same on every slice.
4. Optionally each voxel's position in millimetres (index x spacing) joins
   its vector as a weak extra feature, so that far-apart voxels of a similar
   look lean towards different clusters.
5. All voxels are clustered together by `clustering.cluster_embeddings`: its
   PCA, landmarks and final k-means are fitted on subsamples and every voxel
   is then assigned, so time and memory grow linearly with the voxels (no
   voxel-by-voxel matrix).

`mode="slices"` segments every slice on its own with `segment` instead
(label 3 of one slice and label 3 of the next need not be the same tissue).
Reading and writing NIfTI and DICOM is `cuts_jax.io.medical`'s.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import features as features_lib
from cuts_jax import pixels
from cuts_jax import regions
from cuts_jax import segmentation

__all__ = ["MODES", "segment_volume"]

MODES = ("volume", "slices")

# Rows of the feature matrix that measure the features' spread for
# `position_weight`: ample for a standard deviation.
_SPREAD_SAMPLE = 16_384


def segment_volume(params: segmentation.SegmentationParams, volume: Any, *, axis: int = 2,
                   spacing: Optional[Any] = None, mode: str = "volume",
                   position_weight: float = 0.0,
                   settings: Optional[segmentation.SegmentSettings] = None,
                   **overrides: Any) -> np.ndarray:
  """Segments a 3-D volume; by default its labels mean the same thing on every slice.

  Args:
    params: a `SegmentationParams` (from `cuts_jax.load`). A model trained on
      3-channel images sees each grayscale slice repeated in 3 channels.
    volume: (D0, D1, D2) array of any numeric dtype (e.g. `Volume.data`).
    axis: the axis to slice along for the 2-D encoder; slice i is
      `np.take(volume, i, axis)`.
    spacing: voxel sizes (one number, or one per axis, e.g. in mm); only the
      position feature uses them. None: 1 per axis.
    mode: "volume" (every voxel clustered together: labels consistent across
      slices) or "slices" (each slice segmented on its own by `segment`).
    position_weight: for mode "volume": how much the voxels' positions (in
      units of `spacing`) count, as the ratio of their spread (the total
      standard deviation over the volume) to the spread of the clustering
      features; 0 leaves positions out. Small values (e.g. 0.1) keep the look
      dominant and only break ties between similar, far-apart voxels.
    settings, **overrides: as in `cuts_jax.segment`, the model's by default:
      `num_clusters` (k of the volume's clustering, or of each slice's),
      `method`, `seed`, the size each slice is segmented at (`resize_to`,
      `at_training_size`; labels are scaled back), `space`, `image_weight`,
      `image_sigma`, `on_device`. Mode "volume" returns the clusters
      (`connected` and `min_segment_fraction` act in mode "slices" only).

  Returns:
    int32 label volume of the input's shape. Mode "volume": labels
    0 .. num_clusters - 1 over the whole volume, numbered by first appearance
    in slice order; mode "slices": each slice's labels from `segment`.

  Raises:
    ValueError: the volume is not 3-D, holds NaN/Inf or is not numeric; the
      axis does not exist; or an option is invalid.

  Example:
    volume = cuts_jax.io.medical.read_nifti("scan.nii.gz")
    labels = cuts_jax.segment_volume(params, volume.data, axis=2)
    ventricles = cuts_jax.select(labels, (80, 96, 112))   # bool, 3-D component
  """
  array = np.asarray(volume)
  if array.ndim != 3:
    raise ValueError(f"segment_volume expects a 3-D volume; got shape {array.shape}. For a "
                     "2-D image call cuts_jax.segment.")
  if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -3 <= axis < 3:
    raise ValueError(f"axis is {axis!r}; a volume has axes 0, 1 and 2.")
  _validation.check_one_of(mode, MODES, what="mode")
  spacing = _validation.check_spacing(spacing, ndim=3)
  if not (np.isfinite(position_weight) and position_weight >= 0):
    raise ValueError(f"position_weight must be a non-negative number; got {position_weight!r}.")
  settings = segmentation.resolve_settings(params, settings=settings, **overrides)
  slices = np.moveaxis(pixels.to_unit_range(array), axis, 0)
  if mode == "slices":
    labels = np.empty(slices.shape, np.int32)
    for index, image in enumerate(slices):
      labels[index] = segmentation.segment(params, _channels(params, image), settings=settings)
    return np.moveaxis(labels, 0, axis)
  size = features_lib.segment_size(params, settings, slices.shape[1:])
  slice_spacing = (spacing[axis % 3], *np.delete(spacing, axis % 3))
  extra = 3 if position_weight > 0 else 0
  features = _volume_features(params, slices, settings, extra_columns=extra)
  if position_weight > 0:
    _add_positions(features, slices.shape, size, slice_spacing, position_weight,
                   seed=settings.seed)
  flat = clustering.cluster_embeddings(
      features.reshape(-1, features.shape[-1]), num_clusters=settings.num_clusters,
      method=settings.method, seed=settings.seed, on_device=settings.on_device)
  del features
  labels = flat.reshape(len(slices), *size)
  if tuple(size) != slices.shape[1:]:
    labels = regions.renumber(np.stack([pixels.resize_labels(s, slices.shape[1:])
                                        for s in labels]))
  return np.moveaxis(labels.astype(np.int32), 0, axis)


def _channels(params, image: np.ndarray) -> np.ndarray:
  """A gray (H, W) slice as the (H, W, C) image the model takes (gray repeated in C)."""
  return np.repeat(image[..., None], params.channels, axis=-1)


def _volume_features(params, slices: np.ndarray, settings: segmentation.SegmentSettings, *,
                     extra_columns: int) -> np.ndarray:
  """float32 (S, h, w, R + extra_columns): each slice's `image_features`, scaled together.

  Computed slice by slice into one array; the extra columns are left for
  the caller to fill.
  """
  features = None
  for index, image in enumerate(slices):
    vectors = features_lib.image_features(params, _channels(params, image), settings=settings,
                                          scaled=False)
    if features is None:
      # Allocated once the feature width is known; float32 whatever the space.
      width = vectors.shape[-1]
      features = np.empty((len(slices), *vectors.shape[:2], width + extra_columns), np.float32)
    features[index, ..., :width] = vectors
  return features_lib.scale_features(features, settings, image_channels=params.channels,
                                     extra_columns=extra_columns)


def _add_positions(features: np.ndarray, volume_shape: Sequence[int], size: Sequence[int],
                   spacing: Sequence[float], weight: float, *, seed: int) -> None:
  """Fills the last 3 columns with voxel centres in units of `spacing`, scaled by `weight`.

  A slice resized to `size` still places each of its pixels at the centre of
  the patch of original voxels it covers, so positions stay in the volume's
  own units. The scale makes the positions' total standard deviation
  `weight` times the features'.
  """
  count, height, width = volume_shape
  centres = [np.arange(count, dtype=np.float64)]
  for extent, points in ((height, size[0]), (width, size[1])):
    centres.append((np.arange(points) + 0.5) * extent / points - 0.5)
  axes = [c * s for c, s in zip(centres, spacing)]
  axes = [a - a.mean() for a in axes]
  position_spread = np.sqrt(sum(a.var() for a in axes))
  rows = features.reshape(-1, features.shape[-1])
  sample = rows[np.random.default_rng(seed).choice(len(rows), min(len(rows), _SPREAD_SAMPLE),
                                                   replace=False), :-3]
  feature_spread = np.sqrt(sample.astype(np.float64).var(axis=0).sum())
  # A single voxel, or a volume without contrast: positions cannot help.
  scale = (weight * feature_spread / position_spread
           if position_spread > 0 and feature_spread > 0 else 0.0)
  features[..., -3] = (scale * axes[0])[:, None, None]
  features[..., -2] = (scale * axes[1])[None, :, None]
  features[..., -1] = (scale * axes[2])[None, None, :]
