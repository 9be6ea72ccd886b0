"""The per-pixel vectors segmentation clusters, from one image: `image_features`.

One feature function serves every way of segmenting: `segment` clusters what
it returns, `segment_hierarchy` builds its levels from it, and
`segment_volume` calls it on each slice. For one image it

1. checks the image and scales it to [0, 1] as training does (`prepare_image`);
2. resizes it to the size it is segmented at (`segment_size`: the training
   image size unless the settings say otherwise);
3. embeds it and measures the embeddings in the settings' space
   (`embedding.embed_image`);
4. puts the Gaussian-smoothed image values beside them and scales each part
   to unit total variance, the image part weighted by `image_weight`
   (`scale_features`): the encoder describes each pixel's patch, the smoothed
   values keep the region's plain colour or grey level, which the
   reconstruction-space distances weigh little.

A volume's slices stop before step 4's scaling (`scaled=False`) and are scaled
together afterwards, so that a feature means the same on every slice.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from scipy import ndimage

from cuts_jax import _validation
from cuts_jax import embedding
from cuts_jax import pixels
from cuts_jax import segment_settings

__all__ = ["image_features", "image_to_segment", "prepare_image", "scale_features",
           "segment_features", "segment_size"]

# Rows of features per block when their variance is summed.
_VARIANCE_BLOCK_ROWS = 65_536


def prepare_image(image: Any, *, channels: int) -> np.ndarray:
  """Validates an (H, W) or (H, W, C) image and maps it to float32 (H, W, C) in [0, 1].

  Scaling is `pixels.to_unit_range`, the same as training: uint8 / 255, other
  dtypes min-max unless already in [0, 1]. RGBA loses its alpha channel.

  Raises:
    ValueError: wrong rank or channel count, non-numeric dtype, NaN/Inf, or
      an image with fewer than 2 pixels a side.
  """
  array = _validation.check_image(image, hint=" For a batch, call segment once per image.")
  array = pixels.as_channels_last(array)
  if array.shape[-1] != channels:
    raise ValueError(f"the model was trained on {channels}-channel images; got "
                     f"{array.shape[-1]} channel(s) (shape {np.shape(image)}). Convert the "
                     "image (e.g. skimage.color.gray2rgb or rgb2gray) first.")
  if min(array.shape[:2]) < 2:
    raise ValueError(f"image of shape {np.shape(image)} is too small to segment; it needs "
                     "at least 2 pixels a side.")
  return pixels.to_unit_range(array)


def segment_size(params: embedding.SegmentationParams,
                 settings: segment_settings.SegmentSettings,
                 own_size: Sequence[int]) -> tuple[int, int]:
  """(h, w) an image of `own_size` is segmented at: `resize_to`, the training size, or its own."""
  if settings.resize_to is not None:
    return tuple(settings.resize_to)
  if settings.at_training_size:
    return tuple(int(s) for s in params.image_size)
  return tuple(int(s) for s in own_size[:2])


def image_to_segment(params: embedding.SegmentationParams, image: Any, *,
                     settings: Optional[segment_settings.SegmentSettings] = None,
                     **overrides: Any) -> np.ndarray:
  """`prepare_image`, then resized to the size the image is segmented at (`segment_size`).

  Args:
    params: the model.
    image: (H, W) or (H, W, C) array, as `segment` takes it.
    settings, **overrides: as in `segment` (`resize_to` and
      `at_training_size` choose the size).

  Returns:
    float32 (h, w, C) in [0, 1].
  """
  settings = segment_settings.resolve_settings(params, settings=settings, **overrides)
  array = prepare_image(image, channels=params.channels)
  size = segment_size(params, settings, array.shape)
  return array if size == array.shape[:2] else pixels.resize_image(array, size)


def image_features(params: embedding.SegmentationParams, image: Any, *,
                   settings: Optional[segment_settings.SegmentSettings] = None,
                   scaled: bool = True, **overrides: Any) -> np.ndarray:
  """The per-pixel vectors segmentation clusters, for one image as `segment` takes it.

  Steps 1-4 of the module docstring.

  Args:
    params: the model.
    image: (H, W) or (H, W, C) array of any numeric dtype (see `prepare_image`).
    settings, **overrides: as in `segment` (the size, `space`,
      `image_weight` and `image_sigma` matter here).
    scaled: False leaves both parts unscaled and the image part unweighted,
      for a caller that scales many images together (`scale_features`).

  Returns:
    float32 (h, w, R) at the size of `segment_size`: the embedding features,
    then the C smoothed image channels when `image_weight` is not 0.
  """
  settings = segment_settings.resolve_settings(params, settings=settings, **overrides)
  return _features(params, image_to_segment(params, image, settings=settings), settings,
                   scaled=scaled)


def segment_features(params: embedding.SegmentationParams, image: np.ndarray, *,
                     settings: Optional[segment_settings.SegmentSettings] = None,
                     scaled: bool = True, **overrides: Any) -> np.ndarray:
  """`image_features` of an image already prepared and resized (as `image_to_segment` gives).

  Args:
    params: the model.
    image: float32 (h, w, C) in [0, 1].
    settings, **overrides: as in `segment`.
    scaled: as in `image_features`.

  Returns:
    float32 (h, w, R) with R = the embedding features (+ C when
    `image_weight` is not 0).
  """
  settings = segment_settings.resolve_settings(params, settings=settings, **overrides)
  return _features(params, np.asarray(image), settings, scaled=scaled)


def _features(params: embedding.SegmentationParams, image: np.ndarray,
              settings: segment_settings.SegmentSettings, *, scaled: bool) -> np.ndarray:
  channels = image.shape[-1] if settings.image_weight else 0
  features = embedding.embed_image(params, image, space=settings.space,
                                   spare_channels=channels)
  if not features.flags.writeable:  # A device array's read-only view.
    features = features.copy()
  if channels:
    sigma = settings.image_sigma
    features[..., -channels:] = ndimage.gaussian_filter(
        np.asarray(image, np.float32), sigma=(sigma, sigma, 0), mode="reflect")
  return scale_features(features, settings, image_channels=image.shape[-1]) if scaled \
      else features


def scale_features(features: np.ndarray, settings: segment_settings.SegmentSettings, *,
                   image_channels: int, extra_columns: int = 0) -> np.ndarray:
  """Scales unscaled features in place as segmentation clusters them, and returns them.

  The embedding part and the smoothed image part are each divided by their
  total spread (the square root of the summed per-column variance) over all
  of `features`, one image or a whole volume's slices; the image part is
  then multiplied by `settings.image_weight`.

  Args:
    features: C-contiguous float32 (..., R + extra_columns) from
      `image_features(..., scaled=False)`, possibly stacked.
    settings: the settings the features were made with.
    image_channels: the image's channels C (the image part's width when
      `settings.image_weight` is not 0).
    extra_columns: trailing columns the caller fills itself; left as they are.
  """
  image = image_channels if settings.image_weight else 0
  end = features.shape[-1] - extra_columns
  _scale_columns(features, slice(0, end - image))
  if image:
    _scale_columns(features, slice(end - image, end))
    features[..., end - image:end] *= np.float32(settings.image_weight)
  return features


def _scale_columns(features: np.ndarray, columns: slice) -> None:
  """Divides these columns (in place) by their total spread (nothing when it is 0).

  The variance is summed in float64 by blocks of rows, so that a large
  image's or volume's features are never copied whole (np.var would make a
  float64 copy: 4.4 GB for a 2048 x 2048 image).
  """
  flat = features.reshape(-1, features.shape[-1])  # A view: `features` is contiguous.
  width = len(range(*columns.indices(flat.shape[1])))
  total, squares = np.zeros(width), np.zeros(width)
  for start in range(0, len(flat), _VARIANCE_BLOCK_ROWS):
    block = flat[start:start + _VARIANCE_BLOCK_ROWS, columns].astype(np.float64)
    total += block.sum(axis=0)
    squares += np.einsum("ij,ij->j", block, block)
  mean = total / len(flat)
  spread = float(np.sqrt(np.sum(np.maximum(squares / len(flat) - mean * mean, 0.0))))
  if spread > 0:
    features[..., columns] /= np.float32(spread)
