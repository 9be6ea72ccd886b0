"""Classical segmentations of whole 3-D volumes, to compare `segment_volume` with.

The 3-D counterparts of `cuts_jax.evaluation.baselines`: each maps one float
(D0, D1, D2) volume in [0, 1] to an int32 label volume of its shape whose
labels mean the same on every slice, so one click (`cuts_jax.select`) picks
a structure from them exactly as from CUTS's volume labels.

- `otsu_volume`: one Otsu threshold over every voxel (dark 0, bright 1), or
  over the voxels above the volume's minimum only (a skull-stripped scan's
  black background otherwise dominates the histogram).
- `kmeans_volume`: k-means of the voxels' intensities (optionally blurred in
  3-D first): CUTS's volume clustering with intensity for the embedding.
- `slic_volume`: SLIC supervoxels (`skimage.segmentation.slic` in 3-D), with
  the voxel spacing, so supervoxels are compact in millimetres.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from scipy import ndimage
from skimage import filters
from skimage import segmentation

from cuts_jax import _validation
from cuts_jax import clustering

__all__ = ["kmeans_volume", "otsu_volume", "slic_volume"]


def _check_volume(volume: Any) -> np.ndarray:
  """float32 (D0, D1, D2) from a finite float volume in [0, 1]."""
  array = np.asarray(volume)
  if array.ndim != 3 or min(array.shape) < 1:
    raise ValueError(f"expected a 3-D volume of shape (D0, D1, D2); got shape {array.shape}. "
                     "For a 2-D image use cuts_jax.evaluation.baselines.")
  _validation.check_floating(array, what="volume")
  _validation.check_finite(array, what="volume")
  _validation.check_unit_range(array, what="volume")
  return array.astype(np.float32)


def otsu_volume(volume: Any, *, above_minimum: bool = False) -> np.ndarray:
  """Otsu's threshold of the voxels: two segments, dark (0) and bright (1).

  Args:
    volume: float (D0, D1, D2) in [0, 1].
    above_minimum: fit the threshold to the voxels brighter than the
      volume's minimum only (its background, in a skull-stripped scan);
      those at the minimum stay a segment of their own (label 2 is the
      background then).

  Returns:
    int32 labels of the volume's shape, 0 at or below the threshold and 1
    above it (2 for the minimum with `above_minimum`); a constant volume is
    one segment.
  """
  array = _check_volume(volume)
  low = array.min()
  voxels = array[array > low] if above_minimum else array
  if voxels.size == 0 or voxels.min() == voxels.max():
    return np.zeros(array.shape, np.int32)
  labels = (array > filters.threshold_otsu(voxels)).astype(np.int32)
  if above_minimum:
    labels[array == low] = 2
  return labels


def kmeans_volume(volume: Any, *, num_clusters: int = 10, smoothing_sigma: float = 0.0,
                  seed: int = 0) -> np.ndarray:
  """k-means of the voxels' intensities, all voxels of the volume together.

  Uses `clustering.cluster_embeddings(method="kmeans")` (fitted on a
  subsample, applied to every voxel), so labels are numbered by first
  appearance in raster order.

  Args:
    volume: float (D0, D1, D2) in [0, 1].
    num_clusters: k, the most labels returned.
    smoothing_sigma: 3-D Gaussian blur (voxels) before clustering, which
      gives each voxel some of its neighbourhood; 0 skips it.
    seed: seeds the k-means.

  Returns:
    int32 labels in [0, num_clusters) of the volume's shape.
  """
  array = _check_volume(volume)
  if smoothing_sigma < 0:
    raise ValueError(f"smoothing_sigma must be non-negative; got {smoothing_sigma}.")
  if smoothing_sigma > 0:
    array = ndimage.gaussian_filter(array, sigma=smoothing_sigma, mode="reflect")
  labels = clustering.cluster_embeddings(array.reshape(-1, 1), num_clusters=num_clusters,
                                         method="kmeans", seed=seed)
  return labels.reshape(array.shape)


def slic_volume(volume: Any, *, num_segments: int = 10, compactness: float = 0.1,
                sigma: float = 1.0, spacing: Optional[Any] = None) -> np.ndarray:
  """SLIC supervoxels of a grayscale volume, about `num_segments` of them.

  Args:
    volume: float (D0, D1, D2) in [0, 1].
    num_segments: the number of supervoxels aimed at (SLIC's grid); the
      result may have somewhat fewer or more.
    compactness: weight of spatial against intensity distance; 0.1 as the
      2-D grayscale baseline, for intensities in [0, 1].
    sigma: width (voxels) of the Gaussian blur applied first.
    spacing: voxel sizes (one number or one per axis); SLIC measures
      distances with them. None: 1 per axis.

  Returns:
    int32 labels 0, 1, ... of the volume's shape.
  """
  array = _check_volume(volume)
  _validation.check_positive_integers(num_segments=num_segments)
  if compactness <= 0 or sigma < 0:
    raise ValueError(f"compactness must be positive and sigma non-negative; got "
                     f"compactness={compactness}, sigma={sigma}.")
  sizes = np.array(_validation.check_spacing(spacing, ndim=3))
  # A scalar sigma would be divided by the spacing; one per axis is taken in voxels.
  return segmentation.slic(array, n_segments=num_segments, compactness=compactness,
                           sigma=np.full(3, float(sigma)), spacing=sizes, channel_axis=None,
                           start_label=0).astype(np.int32)
