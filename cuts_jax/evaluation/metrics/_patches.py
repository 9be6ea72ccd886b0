"""Within-segment patch similarity (paper Tables I, II and V).

`segment_patch_similarity`, built on `sample_patches` and
`pairwise_patch_measures` (SSIM, ERGAS, RMSE of every pair of patches).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from cuts_jax import _validation

__all__ = ["ERGAS_EPSILON", "pairwise_patch_measures", "sample_patches",
           "segment_patch_similarity"]

# SSIM constants of Wang et al. (2004), as skimage.metrics.structural_similarity.
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_SSIM_DEFAULT_WINDOW = 7
# Guards ERGAS's division by a patch's channel mean (see `pairwise_patch_measures`).
ERGAS_EPSILON = 1e-8
# Elements of the largest temporary (pairs x patch values) built at once.
_CHUNK_ELEMENTS = 1 << 21


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
