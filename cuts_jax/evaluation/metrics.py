"""Evaluation metrics: host-side numpy/scipy, never run inside `jit`.

Four families, each with its protocol stated in the function's docstring:

* Overlap with an expert mask (retina GA, MRI ventricles; paper section III.B):
  `dice`, and the protocols that turn an integer label map into one binary
  prediction: `one_pixel_selection` (the paper's: the segment under the
  expert region's `centre_pixel`) and `majority_selection` (optimistic).
* Boundary distances of 2-D or 3-D masks: `hausdorff`, `hd95` and
  `mean_surface_distance`, in pixels, or with `spacing=` in physical units
  (e.g. mm).
* Within-segment patch similarity (paper Tables I, II and V):
  `segment_patch_similarity`, built on `sample_patches` and
  `pairwise_patch_measures` (SSIM, ERGAS, RMSE of every pair of patches).
* BSDS500 region benchmarks (Arbelaez et al., 2011):
  `probabilistic_rand_index`, `variation_of_information`,
  `segmentation_covering`, with `upsample_labels` to bring a prediction to
  the humans' resolution.

Masks are "foreground = nonzero"; label maps are integer (H, W) arrays whose
values are segment ids (any values, not necessarily 0..K-1). `dice`, the
boundary distances and `centre_pixel` also take 3-D volumes.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
from scipy import ndimage

from cuts_jax import _validation
from cuts_jax.io import datasets

__all__ = ["ERGAS_EPSILON", "HumanSegmentations", "centre_pixel", "dice", "dice_majority",
           "dice_one_pixel", "hausdorff", "hd95", "majority_selection", "mean_surface_distance",
           "one_pixel_selection", "pairwise_patch_measures", "probabilistic_rand_index", "sample_patches",
           "segment_patch_similarity", "segmentation_covering", "upsample_labels",
           "variation_of_information"]

# SSIM constants of Wang et al. (2004), as skimage.metrics.structural_similarity.
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_SSIM_DEFAULT_WINDOW = 7
# Guards ERGAS's division by a patch's channel mean (see `pairwise_patch_measures`).
ERGAS_EPSILON = 1e-8
# Elements of the largest temporary (pairs x patch values) built at once.
_CHUNK_ELEMENTS = 1 << 21

HumanSegmentations = Union[np.ndarray, Sequence[np.ndarray]]


# ------------------------------------------------------------------ validation


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


# ------------------------------------------------------------------ overlap


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


# ------------------------------------------------------------------ boundary distances


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


# ------------------------------------------------------------------ patch similarity


def sample_patches(image: np.ndarray, *, num_pixels: int, patch_size: int,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Samples pixel centres uniformly, without replacement, and their patches.

  Only pixels whose P x P patch lies wholly inside the image are candidates
  (no padding). The draw is `np.random.default_rng(seed).choice` over the
  candidates' raster indices, so it is deterministic given the seed and the
  image's size.

  Args:
    image: float (H, W) or (H, W, C) in [0, 1].
    num_pixels: M, the number of centres; at least 2 and at most the number of
      candidates (H - P + 1) * (W - P + 1).
    patch_size: P, odd.
    seed: seed of the numpy generator.

  Returns:
    centres: int64 (M, 2) (row, col) of each centre.
    patches: float64 (M, P, P, C), the patch around each centre.

  Raises:
    ValueError: on a bad image, an even or too large P, or an M out of range.
  """
  image = _validation.check_unit_image(image).astype(np.float64)
  height, width, _ = image.shape
  if patch_size < 1 or patch_size % 2 == 0:
    raise ValueError(f"patch_size must be odd and positive (a patch is centred on its "
                     f"pixel), got {patch_size}.")
  if patch_size > min(height, width):
    raise ValueError(f"patch_size {patch_size} exceeds the image's {height}x{width} size.")
  half = patch_size // 2
  candidate_rows, candidate_cols = height - 2 * half, width - 2 * half
  num_candidates = candidate_rows * candidate_cols
  if not 2 <= num_pixels <= num_candidates:
    raise ValueError(f"num_pixels must be between 2 and the {num_candidates} pixels whose "
                     f"{patch_size}x{patch_size} patch fits in the image, got {num_pixels}.")
  rng = np.random.default_rng(seed)
  flat = rng.choice(num_candidates, size=num_pixels, replace=False)
  centres = np.stack([flat // candidate_cols + half, flat % candidate_cols + half], axis=1)
  offsets = np.arange(-half, half + 1)
  rows = centres[:, 0, None, None] + offsets[None, :, None]
  cols = centres[:, 1, None, None] + offsets[None, None, :]
  return centres.astype(np.int64), image[rows, cols]


def _pairwise_ssim(patches: np.ndarray, window: int, data_range: float) -> np.ndarray:
  """skimage's uniform-window SSIM of every pair of patches: (M, P, P, C) -> (M, M)."""
  num, size, _, channels = patches.shape
  # (M, Vr, Vc, C, w, w): every window position lying wholly inside the patch,
  # which are exactly the positions skimage keeps after cropping (w - 1) / 2.
  windows = np.lib.stride_tricks.sliding_window_view(patches, (window, window), axis=(1, 2))
  num_positions = (size - window + 1)**2
  windows = windows.reshape(num, num_positions, channels, window * window)
  num_values = window * window
  cov_norm = num_values / (num_values - 1.0)  # skimage's use_sample_covariance=True.
  c1, c2 = (_SSIM_K1 * data_range)**2, (_SSIM_K2 * data_range)**2
  total = np.zeros((num, num))
  for position in range(num_positions):
    values = windows[:, position].transpose(1, 0, 2)  # (C, M, w*w)
    mean = values.mean(axis=-1)  # (C, M)
    variance = cov_norm * (np.mean(values * values, axis=-1) - mean * mean)
    # One Gram matrix per channel gives every pair's mean product at once.
    mean_product = values @ values.transpose(0, 2, 1) / num_values  # (C, M, M)
    covariance = cov_norm * (mean_product - mean[:, :, None] * mean[:, None, :])
    numerator = ((2.0 * mean[:, :, None] * mean[:, None, :] + c1) * (2.0 * covariance + c2))
    denominator = ((mean[:, :, None]**2 + mean[:, None, :]**2 + c1)
                   * (variance[:, :, None] + variance[:, None, :] + c2))
    total += np.mean(numerator / denominator, axis=0)  # skimage averages the channels.
  return total / num_positions


def _pairwise_channel_mse(patches: np.ndarray) -> np.ndarray:
  """Per-channel mean squared difference of every pair: (M, P, P, C) -> (M, M, C)."""
  num, size, _, channels = patches.shape
  flat = patches.reshape(num, size * size, channels)
  mse = np.empty((num, num, channels))
  # Direct differences rather than |x|^2 + |y|^2 - 2xy: no cancellation, so
  # identical patches get exactly 0 (ERGAS divides these by small means).
  rows_per_chunk = max(1, _CHUNK_ELEMENTS // (num * size * size * channels))
  for start in range(0, num, rows_per_chunk):
    difference = flat[start:start + rows_per_chunk, None] - flat[None]
    mse[start:start + rows_per_chunk] = np.mean(difference * difference, axis=2)
  return mse


def pairwise_patch_measures(patches: np.ndarray, *, ssim_window: Optional[int] = None,
                            ssim_data_range: float = 1.0,
                            ergas_epsilon: float = ERGAS_EPSILON) -> dict[str, np.ndarray]:
  """SSIM, ERGAS and RMSE between every pair of patches.

  * SSIM: exactly `skimage.metrics.structural_similarity(x, y,
    data_range=ssim_data_range, win_size=ssim_window, channel_axis=-1)`
    (uniform window, K1 = 0.01, K2 = 0.03, sample covariance, mean over the
    window positions lying wholly inside the patch, then over channels),
    vectorised over pairs.
  * RMSE: sqrt of the mean squared difference over all P * P * C values.
  * ERGAS (Wald, 2000) with resolution ratio h/l = 1:
    100 * sqrt((1/C) sum_c (RMSE_c / mean_c)^2), RMSE_c the RMSE of channel c
    over the patch and mean_c the mean of channel c of the reference patch.
    The divisor is max(|mean_c|, ergas_epsilon) so that a black reference
    patch (e.g. MRI background) does not divide by zero; such a pair then
    scores about 100 * RMSE / ergas_epsilon, large enough to dominate any
    average over pairs, so mind dark backgrounds or raise the epsilon.

  On the paper's numbers: the original CUTS evaluation script called
  `sewar.full_ref.ergas(reference, other)` (r=4, 8x8 sliding windows) whose
  window means are divided by 8^2 a second time and whose channel terms are
  summed rather than averaged; its values are therefore about
  4 * 64 * sqrt(C) times this Wald ERGAS (~443x for RGB), which is why the
  paper's ERGAS is in the tens of thousands. It also called skimage's SSIM
  on float patches without data_range, which older skimage took as 2 (the
  float dtype range [-1, 1]); pass ssim_data_range=2 to match that.

  Args:
    patches: float (M, P, P, C) in [0, 1].
    ssim_window: side of the uniform SSIM window; odd, 3 <= it <= P. Default
      min(7, P) (7 is skimage's default).
    ssim_data_range: SSIM's data range L (C1 = (0.01 L)^2, C2 = (0.03 L)^2).
    ergas_epsilon: the floor of ERGAS's divisor.

  Returns:
    dict with float64 (M, M) matrices 'ssim', 'ergas' and 'rmse'. 'ssim' and
    'rmse' are symmetric; 'ergas'[i, j] takes patch i as the reference.
  """
  patches = np.asarray(patches, dtype=np.float64)
  if patches.ndim != 4 or patches.shape[1] != patches.shape[2]:
    raise ValueError(f"patches must be (M, P, P, C), got shape {patches.shape}.")
  size = patches.shape[1]
  window = min(_SSIM_DEFAULT_WINDOW, size) if ssim_window is None else ssim_window
  if window % 2 == 0 or not 3 <= window <= size:
    raise ValueError(f"ssim_window must be odd and between 3 and the patch size {size}, "
                     f"got {window}.")
  if not ergas_epsilon > 0:
    raise ValueError(f"ergas_epsilon must be positive, got {ergas_epsilon}.")
  channel_mse = _pairwise_channel_mse(patches)
  reference_mean = np.maximum(np.abs(patches.mean(axis=(1, 2))), ergas_epsilon)  # (M, C)
  relative = channel_mse / reference_mean[:, None, :]**2  # (RMSE_c / mean_c)^2, ref = row.
  return {
      "ssim": _pairwise_ssim(patches, window, ssim_data_range),
      "ergas": 100.0 * np.sqrt(np.mean(relative, axis=-1)),
      "rmse": np.sqrt(np.mean(channel_mse, axis=-1)),
  }


def _mean_or_nan(values: np.ndarray) -> float:
  return float(np.mean(values)) if values.size else float("nan")


def segment_patch_similarity(image: np.ndarray, labels: np.ndarray, *, num_pixels: int,
                             patch_size: int, seed: int = 0,
                             ssim_window: Optional[int] = None,
                             ssim_data_range: float = 1.0,
                             ergas_epsilon: float = ERGAS_EPSILON) -> dict[str, float]:
  """Similarity of patches within segments versus between segments (paper Tables I, II, V).

  Protocol: `sample_patches` draws M centres uniformly among the pixels whose
  P x P patch fits in the image (deterministic given `seed`); each centre
  belongs to the segment `labels[row, col]`. For every unordered pair of the
  M patches, `pairwise_patch_measures` gives SSIM, ERGAS and RMSE; each
  measure is averaged over the pairs whose centres share a segment
  ('_within') and over the pairs whose centres do not ('_between').
  ERGAS is not symmetric, so each pair contributes the mean of its two
  orders (equivalently: the average is over ordered pairs).

  A good segmentation has high `ssim_within`, low `ergas_within` and
  `rmse_within`, and the reverse between segments.

  The paper does not state M or P. Its original evaluation script used
  P = 25 and M = 100 centres drawn from all pixels (patches padded with
  mid-grey at the border), averaged each image's pairs and then the images,
  SSIM with data range 2 and sewar's ERGAS (see `pairwise_patch_measures`).

  Args:
    image: float (H, W) or (H, W, C) in [0, 1].
    labels: integer (H, W) label map of the same image.
    num_pixels: M, the number of sampled patches (M (M - 1) / 2 pairs).
    patch_size: P, odd.
    seed: seed of the sampling.
    ssim_window: see `pairwise_patch_measures` (default min(7, P)).
    ssim_data_range: see `pairwise_patch_measures` (default 1).
    ergas_epsilon: see `pairwise_patch_measures`.

  Returns:
    dict of floats: 'ssim_within', 'ergas_within', 'rmse_within',
    'ssim_between', 'ergas_between', 'rmse_between' (each NaN when no such
    pair exists), and the pair counts 'num_pairs_within' and
    'num_pairs_between'.

  Raises:
    ValueError: on shape mismatches or invalid arguments.
  """
  image = _validation.check_unit_image(image).astype(np.float64)
  labels = _validation.check_label_map(labels)
  _validation.check_same_shape(labels.shape, image.shape[:2], names=("labels", "the image"))
  centres, patches = sample_patches(image, num_pixels=num_pixels, patch_size=patch_size,
                                    seed=seed)
  measures = pairwise_patch_measures(patches, ssim_window=ssim_window,
                                     ssim_data_range=ssim_data_range,
                                     ergas_epsilon=ergas_epsilon)
  segment = labels[centres[:, 0], centres[:, 1]]
  first, second = np.triu_indices(num_pixels, k=1)
  same = segment[first] == segment[second]
  per_pair = {
      "ssim": measures["ssim"][first, second],
      "ergas": 0.5 * (measures["ergas"][first, second] + measures["ergas"][second, first]),
      "rmse": measures["rmse"][first, second],
  }
  result = {}
  for where, selected in (("within", same), ("between", ~same)):
    for name, values in per_pair.items():
      result[f"{name}_{where}"] = _mean_or_nan(values[selected])
  result["num_pairs_within"] = int(same.sum())
  result["num_pairs_between"] = int((~same).sum())
  return result


# ------------------------------------------------------------------ BSDS500 benchmarks


# The BSDS500 benchmarks' name for the package's one label resizer: a prediction is
# brought to the humans' resolution with it.
upsample_labels = datasets.resize_labels


def _human_list(labels: np.ndarray, human_segmentations: HumanSegmentations,
                ) -> list[np.ndarray]:
  if isinstance(human_segmentations, np.ndarray) and human_segmentations.ndim == 2:
    human_segmentations = [human_segmentations]
  humans = [_validation.check_label_map(h, what="each human segmentation")
             for h in human_segmentations]
  if not humans:
    raise ValueError("human_segmentations is empty; pass at least one label map.")
  for human in humans:
    _validation.check_same_shape(
        labels.shape, human.shape, names=("labels", "a human segmentation"),
        hint=" Resample the prediction with upsample_labels(labels, shape).")
  if labels.size < 2:
    raise ValueError("the label maps need at least 2 pixels (the measures count pixel pairs).")
  return humans


def _segment_ids(label_map: np.ndarray) -> np.ndarray:
  """int64 (N,) ids 0..K-1 of the segments; small non-negative labels are kept as they are.

  Label maps are usually small non-negative integers already (k-means ids,
  BSDS's 1..K), and skipping the sort of np.unique makes the BSDS measures
  several times faster. Unused ids give empty segments, which every measure
  here ignores.
  """
  flat = label_map.ravel()
  if flat.size and flat.min() >= 0 and flat.max() < 4 * flat.size:
    return flat.astype(np.int64)
  return np.unique(flat, return_inverse=True)[1].ravel().astype(np.int64)


def _contingency(first: np.ndarray, second: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Sparse contingency table of two label maps of the same shape.

  Returns:
    rows, cols: int (K,) segment indices of the K nonzero entries.
    counts: int (K,) pixels in both segments.
    first_sizes, second_sizes: int pixels per segment of each map.
  """
  a, b = _segment_ids(first), _segment_ids(second)
  num_a, num_b = int(a.max()) + 1, int(b.max()) + 1
  joint = a * num_b + b
  if num_a * num_b <= max(4 * a.size, 1 << 16):
    table = np.bincount(joint, minlength=num_a * num_b)  # O(N + table size).
    entries = np.flatnonzero(table)
    counts = table[entries]
  else:
    # Many segments on both sides: keep only the pairs of ids that occur.
    entries, counts = np.unique(joint, return_counts=True)
  return (entries // num_b, entries % num_b, counts,
          np.bincount(a, minlength=num_a), np.bincount(b, minlength=num_b))


def _rand_index(labels: np.ndarray, human: np.ndarray) -> float:
  _, _, counts, sizes, human_sizes = _contingency(labels, human)
  num = float(labels.size)
  num_pairs = num * (num - 1.0) / 2.0
  # Pairs split by exactly one of the two maps:
  # (sum a^2 + sum b^2) / 2 - sum n^2 = C(a) + C(b) - 2 C(n), C(x) = sum x(x-1)/2.
  disagreements = (0.5 * np.sum(sizes.astype(np.float64)**2)
                   + 0.5 * np.sum(human_sizes.astype(np.float64)**2)
                   - np.sum(counts.astype(np.float64)**2))
  return 1.0 - disagreements / num_pairs


def _entropy(counts: np.ndarray, total: float) -> float:
  p = counts[counts > 0] / total
  return float(-np.sum(p * np.log(p)))


def _variation_of_information(labels: np.ndarray, human: np.ndarray) -> float:
  _, _, counts, sizes, human_sizes = _contingency(labels, human)
  num = float(labels.size)
  joint = _entropy(counts, num)
  # H(A|B) + H(B|A) = 2 H(A, B) - H(A) - H(B); rounding can leave -1e-16.
  return max(0.0, 2.0 * joint - _entropy(sizes, num) - _entropy(human_sizes, num))


def _covering(labels: np.ndarray, human: np.ndarray) -> float:
  rows, cols, counts, sizes, human_sizes = _contingency(labels, human)
  overlap = counts / (sizes[rows] + human_sizes[cols] - counts)  # intersection / union
  best = np.zeros(human_sizes.size)
  np.maximum.at(best, cols, overlap)  # Segments that miss a human region overlap it by 0.
  return float(np.sum(human_sizes * best) / labels.size)


def probabilistic_rand_index(labels: np.ndarray,
                             human_segmentations: HumanSegmentations) -> float:
  """Probabilistic Rand Index (Unnikrishnan et al., 2007) as BSDS500 reports it.

  For each human map, the Rand index is the fraction of the N (N - 1) / 2
  pixel pairs on which the prediction and the human agree (same segment in
  both, or different segments in both); PRI is its mean over the humans,
  which equals the pairwise-probability form of the definition. Computed
  from a contingency table, never by enumerating pixel pairs:
  RI = 1 - ((sum_i a_i^2 + sum_j b_j^2) / 2 - sum_ij n_ij^2) / (N (N - 1) / 2),
  as the BSDS500 benchmark code does. Every label value is a segment (there
  is no ignored label).

  Args:
    labels: integer (H, W) predicted label map, at the humans' resolution
      (see `upsample_labels`).
    human_segmentations: integer (H, W) human label maps (a sequence, or a
      single 2-D array for one human).

  Returns:
    PRI in [0, 1]; higher is better.

  Raises:
    ValueError: on shape mismatches, no humans or fewer than 2 pixels.
  """
  labels = _validation.check_label_map(labels)
  humans = _human_list(labels, human_segmentations)
  return float(np.mean([_rand_index(labels, human) for human in humans]))


def variation_of_information(labels: np.ndarray,
                             human_segmentations: HumanSegmentations) -> float:
  """Variation of Information (Meila, 2005), averaged over the humans.

  VoI(A, B) = H(A | B) + H(B | A) = H(A) + H(B) - 2 I(A; B), with entropies of
  the pixel-count distributions in nats (natural log, as the BSDS500
  benchmark code). Lower is better; 0 means identical partitions.

  Args:
    labels: integer (H, W) predicted label map, at the humans' resolution.
    human_segmentations: integer (H, W) human label maps (a sequence, or a
      single 2-D array for one human).

  Returns:
    The mean VoI over the humans, in nats.

  Raises:
    ValueError: on shape mismatches, no humans or fewer than 2 pixels.
  """
  labels = _validation.check_label_map(labels)
  humans = _human_list(labels, human_segmentations)
  return float(np.mean([_variation_of_information(labels, human) for human in humans]))


def segmentation_covering(labels: np.ndarray,
                          human_segmentations: HumanSegmentations) -> float:
  """Covering of the human segmentations by the prediction, as BSDS500 reports it.

  Direction: each human region R is matched with its best predicted region,
  C(human <- prediction) = (1/N) sum_{R in human} |R| max_{R' in prediction}
  |R & R'| / |R | R'|, and the result is the mean over the humans. This is
  the benchmark code's 'cntR / sumR' (human regions of all humans pooled,
  weighted by area, which is the same mean since all humans have N pixels);
  the reverse direction (predicted regions matched to human regions) is not
  what the benchmark tabulates. Every label value is a segment.

  Args:
    labels: integer (H, W) predicted label map, at the humans' resolution.
    human_segmentations: integer (H, W) human label maps (a sequence, or a
      single 2-D array for one human).

  Returns:
    Covering in [0, 1]; higher is better.

  Raises:
    ValueError: on shape mismatches, no humans or fewer than 2 pixels.
  """
  labels = _validation.check_label_map(labels)
  humans = _human_list(labels, human_segmentations)
  return float(np.mean([_covering(labels, human) for human in humans]))
