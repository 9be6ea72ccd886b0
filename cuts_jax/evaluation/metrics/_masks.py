"""Measures of a predicted mask against an expert mask: overlap and boundary distances.

* Overlap (retina GA, MRI ventricles; paper section III.B): `dice`, and the
  protocols that turn an integer label map into one binary prediction:
  `one_pixel_selection` (the paper's: the segment under the expert region's
  `centre_pixel`) and `majority_selection` (optimistic).
* Boundary distances of 2-D or 3-D masks: `hausdorff`, `hd95` and
  `mean_surface_distance`, in pixels, or with `spacing=` in physical units
  (e.g. mm).

Masks are "foreground = nonzero"; `dice`, the boundary distances and
`centre_pixel` also take 3-D volumes.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np
from scipy import ndimage

from cuts_jax import _validation

__all__ = ["centre_pixel", "dice", "dice_majority", "dice_one_pixel", "hausdorff", "hd95",
           "majority_selection", "mean_surface_distance", "one_pixel_selection"]


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
  array = np.asarray(mask)
  if array.ndim == 0:
    raise ValueError(f"{name} must be an array mask, got a scalar.")
  return array != 0


def _as_target(target: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  mask = _as_mask(target, "target")
  _validation.check_same_shape(mask.shape, shape, names=("target", "labels"))
  if not mask.any():
    raise ValueError("target is empty: there is no expert-region pixel to select a "
                     "segment with; leave this image out of the Dice average.")
  return mask


def dice(prediction: np.ndarray, target: np.ndarray) -> float:
  """Dice coefficient 2 |P & T| / (|P| + |T|) of two binary masks.

  Args:
    prediction: mask of any shape; nonzero (or True) is foreground.
    target: mask of the same shape.

  Returns:
    The Dice coefficient in [0, 1]. When both masks are empty it is 1.0: the
    prediction agrees perfectly with a target that has nothing to find (the
    formula would be 0/0). When only one is empty it is 0.0.

  Raises:
    ValueError: when the shapes differ.

  Example: 4 predicted pixels, 6 target pixels, 3 shared: 2 * 3 / (4 + 6) = 0.6.
  """
  prediction = _as_mask(prediction, "prediction")
  target = _as_mask(target, "target")
  _validation.check_same_shape(prediction.shape, target.shape, names=("prediction", "target"))
  total = int(prediction.sum()) + int(target.sum())
  if total == 0:
    return 1.0
  return 2.0 * int(np.logical_and(prediction, target).sum()) / total


def centre_pixel(target: np.ndarray, *, percentile: float = 50.0) -> tuple[int, ...]:
  """The expert-region pixel (or voxel) a user would click (the paper's section III.B).

  The point (median row, median column), and in 3-D the median of the third
  index too, of the region's pixels is computed (numpy's linear
  interpolation, so each may be a half-integer; the point may fall outside
  the region, e.g. in a ring); the answer is the region pixel nearest to it
  in Euclidean distance (in index units). Ties go to the first pixel in
  raster (row-major) order.

  Args:
    target: (H, W) binary mask of the expert region, or a (D0, D1, D2)
      volume's; nonzero is foreground.
    percentile: the percentile of each index that makes the point; 50 is
      the median of the paper's text. (The original CUTS script used 25 for
      the brain data set and 50 elsewhere.)

  Returns:
    (row, col), or (i, j, k) for a volume, as Python ints.

  Raises:
    ValueError: when the mask is not 2-D or 3-D, or is empty.
  """
  mask = _as_mask(target, "target")
  if mask.ndim not in (2, 3):
    raise ValueError(f"target must be a 2-D (H, W) mask or a 3-D volume's, got shape "
                     f"{mask.shape}.")
  indices = np.nonzero(mask)  # In raster order, which makes argmin's tie-break raster order.
  if indices[0].size == 0:
    raise ValueError("target is empty: there is no expert-region pixel to click.")
  squared_distance = sum((index - np.percentile(index, percentile))**2 for index in indices)
  nearest = int(np.argmin(squared_distance))
  return tuple(int(index[nearest]) for index in indices)


def one_pixel_selection(labels: np.ndarray, target: np.ndarray, *,
                        percentile: float = 50.0) -> np.ndarray:
  """The paper's protocol: the segment under the expert region's centre pixel.

  Args:
    labels: integer (H, W) label map (segment ids).
    target: (H, W) binary expert mask.
    percentile: see `centre_pixel` (50: the median).

  Returns:
    bool (H, W): `labels == labels[centre_pixel(target)]`. Only one pixel of
    the expert mask is used, as a practitioner would click one pixel.

  Raises:
    ValueError: when the shapes differ or the target is empty.
  """
  labels = _validation.check_label_map(labels)
  _as_target(target, labels.shape)
  row, col = centre_pixel(target, percentile=percentile)
  return labels == labels[row, col]


def majority_selection(labels: np.ndarray, target: np.ndarray) -> np.ndarray:
  """The segment that holds the most expert-region pixels.

  Optimistic: unlike `one_pixel_selection` it looks at the whole expert mask,
  so it is an upper bound on what a one-click user gets rather than the
  paper's protocol. Ties go to the smallest segment id.

  Args:
    labels: integer (H, W) label map (segment ids).
    target: (H, W) binary expert mask.

  Returns:
    bool (H, W) mask of the chosen segment.

  Raises:
    ValueError: when the shapes differ or the target is empty.
  """
  labels = _validation.check_label_map(labels)
  mask = _as_target(target, labels.shape)
  # np.unique sorts the ids, so argmax's first maximum is the smallest id.
  ids, counts = np.unique(labels[mask], return_counts=True)
  return labels == ids[np.argmax(counts)]


def dice_one_pixel(labels: np.ndarray, target: np.ndarray, *,
                   percentile: float = 50.0) -> float:
  """`dice(one_pixel_selection(labels, target), target)`: the paper's Dice."""
  return dice(one_pixel_selection(labels, target, percentile=percentile), target)


def dice_majority(labels: np.ndarray, target: np.ndarray) -> float:
  """`dice(majority_selection(labels, target), target)`: an optimistic Dice."""
  return dice(majority_selection(labels, target), target)


def _boundary(mask: np.ndarray) -> np.ndarray:
  # Foreground pixels with a 4-connected (face) neighbour in the background;
  # outside the image counts as background, so the image edge is a boundary.
  structure = ndimage.generate_binary_structure(mask.ndim, 1)
  return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _bounding_box(mask: np.ndarray, *, margin: int) -> tuple[slice, ...]:
  """Slices of the smallest box holding every nonzero pixel, `margin` wider, within the array."""
  box = []
  for axis in range(mask.ndim):
    present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
    box.append(slice(max(present[0] - margin, 0), min(present[-1] + 1 + margin,
                                                      mask.shape[axis])))
  return tuple(box)


def _boundary_distances(prediction: np.ndarray, target: np.ndarray, spacing: Any,
                        ) -> Union[float, tuple[np.ndarray, np.ndarray]]:
  """Distances from each boundary to the other, or the answer for empty masks."""
  prediction = _as_mask(prediction, "prediction")
  target = _as_mask(target, "target")
  _validation.check_same_shape(prediction.shape, target.shape, names=("prediction", "target"))
  sampling = _validation.check_spacing(spacing, ndim=prediction.ndim)
  has_prediction, has_target = bool(prediction.any()), bool(target.any())
  if not has_prediction and not has_target:
    return 0.0
  if not has_prediction or not has_target:
    return float("inf")
  # Euclidean distances between points of the two masks do not depend on
  # what lies outside them, so their bounding box (plus one background pixel
  # that keeps the boundaries as they are) gives the same answer, faster for
  # small structures in large volumes.
  box = _bounding_box(prediction | target, margin=1)
  prediction, target = prediction[box], target[box]
  prediction_boundary, target_boundary = _boundary(prediction), _boundary(target)
  # distance_transform_edt measures the distance to the nearest zero, so the
  # boundary pixels are the zeros; `sampling` makes it physical.
  to_target = ndimage.distance_transform_edt(~target_boundary,
                                             sampling=sampling)[prediction_boundary]
  to_prediction = ndimage.distance_transform_edt(~prediction_boundary,
                                                 sampling=sampling)[target_boundary]
  return to_target, to_prediction


def hausdorff(prediction: np.ndarray, target: np.ndarray, *, spacing: Any = None) -> float:
  """Symmetric Hausdorff distance between the boundaries of two binary masks.

  Boundary pixels are the foreground pixels with a face-connected (4-connected
  in 2-D, 6-connected in 3-D) background neighbour, the image edge counting as
  background, as in MedPy. The result is the largest Euclidean distance from a
  boundary pixel of either mask to the nearest boundary pixel of the other.

  Args:
    prediction: binary mask, 2-D or 3-D; nonzero is foreground.
    target: binary mask of the same shape.
    spacing: pixel (voxel) size, one number or one per axis, e.g. in mm,
      as MONAI's `spacing=`; the result is in its units. None: pixels.

  Returns:
    The distance; 0.0 when both masks are empty and inf when exactly one is
    empty.

  Raises:
    ValueError: when the shapes differ or the spacing is not positive.
  """
  distances = _boundary_distances(prediction, target, spacing)
  if isinstance(distances, float):
    return distances
  return float(max(distances[0].max(), distances[1].max()))


def hd95(prediction: np.ndarray, target: np.ndarray, *, spacing: Any = None) -> float:
  """95th percentile Hausdorff distance between the boundaries of two masks.

  The boundary-to-boundary distances of both directions (as in `hausdorff`)
  are pooled into one list and its 95th percentile is taken with numpy's
  linear interpolation, as MedPy's `hd95` does (MONAI instead takes the
  larger of the two directed percentiles).

  Args, returns and raises as `hausdorff` (distances in the units of `spacing`).
  """
  distances = _boundary_distances(prediction, target, spacing)
  if isinstance(distances, float):
    return distances
  return float(np.percentile(np.concatenate(distances), 95))


def mean_surface_distance(prediction: np.ndarray, target: np.ndarray, *,
                          spacing: Any = None) -> float:
  """Mean distance between the boundaries (surfaces, in 3-D) of two masks.

  The boundary-to-boundary distances of both directions (as in `hausdorff`)
  are pooled and averaged: the symmetric average surface distance (MONAI's
  `compute_average_surface_distance(symmetric=True)`).

  Args, returns and raises as `hausdorff` (distances in the units of `spacing`).

  Example: two one-voxel-thick plates 3 voxels apart along axis 0 with
  spacing (2.0, 1.0, 1.0) are 6.0 mm apart everywhere: hd95 = MSD = 6.0.
  """
  distances = _boundary_distances(prediction, target, spacing)
  if isinstance(distances, float):
    return distances
  return float(np.mean(np.concatenate(distances)))
