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

The settings are a `SamplingSettings`, checked once when it is built (from
`config.sampling`); `select_pairs` runs inside `jit` and checks nothing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import dm_pix
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cuts_jax import _validation

SSIM_DATA_RANGES = ("fixed", "patch")
# With ssim_data_range="patch", a pair of flat patches has this range at least (about 2.5
# grey levels of 255), so that SSIM stays defined.
PATCH_RANGE_FLOOR = 0.01

__all__ = ["PATCH_RANGE_FLOOR", "PairSelection", "SSIM_DATA_RANGES", "SamplingSettings",
           "context_means", "disk_offsets", "extract_patches", "pixels_at",
           "select_pairs", "validate_sampling_config"]


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
  """How pairs are chosen (`config.sampling`), checked when built; hashable, so a jit constant.

  Attributes:
    patch_size: odd side P of the compared (and reconstructed) patches.
    num_anchors: anchors S per image.
    num_positive_candidates: candidates Kp examined per anchor within the radius.
    num_negative_candidates: candidates Kn examined per anchor far away.
    positive_radius: candidate positives are centred within this many px (>= 1).
    negative_min_distance: candidate negatives are centred farther than this
      (>= positive_radius).
    ssim_threshold: positives have SSIM >= it, negatives SSIM < it.
    ssim_filter_size: Gaussian window of the SSIM; at most patch_size.
    ssim_filter_sigma: its standard deviation (> 0).
    ssim_data_range: SSIM's dynamic range L: "fixed" (1: images are in [0, 1])
      or "patch" (the two compared patches' own range, max - min, at least
      `PATCH_RANGE_FLOOR`).

  Raises:
    ValueError: naming the `config.sampling` field that cannot work.
  """

  patch_size: int
  num_anchors: int
  num_positive_candidates: int
  num_negative_candidates: int
  positive_radius: int
  negative_min_distance: float
  ssim_threshold: float
  ssim_filter_size: int
  ssim_filter_sigma: float
  ssim_data_range: str = "fixed"

  def __post_init__(self):
    _validation.check_one_of(self.ssim_data_range, SSIM_DATA_RANGES,
                             what="config.sampling.ssim_data_range")
    p = self.patch_size
    _validation.check_positive_integers(**{
        f"config.sampling.{field}": getattr(self, field)
        for field in ("patch_size", "num_anchors", "num_positive_candidates",
                      "num_negative_candidates", "positive_radius", "ssim_filter_size")})
    if p % 2 == 0:
      raise ValueError(f"config.sampling.patch_size is {p}; it must be odd and positive "
                       "so that the patch is centred on its pixel.")
    if self.ssim_filter_size > p:
      # dm_pix.ssim silently returns a wrong value when its window exceeds the patch.
      raise ValueError(
          f"config.sampling.ssim_filter_size ({self.ssim_filter_size}) exceeds "
          f"config.sampling.patch_size ({p}); SSIM would be computed wrongly. Use a filter "
          "no larger than the patch.")
    if self.negative_min_distance < self.positive_radius:
      raise ValueError("config.sampling.negative_min_distance must be >= positive_radius: "
                       "negatives are centred far from the anchor, positives near it.")
    if not (math.isfinite(self.ssim_filter_sigma) and self.ssim_filter_sigma > 0):
      raise ValueError(f"config.sampling.ssim_filter_sigma is {self.ssim_filter_sigma}; it "
                       "must be a positive number of pixels.")
    if not math.isfinite(self.ssim_threshold):
      raise ValueError(f"config.sampling.ssim_threshold is {self.ssim_threshold}; it must "
                       "be a finite SSIM value (the paper's is 0.5).")

  @classmethod
  def from_config(cls, sampling_config: ml_collections.ConfigDict) -> SamplingSettings:
    """The settings of `config.sampling`; raises ValueError naming a field that cannot work."""
    return cls(**{field.name: sampling_config[field.name]
                  for field in dataclasses.fields(cls) if field.name in sampling_config})

  def check_image_size(self, image_shape: tuple[int, int]) -> None:
    """Raises ValueError when (H, W) images are too small for these patches and radius.

    Every patch must fit inside the image, around anchors and candidate
    positives alike; `select_pairs` takes this as given.
    """
    height, width = image_shape
    p, radius = self.patch_size, self.positive_radius
    if min(height, width) < p + 2 * radius:
      raise ValueError(
          f"images of {height}x{width} px are too small for patches of {p} px with positives "
          f"within {radius} px; use larger images (config.data.image_size) or a smaller "
          "patch_size.")


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


def context_means(image: jax.Array, centres: jax.Array, *, side: int, cells: int) -> jax.Array:
  """Mean colour of each cell of a coarse grid laid over a wide window around each centre.

  The window of `side` px (a multiple of `cells`) starts `side // 2` px above
  and left of its centre: centred for odd sides, half a pixel towards the top
  left for even ones. It is cut into cells x cells squares of side // cells
  px and each square is averaged. Where the window leaves the image, the
  image is mirrored at its border without repeating the edge pixel (numpy's
  "reflect", as the encoder's padding="reflect"), so every cell holds image
  values; the image must therefore be larger than side // 2 on both axes.
  Vectorised: one box filter over the padded image, then one gather.

  Args:
    image: float (H, W, C).
    centres: int (..., 2) row, column of each window's centre pixel.
    side: the window's side in pixels.
    cells: cells per side of the grid.

  Returns:
    (..., cells, cells, C) cell means.

  Example: a 4x4 window with 2x2 cells around (2, 2) of an image averages its
  four 2x2 quadrants image[0:2, 0:2], image[0:2, 2:4], image[2:4, 0:2] and
  image[2:4, 2:4].
  """
  cell = side // cells
  half = side // 2
  padded = jnp.pad(image, ((half, half), (half, half), (0, 0)), mode="reflect")
  # boxes[i, j] is the mean of padded[i:i + cell, j:j + cell]; a window centred on (r, c)
  # starts at padded[r, c], so its cell (a, b) starts at (r + a * cell, c + b * cell).
  boxes = jax.lax.reduce_window(padded, 0.0, jax.lax.add, (cell, cell, 1), (1, 1, 1),
                                "VALID") / (cell * cell)
  starts = cell * jnp.arange(cells)
  rows = centres[..., 0, None] + starts
  cols = centres[..., 1, None] + starts
  return boxes[rows[..., :, None], cols[..., None, :]]


def _keep_first_n(mask: jax.Array, n: jax.Array) -> jax.Array:
  """Keeps the first n True entries of each row of `mask`; n has the row shape."""
  rank = jnp.cumsum(mask, axis=-1)
  return mask & (rank <= n[..., None])


def select_pairs(key: jax.Array, image: jax.Array,
                 settings: SamplingSettings) -> PairSelection:
  """Chooses anchors and their verified positives and negatives in one image.

  Args:
    key: PRNG key.
    image: float (H, W, C) in [0, 1], large enough for the settings (see
      `SamplingSettings.check_image_size`; not checked here, inside `jit`).
    settings: the `SamplingSettings` (static: bind it with functools.partial).

  Returns:
    The PairSelection.
  """
  height, width, _ = image.shape
  patch_size = settings.patch_size
  half = patch_size // 2
  low = jnp.array([half, half])
  high = jnp.array([height - half, width - half])  # exclusive

  anchor_key, positive_key, negative_key = jax.random.split(key, 3)
  anchor_rc = jax.random.randint(anchor_key, (settings.num_anchors, 2), low, high)

  offsets = jnp.asarray(disk_offsets(settings.positive_radius))
  num_positive = settings.num_positive_candidates
  offset_choice = jax.vmap(
      lambda k: jax.random.choice(k, offsets.shape[0], (num_positive,),
                                  replace=num_positive > offsets.shape[0])
  )(jax.random.split(positive_key, settings.num_anchors))
  positive_rc = anchor_rc[:, None, :] + offsets[offset_choice]
  positive_inside = jnp.all((positive_rc >= low) & (positive_rc < high), axis=-1)
  positive_rc = jnp.clip(positive_rc, low, high - 1)

  negative_rc = jax.random.randint(
      negative_key, (settings.num_anchors, settings.num_negative_candidates, 2), low, high)
  distance2 = jnp.sum((negative_rc - anchor_rc[:, None, :]) ** 2, axis=-1)
  negative_far = distance2 > settings.negative_min_distance**2

  anchor_patches = extract_patches(image, anchor_rc, patch_size)

  def data_range(anchor_patch, candidate):
    if settings.ssim_data_range == "fixed":
      return 1.0
    both = jnp.stack([anchor_patch, candidate])
    return jnp.maximum(jnp.max(both) - jnp.min(both), PATCH_RANGE_FLOOR)

  def ssim_to_anchor(anchor_patch, candidate_patches):
    one_pair = lambda candidate: dm_pix.ssim(
        anchor_patch, candidate, max_val=data_range(anchor_patch, candidate),
        filter_size=settings.ssim_filter_size, filter_sigma=settings.ssim_filter_sigma)
    return jax.vmap(one_pair)(candidate_patches)

  positive_ssim = jax.vmap(ssim_to_anchor)(anchor_patches,
                                           extract_patches(image, positive_rc, patch_size))
  negative_ssim = jax.vmap(ssim_to_anchor)(anchor_patches,
                                           extract_patches(image, negative_rc, patch_size))
  positive_ok = positive_inside & (positive_ssim >= settings.ssim_threshold)
  negative_ok = negative_far & (negative_ssim < settings.ssim_threshold)
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


def pixels_at(embeddings: jax.Array, rows_cols: jax.Array) -> jax.Array:
  """The vectors at chosen pixels: embeddings (H, W, D), int rows_cols (..., 2) -> (..., D)."""
  return embeddings[rows_cols[..., 0], rows_cols[..., 1]]


def validate_sampling_config(sampling_config: ml_collections.ConfigDict,
                             image_shape: tuple[int, int]) -> SamplingSettings:
  """`config.sampling` as checked settings for (H, W) images; ValueError names the field."""
  settings = SamplingSettings.from_config(sampling_config)
  settings.check_image_size(image_shape)
  return settings
