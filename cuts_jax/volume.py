"""Segmenting a 3-D volume slice by slice: `segment_volume`.

Every slice is clustered on its own, so label 3 of one slice and label 3 of
the next need not be the same tissue. Reading and writing NIfTI and DICOM is
`cuts_jax.io.medical`'s.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from cuts_jax import segmentation
from cuts_jax.io import datasets

__all__ = ["segment_volume"]


def segment_volume(params: segmentation.SegmentationParams, volume: Any, *, axis: int = 2,
                   num_clusters: int = 10, method: str = "spectral", seed: int = 0,
                   resize_to: Optional[Sequence[int]] = None) -> np.ndarray:
  """Segments a 3-D volume slice by slice along one axis.

  The whole volume is mapped to [0, 1] once (`cuts_jax.io.datasets.to_unit_range`, as the
  `volume` data loader does in training), so a given intensity looks the same
  on every slice. Each slice is then clustered on its own: labels are not
  matched across slices (label 3 of one slice and label 3 of the next can be
  different tissues). Use `cuts_jax.select` on each slice to follow one
  region.

  Args:
    params: a `SegmentationParams` (from `cuts_jax.load`). A model trained on
      3-channel images sees each grayscale slice repeated in 3 channels.
    volume: (D0, D1, D2) array of any numeric dtype (e.g. `Volume.data`).
    axis: the axis to slice along; slice i is `np.take(volume, i, axis)`.
    num_clusters: k of the clustering of each slice.
    method: "spectral" or "kmeans", as in `cuts_jax.segment`.
    seed: seeds the clustering of every slice.
    resize_to: segment each slice at this (H, W) and scale its labels back
      (e.g. `params.image_size`); None: at the slice's own size.

  Returns:
    int32 label volume of the input's shape, labels 0 .. num_clusters - 1
    within each slice.

  Raises:
    ValueError: the volume is not 3-D, the axis does not exist, or the
      volume holds NaN/Inf or is not numeric.
  """
  array = np.asarray(volume)
  if array.ndim != 3:
    raise ValueError(f"segment_volume expects a 3-D volume; got shape {array.shape}. For a "
                     "2-D image call cuts_jax.segment.")
  if not -3 <= axis < 3:
    raise ValueError(f"axis is {axis}; a volume has axes 0, 1 and 2.")
  slices = np.moveaxis(datasets.to_unit_range(array), axis, 0)
  labels = np.empty(slices.shape, np.int32)
  for index, image in enumerate(slices):
    image = np.repeat(image[..., None], params.channels, axis=-1)
    labels[index] = segmentation.segment(params, image, num_clusters=num_clusters,
                                         method=method, seed=seed, resize_to=resize_to)
  return np.moveaxis(labels, 0, axis)
