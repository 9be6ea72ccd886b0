"""Controls for CUTS: the same segment pipeline with the learned network taken away.

Each control segments with the trained model's own settings (its k, clustering method,
seed, smoothed-image weight, connected segments and folding of small pieces), so that
the only thing that differs from the `cuts` row is where the per-pixel features come from:

- `untrained_params`: the same architecture at its random initialisation (seeded like a
  training run), run through the full default pipeline (`cuts_untrained` row);
- `patch_segments`: no network at all; the leading principal components of each pixel's
  raw P x P patch stand in for the embedding, beside the same smoothed image
  (`patch_segments` row).

The matched colour control (`colour_segments`: smoothed colour alone through the same
clustering and connected segments) is a baseline (`baselines.kmeans_pixels`) whose k and
folding `evaluate` takes from the evaluation config when it is marked `match_cuts`.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import ndimage

from cuts_jax import features as features_lib
from cuts_jax import model as model_lib
from cuts_jax import segmentation

__all__ = ["patch_features", "patch_segments", "untrained_params"]


def untrained_params(config: ml_collections.ConfigDict,
                     params: segmentation.SegmentationParams, *,
                     seed: int = 0) -> segmentation.SegmentationParams:
  """The trained model's architecture and settings with randomly initialised weights.

  The weights are drawn as a training run of `config.seed = seed` draws its
  initial ones (the reconstruction head too, so the reconstruction space is the
  random head's); batch-norm statistics are the initial ones (mean 0, variance 1).

  Args:
    config: the run's config (its `model` and `sampling.patch_size`).
    params: the trained model; its channels, image size and settings are kept.
    seed: the seed of the random initialisation.

  Returns:
    `SegmentationParams` that segment with the trained model's settings.
  """
  model = model_lib.build_model(config, channels=params.channels)
  init_key, _ = jax.random.split(jax.random.key(seed))
  shape = (1, *params.image_size, params.channels)
  variables = jax.jit(lambda key: model.init(key, jnp.zeros(shape, jnp.float32), train=False))(
      init_key)
  untrained = segmentation.SegmentationParams.from_variables(variables, config)
  return untrained.replace(settings=segmentation.resolve_settings(params))


def patch_features(image: np.ndarray, *, patch_size: int = 7,
                   num_components: int = 16) -> np.ndarray:
  """The leading principal components of every pixel's raw patch.

  Args:
    image: float (H, W, C) image.
    patch_size: odd side P of the patch around each pixel (borders reflected).
    num_components: how many components to keep (at most P * P * C).

  Returns:
    float32 (H, W, num_components): each pixel's centred patch projected on
    the image's own leading principal axes.
  """
  image = np.asarray(image, np.float32)
  if patch_size < 1 or patch_size % 2 == 0:
    raise ValueError(f"patch_size must be odd and positive; got {patch_size}.")
  height, width, channels = image.shape
  size = patch_size * patch_size * channels
  if not 1 <= num_components <= size:
    raise ValueError(f"num_components must lie in [1, {size}] for {patch_size} px patches of "
                     f"{channels} channel(s); got {num_components}.")
  half = patch_size // 2
  padded = np.pad(image, ((half, half), (half, half), (0, 0)), mode="reflect")
  windows = np.lib.stride_tricks.sliding_window_view(padded, (patch_size, patch_size), (0, 1))
  flat = windows.reshape(height * width, size).astype(np.float64)
  flat -= flat.mean(axis=0)
  _, vectors = np.linalg.eigh(flat.T @ flat)
  leading = vectors[:, ::-1][:, :num_components]
  return (flat @ leading).astype(np.float32).reshape(height, width, num_components)


def patch_segments(params: segmentation.SegmentationParams, image: Any, *,
                   patch_size: int = 7, num_components: int = 16,
                   settings: Optional[segmentation.SegmentSettings] = None,
                   **overrides: Any) -> np.ndarray:
  """`segment` with the principal components of raw patches in place of the embedding.

  The image is prepared and resized as `segment` would (`image_to_segment`);
  its `patch_features` go beside the smoothed image exactly where the
  embedding features would, scaled the same way (`features.scale_features`),
  and are clustered and cut into connected segments with the model's settings.

  Args:
    params: the trained model (only its settings and sizes are used).
    image: (H, W) or (H, W, C) array, as `segment` takes it.
    patch_size: side of the raw patches (7: the reconstruction target's).
    num_components: principal components kept.
    settings, **overrides: as in `segment`.

  Returns:
    int32 (H, W) label map, as `segment` returns it.
  """
  settings = segmentation.resolve_settings(params, settings=settings, **overrides)
  prepared = features_lib.image_to_segment(params, image, settings=settings)
  columns = [patch_features(prepared, patch_size=patch_size, num_components=num_components)]
  if settings.image_weight:
    sigma = settings.image_sigma
    columns.append(ndimage.gaussian_filter(prepared, sigma=(sigma, sigma, 0), mode="reflect"))
  features = np.ascontiguousarray(np.concatenate(columns, axis=-1), dtype=np.float32)
  features = features_lib.scale_features(features, settings, image_channels=prepared.shape[-1])
  return segmentation.segments_from_features(
      params, features, size=np.shape(image)[:2], settings=settings,
      superpixels=segmentation.superpixels_for(prepared, settings))
