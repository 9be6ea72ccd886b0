"""Pixels apart from data sets: scaling to [0, 1], channels, and the image and label resizers.

The segmentation code and the data-set loaders share these helpers; keeping
them here lets the method import what it needs of pixels without importing
the loaders (`cuts_jax.io.datasets`). Everything is numpy on the host.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from skimage import transform

from cuts_jax import _validation

__all__ = ["DataError", "as_channels_last", "match_channels", "resize_image", "resize_labels",
           "to_unit_range"]


class DataError(ValueError):
  """Input data (a data set, a file, an image array) is missing, empty or malformed."""


def to_unit_range(image: np.ndarray) -> np.ndarray:
  """Maps an image or volume of any numeric dtype to float32 in [0, 1].

  uint8 is divided by 255; bool becomes 0/1; other dtypes already within
  [0, 1] are kept; anything else is min-max scaled over the whole array (a
  constant array becomes zeros).

  Raises:
    DataError: when the array is empty, holds NaN or infinite values, or is
      not numeric.
  """
  array = np.asarray(image)
  if array.size == 0:
    raise DataError(f"image of shape {array.shape} holds no pixels.")
  if array.dtype == np.uint8:
    return array.astype(np.float32) / 255.0
  if array.dtype == bool:
    return array.astype(np.float32)
  _validation.check_numeric(array, error=DataError)
  array = array.astype(np.float64)
  _validation.check_finite(array, error=DataError)
  low, high = float(array.min()), float(array.max())
  if low >= 0.0 and high <= 1.0:
    return array.astype(np.float32)
  if high == low:
    return np.zeros_like(array, dtype=np.float32)
  # Halving first keeps high - low finite for values near float64's limits;
  # halving is exact, so ordinary ranges give the same result as without it.
  return ((0.5 * array - 0.5 * low) / (0.5 * high - 0.5 * low)).astype(np.float32)


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """The one image resizer: (h, w, C) float -> (H, W, C) float32, antialiased bilinear."""
  if tuple(image.shape[:2]) == tuple(size):
    return image.astype(np.float32)
  resized = transform.resize(image, tuple(size) + image.shape[2:], order=1,
                             anti_aliasing=True, preserve_range=True)
  return np.clip(resized, 0.0, 1.0).astype(np.float32)


def resize_labels(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """The one label-map resizer: nearest neighbour, centre-aligned, never mixing segment ids.

  Output pixel i takes input pixel floor((i + 0.5) * H_in / H_out), and
  likewise for columns, in exact integer arithmetic; up or down. It brings
  masks to the training size, a segmentation back to its image's size, and a
  128 x 128 prediction to the BSDS500 humans' 481 x 321.

  Args:
    labels: (H_in, W_in) label map or mask, any dtype.
    size: (H_out, W_out).

  Returns:
    (H_out, W_out) map of the same dtype.
  """
  labels = _validation.check_label_map(labels, integers=False)
  out_height, out_width = _validation.check_size(size, what="size")
  in_height, in_width = labels.shape
  rows = (2 * np.arange(out_height) + 1) * in_height // (2 * out_height)
  cols = (2 * np.arange(out_width) + 1) * in_width // (2 * out_width)
  return labels[rows[:, None], cols[None, :]]


def as_channels_last(image: np.ndarray, *, path: os.PathLike | str | None = None) -> np.ndarray:
  """(H, W) -> (H, W, 1); (H, W, 4) RGBA -> RGB; refuses other ranks and channel counts.

  Raises:
    DataError: naming `path` (when given), for what is not one image of 1 to 4 channels.
  """
  # A rank-3 array can only fail on its channels: then it may be channels-first.
  hint = " A channels-first array needs np.moveaxis(image, 0, -1)." if np.ndim(image) == 3 else ""
  image = _validation.check_image(image, what="a 2-D image", channels=(1, 2, 3, 4), hint=hint,
                                  source=path, error=DataError)
  return image[..., :3] if image.shape[-1] == 4 else image


def match_channels(image: np.ndarray, channels: int, *,
                   source: os.PathLike | str | None = None) -> np.ndarray:
  """An image with `channels` channels, converted only where nothing is lost.

  Gray becomes RGB by repeating it; RGB whose channels are all equal becomes
  gray; RGBA loses its alpha first.

  Raises:
    DataError: naming `source` (when given), for an image that is not 2-D
      with 1 to 4 channels, or whose channels differ where one is wanted.
  """
  image = as_channels_last(image, path=source)
  if image.shape[-1] == channels:
    return image
  if image.shape[-1] == 1:
    return np.repeat(image, channels, axis=-1)
  if channels == 1 and all(np.array_equal(image[..., 0], image[..., c])
                           for c in range(1, image.shape[-1])):
    return image[..., :1]
  where = f"{source}: " if source is not None else ""
  raise DataError(f"{where}the model was trained on {channels}-channel images; this one has "
                  f"{image.shape[-1]} channels of different content. Convert it first (e.g. "
                  "skimage.color.rgb2gray).")
