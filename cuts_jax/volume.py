"""Segmenting a 3-D volume: `segment_volume`.

By default the volume is clustered as a whole, so a label means the same
thing on every slice and one click (`cuts_jax.select(labels, (i, j, k))`)
follows a structure through the volume:

1. The volume is scaled to [0, 1] once (as the `volume` data loader does in
   training), so an intensity looks the same on every slice.
2. Each slice along `axis` is embedded by the 2-D encoder, one slice at a
   time, and turned into the vectors `segment` clusters
   (`segmentation.clustering_features`); only those float32 vectors are kept,
   never a slice's activations beyond its own embedding.
3. Optionally each voxel's position in millimetres (index x spacing) joins
   its vector as a weak extra feature, so that far-apart voxels of a similar
   look lean towards different clusters.
4. All voxels are clustered together by `clustering.cluster_embeddings`: its
   PCA, landmarks and final k-means are fitted on subsamples and every voxel
   is then assigned, so time and memory grow linearly with the voxels (no
   voxel-by-voxel matrix).

`mode="slices"` clusters every slice on its own instead (label 3 of one
slice and label 3 of the next need not be the same tissue). Reading and
writing NIfTI and DICOM is `cuts_jax.io.medical`'s.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import pixels
from cuts_jax import segmentation

__all__ = ["MODES", "segment_volume"]

MODES = ("volume", "slices")

# Rows of the feature matrix that measure the features' spread for
# `position_weight`: ample for a standard deviation.
_SPREAD_SAMPLE = 16_384


def segment_volume(params: segmentation.SegmentationParams, volume: Any, *, axis: int = 2,
                   spacing: Optional[Any] = None, mode: str = "volume",
                   num_clusters: int = 10, method: str = "spectral", seed: int = 0,
                   resize_to: Optional[Sequence[int]] = None, space: Optional[str] = None,
                   position_weight: float = 0.0) -> np.ndarray:
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
      slices) or "slices" (each slice clustered on its own).
    num_clusters: k of the clustering (of the volume, or of each slice).
    method: "spectral" or "kmeans", as in `cuts_jax.segment`.
    seed: seeds the clustering.
    resize_to: embed and cluster each slice at this (H, W) (e.g.
      `params.image_size`, the scale the model was trained at) and scale its
      labels back; None: at the slice's own size.
    space: where voxels are clustered, as in `cuts_jax.segment`; default
      `params.cluster_space`.
    position_weight: for mode "volume": how much the voxels' positions (in
      units of `spacing`) count, as the ratio of their spread (the total
      standard deviation over the volume) to the spread of the clustering
      features; 0 leaves positions out. Small values (e.g. 0.1) keep the look
      dominant and only break ties between similar, far-apart voxels.

  Returns:
    int32 label volume of the input's shape. Mode "volume": labels
    0 .. num_clusters - 1 over the whole volume, numbered by first appearance
    in slice order; mode "slices": 0 .. num_clusters - 1 within each slice.

  Raises:
    ValueError: the volume is not 3-D, holds NaN/Inf or is not numeric; the
      axis does not exist; or an option is invalid.

  Example:
    volume = cuts_jax.io.medical.read_nifti("scan.nii.gz")
    labels = cuts_jax.segment_volume(params, volume.data, axis=2,
                                     resize_to=params.image_size)
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
  slices = np.moveaxis(pixels.to_unit_range(array), axis, 0)
  if mode == "slices":
    labels = _segment_slices(params, slices, num_clusters=num_clusters, method=method,
                             seed=seed, resize_to=resize_to, space=space)
    return np.moveaxis(labels, 0, axis)
  _validation.check_positive_integers(num_clusters=num_clusters)
  _validation.check_one_of(method, clustering.METHODS, what="clustering method")
  size = slices.shape[1:] if resize_to is None else _validation.check_size(
      resize_to, what="resize_to", minimum=2, hint=" E.g. params.image_size.")
  slice_spacing = (spacing[axis % 3], *np.delete(spacing, axis % 3))
  features = _volume_features(params, slices, size, space=space,
                              extra_columns=3 if position_weight > 0 else 0)
  if position_weight > 0:
    _add_positions(features, slices.shape, size, slice_spacing, position_weight, seed=seed)
  flat = clustering.cluster_embeddings(features.reshape(-1, features.shape[-1]),
                                       num_clusters=num_clusters, method=method, seed=seed)
  del features
  labels = flat.reshape(len(slices), *size)
  if tuple(size) != slices.shape[1:]:
    labels = np.stack([pixels.resize_labels(s, slices.shape[1:]) for s in labels])
  return np.moveaxis(labels.astype(np.int32), 0, axis)


def _segment_slices(params, slices: np.ndarray, **segment_kwargs) -> np.ndarray:
  labels = np.empty(slices.shape, np.int32)
  for index, image in enumerate(slices):
    image = np.repeat(image[..., None], params.channels, axis=-1)
    labels[index] = segmentation.segment(params, image, **segment_kwargs)
  return labels


def _volume_features(params, slices: np.ndarray, size: Sequence[int], *,
                     space: Optional[str], extra_columns: int) -> np.ndarray:
  """float32 (S, h, w, R + extra_columns): each slice's clustering features, slice by slice.

  The extra columns are left for the caller to fill.
  """
  features = None
  for index, image in enumerate(slices):
    image = np.repeat(image[..., None], params.channels, axis=-1)
    if tuple(image.shape[:2]) != tuple(size):
      image = pixels.resize_image(image, size)
    vectors = segmentation.embed_image(
        params, image, space=params.cluster_space if space is None else space)
    if features is None:
      # Allocated once the feature width is known; float32 whatever the space.
      width = vectors.shape[-1]
      features = np.empty((len(slices), *size, width + extra_columns), np.float32)
    features[index, ..., :width] = vectors
  return features


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
