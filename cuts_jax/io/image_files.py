"""Reading one image file as pixels: PNG/JPG/TIFF/BMP, or .npy never unpickled.

What the data-set loaders (`datasets`) and the command-line tools
(`cuts_jax.apps.predict`) read single images with.
"""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np
from skimage import io as skimage_io

from cuts_jax import pixels

__all__ = ["IMAGE_EXTENSIONS", "load_npy", "natural_key", "read_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")


def load_npy(path: os.PathLike | str) -> np.ndarray:
  """Reads a .npy array, never unpickling (a pickled file could run code).

  Raises:
    pixels.DataError: when the file is missing, truncated, pickled (an object
      array) or otherwise not a plain numpy array.
  """
  try:
    return np.load(path, allow_pickle=False)
  except Exception as error:  # numpy fails differently on each kind of bad file.
    raise pixels.DataError(
        f"{path}: cannot read it as a plain numpy array ({type(error).__name__}: {error}). "
        "Object (pickled) arrays are refused; save a numeric array with np.save(path, array)."
    ) from error


def read_image(path: os.PathLike | str) -> np.ndarray:
  """Reads PNG/JPG/TIFF/BMP or .npy (never pickled) as an (H, W, C) array.

  Raises:
    pixels.DataError: when the file cannot be read or has an unusable shape.
  """
  path = pathlib.Path(path)
  if path.suffix.lower() == ".npy":
    array = load_npy(path)
  else:
    try:
      array = skimage_io.imread(path)
    except Exception as error:  # Any decoder failure means the same to the user.
      raise pixels.DataError(
          f"{path}: cannot read the image ({type(error).__name__}: {error}).") from error
  return pixels.as_channels_last(np.asarray(array), path=path)


def natural_key(path: pathlib.Path) -> list:
  """A sort key that puts "image2" before "image10"."""
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]
