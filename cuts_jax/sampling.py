"""Selection of positive and negative patch pairs, on device and without Python loops.

For each image: sample anchor pixels; for each anchor, sample candidate
positives centred within `positive_radius` px of it (never the anchor itself)
and candidate negatives centred more than `negative_min_distance` px away;
compare the anchor's patch to every candidate's patch with SSIM; keep
candidate positives whose SSIM meets the threshold and candidate negatives
whose SSIM is below it, the same number of each per anchor. Shapes are static:
what is not kept is masked out.

Every patch lies fully inside the image (centres are at least P // 2 px from
the border), so SSIM never sees padding.
"""

from __future__ import annotations

from typing import NamedTuple

import dm_pix
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cuts_jax import _validation

__all__ = ["PairSelection", "disk_offsets", "extract_patches", "sampling_kwargs", "select_pairs",
           "validate_sampling_config"]


class PairSelection(NamedTuple):
  """Pairs chosen for one image (add a leading batch axis for a batch).

  Attributes:
    anchor_rc: int32 (S, 2) row, column of each anchor.
    positive_rc: int32 (S, Kp, 2) candidate positive centres.
    negative_rc: int32 (S, Kn, 2) candidate negative centres.
    positive_mask: bool (S, Kp), True where the candidate is a kept positive.
    negative_mask: bool (S, Kn), True where the candidate is a kept negative.
    anchor_patches: float (S, P, P, C), the patch around each anchor (the
      reconstruction target).
    valid_anchor: bool (S,), True where the anchor has at least one kept
      positive and one kept negative.
  """

  anchor_rc: jax.Array
  positive_rc: jax.Array
  negative_rc: jax.Array
  positive_mask: jax.Array
  negative_mask: jax.Array
  anchor_patches: jax.Array
  valid_anchor: jax.Array


def disk_offsets(radius: int) -> np.ndarray:
  """All integer (dr, dc) with 0 < dr^2 + dc^2 <= radius^2, as int32 (N, 2)."""
  span = np.arange(-radius, radius + 1)
  rows, cols = np.meshgrid(span, span, indexing="ij")
  distance2 = rows**2 + cols**2
  keep = (distance2 > 0) & (distance2 <= radius**2)
  return np.stack([rows[keep], cols[keep]], axis=-1).astype(np.int32)


def extract_patches(image: jax.Array, centres: jax.Array, patch_size: int) -> jax.Array:
  """Patches of side `patch_size` centred on `centres`.

  Args:
    image: (H, W, C).
    centres: int (..., 2) row, column; each patch must lie inside the image.
    patch_size: odd side P.

  Returns:
    (..., P, P, C) patches.
  """
  half = patch_size // 2
  flat = centres.reshape(-1, 2) - half

  def one(corner):
    return jax.lax.dynamic_slice(image, (corner[0], corner[1], 0),
                                 (patch_size, patch_size, image.shape[-1]))

  patches = jax.vmap(one)(flat)
  return patches.reshape(centres.shape[:-1] + patches.shape[1:])


def _keep_first_n(mask: jax.Array, n: jax.Array) -> jax.Array:
  """Keeps the first n True entries of each row of `mask`; n has the row shape."""
  rank = jnp.cumsum(mask, axis=-1)
  return mask & (rank <= n[..., None])


def select_pairs(key: jax.Array, image: jax.Array, *, num_anchors: int,
                 num_positive_candidates: int, num_negative_candidates: int,
                 patch_size: int, positive_radius: int, negative_min_distance: float,
                 ssim_threshold: float, ssim_filter_size: int, ssim_filter_sigma: float,
                 ) -> PairSelection:
  """Chooses anchors and their verified positives and negatives in one image.

  Args:
    key: PRNG key.
    image: float (H, W, C) in [0, 1].
    num_anchors: anchors S per image.
    num_positive_candidates: candidates Kp examined per anchor within the radius.
    num_negative_candidates: candidates Kn examined per anchor far away.
    patch_size: odd side P of the compared (and reconstructed) patches.
    positive_radius: candidate positives are centred within this many px.
    negative_min_distance: candidate negatives are centred farther than this.
    ssim_threshold: positives have SSIM >= it, negatives SSIM < it.
    ssim_filter_size: Gaussian window of the SSIM; must be <= patch_size.
    ssim_filter_sigma: its standard deviation.

  Returns:
    The PairSelection.
  """
  height, width, _ = image.shape
  half = patch_size // 2
  # dm_pix.ssim silently returns a wrong value when its window exceeds the patch.
  assert ssim_filter_size <= patch_size, (
      f"ssim_filter_size {ssim_filter_size} must be <= patch_size {patch_size}")
  assert height >= patch_size and width >= patch_size, (
      f"image {height}x{width} is smaller than the {patch_size}x{patch_size} patch")
  low = jnp.array([half, half])
  high = jnp.array([height - half, width - half])  # exclusive

  anchor_key, positive_key, negative_key = jax.random.split(key, 3)
  anchor_rc = jax.random.randint(anchor_key, (num_anchors, 2), low, high)

  offsets = jnp.asarray(disk_offsets(positive_radius))
  offset_choice = jax.vmap(
      lambda k: jax.random.choice(k, offsets.shape[0], (num_positive_candidates,),
                                  replace=num_positive_candidates > offsets.shape[0])
  )(jax.random.split(positive_key, num_anchors))
  positive_rc = anchor_rc[:, None, :] + offsets[offset_choice]
  positive_inside = jnp.all((positive_rc >= low) & (positive_rc < high), axis=-1)
  positive_rc = jnp.clip(positive_rc, low, high - 1)

  negative_rc = jax.random.randint(negative_key, (num_anchors, num_negative_candidates, 2),
                                   low, high)
  distance2 = jnp.sum((negative_rc - anchor_rc[:, None, :]) ** 2, axis=-1)
  negative_far = distance2 > negative_min_distance**2

  anchor_patches = extract_patches(image, anchor_rc, patch_size)

  def ssim_to_anchor(anchor_patch, candidate_patches):
    one_pair = lambda candidate: dm_pix.ssim(
        anchor_patch, candidate, max_val=1.0, filter_size=ssim_filter_size,
        filter_sigma=ssim_filter_sigma)
    return jax.vmap(one_pair)(candidate_patches)

  positive_ssim = jax.vmap(ssim_to_anchor)(anchor_patches,
                                           extract_patches(image, positive_rc, patch_size))
  negative_ssim = jax.vmap(ssim_to_anchor)(anchor_patches,
                                           extract_patches(image, negative_rc, patch_size))
  positive_ok = positive_inside & (positive_ssim >= ssim_threshold)
  negative_ok = negative_far & (negative_ssim < ssim_threshold)
  kept_per_anchor = jnp.minimum(positive_ok.sum(-1), negative_ok.sum(-1))
  return PairSelection(
      anchor_rc=anchor_rc,
      positive_rc=positive_rc,
      negative_rc=negative_rc,
      positive_mask=_keep_first_n(positive_ok, kept_per_anchor),
      negative_mask=_keep_first_n(negative_ok, kept_per_anchor),
      anchor_patches=anchor_patches,
      valid_anchor=kept_per_anchor > 0,
  )


def sampling_kwargs(sampling_config: ml_collections.ConfigDict) -> dict:
  """The keyword arguments of `select_pairs` from `config.sampling`."""
  return dict(
      num_anchors=sampling_config.num_anchors,
      num_positive_candidates=sampling_config.num_positive_candidates,
      num_negative_candidates=sampling_config.num_negative_candidates,
      patch_size=sampling_config.patch_size,
      positive_radius=sampling_config.positive_radius,
      negative_min_distance=sampling_config.negative_min_distance,
      ssim_threshold=sampling_config.ssim_threshold,
      ssim_filter_size=sampling_config.ssim_filter_size,
      ssim_filter_sigma=sampling_config.ssim_filter_sigma,
  )


def validate_sampling_config(sampling_config: ml_collections.ConfigDict,
                             image_shape: tuple[int, int]) -> None:
  """Raises ValueError naming the field when sampling cannot work on these images."""
  p = sampling_config.patch_size
  if p < 1 or p % 2 == 0:
    raise ValueError(f"config.sampling.patch_size is {p}; it must be odd and positive "
                     "so that the patch is centred on its pixel.")
  if sampling_config.ssim_filter_size > p:
    raise ValueError(
        f"config.sampling.ssim_filter_size ({sampling_config.ssim_filter_size}) exceeds "
        f"config.sampling.patch_size ({p}); SSIM would be computed wrongly. Use a filter "
        "no larger than the patch.")
  if sampling_config.positive_radius < 1:
    raise ValueError("config.sampling.positive_radius must be >= 1 px.")
  if sampling_config.negative_min_distance < sampling_config.positive_radius:
    raise ValueError("config.sampling.negative_min_distance must be >= positive_radius: "
                     "negatives are centred far from the anchor, positives near it.")
  _validation.check_positive_integers(**{
      f"config.sampling.{field}": sampling_config[field]
      for field in ("num_anchors", "num_positive_candidates", "num_negative_candidates")})
  height, width = image_shape
  if min(height, width) < p + 2 * sampling_config.positive_radius:
    raise ValueError(
        f"images of {height}x{width} px are too small for patches of {p} px with positives "
        f"within {sampling_config.positive_radius} px; use larger images "
        "(config.data.image_size) or a smaller patch_size.")
