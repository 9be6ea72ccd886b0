"""The one vocabulary of input checks, used wherever cuts_jax takes arrays or settings.

Each check raises ValueError (or the `error` class it is given, e.g. the
loaders' `DataError`) with a message that says what was expected, what came,
and what to do, so that one mistake reads the same in `segment`, the metrics,
the baselines, the loaders, the metric writer and the command-line tools.

The value checks read `array.min()`/`array.max()`, so they work on numpy and
on concrete jax arrays alike; under `jit` a caller skips them (see `embed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import jax
import numpy as np

_SCALE_HINT = " Scale it first with cuts_jax.pixels.to_unit_range."


def _prefix(source: Any) -> str:
  return f"{source}: " if source else ""


def _count_text(counts: Sequence[int]) -> str:
  counts = sorted(counts)
  if len(counts) > 2 and counts == list(range(counts[0], counts[-1] + 1)):
    return f"{counts[0]} to {counts[-1]}"
  return " or ".join(str(c) for c in counts)


def check_image(image: Any, *, what: str = "one image", channels: Optional[Sequence[int]] = None,
                hint: str = "", source: Any = None, error: type = ValueError) -> np.ndarray:
  """An (H, W) or (H, W, C) array, returned as numpy (H, W, C) ((H, W) gains C = 1).

  Args:
    image: the array.
    what: how the message names what was expected, e.g. "one image".
    channels: the channel counts allowed (None: any).
    hint: appended to the message: what to do instead.
    source: the file it came from, named first in the message.
    error: the exception class raised.
  """
  array = np.asarray(image)
  if array.ndim not in (2, 3):
    raise error(f"{_prefix(source)}expected {what} of shape (H, W) or (H, W, C); got shape "
                f"{array.shape}.{hint}")
  if array.ndim == 2:
    array = array[..., None]
  if channels is not None and array.shape[-1] not in channels:
    raise error(f"{_prefix(source)}expected {_count_text(channels)} channels in the last axis "
                f"of {what}; got shape {array.shape}.{hint}")
  return array


def check_batch(images: Any, *, channels: Optional[int] = None, what: str = "images",
                hint: str = "") -> Any:
  """A (B, H, W, C) batch with H, W >= 1 (and C == `channels`); returned as given."""
  shape = np.shape(images)
  expected = f"(B, H, W, {'C' if channels is None else channels})"
  if (len(shape) != 4 or min(shape[1:3]) < 1
      or (channels is not None and shape[-1] != channels)):
    raise ValueError(f"expected {what} of shape {expected} with H, W >= 1; got {shape}. For "
                     f"one (H, W, C) image use {what}[None].{hint}")
  return images


def check_numeric(array: Any, *, what: str = "image", error: type = ValueError) -> None:
  """Integers, floats or bools."""
  dtype = array.dtype
  if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
          or dtype == bool):
    raise error(f"{what} dtype {dtype} is not numeric; expected integers or floats.")


def check_floating(array: Any, *, what: str = "image", hint: str = _SCALE_HINT) -> None:
  """Floats (or bools), as a [0, 1] image must be: integer images are refused, not guessed."""
  dtype = array.dtype
  if not (np.issubdtype(dtype, np.floating) or dtype == bool):
    raise ValueError(f"expected float {what} in [0, 1]; got dtype {dtype}.{hint}")


def check_finite(array: Any, *, what: str = "image", error: type = ValueError) -> None:
  """No NaN or infinite value (min and max propagate both, without a mask of the array)."""
  if array.size and not (np.isfinite(float(array.min())) and np.isfinite(float(array.max()))):
    raise error(f"{what} holds NaN or infinite values; replace them (e.g. with np.nan_to_num) "
                "first.")


def check_unit_range(array: Any, *, what: str = "image", tolerance: float = 0.0,
                     hint: str = _SCALE_HINT) -> None:
  """Values within [0, 1] (give or take `tolerance`)."""
  if not array.size:
    return
  low, high = float(array.min()), float(array.max())
  if low < -tolerance or high > 1.0 + tolerance:
    raise ValueError(f"{what} values lie in [{low:.4g}, {high:.4g}]; expected values in "
                     f"[0, 1].{hint}")


def check_unit_image(image: Any, *, what: str = "image") -> np.ndarray:
  """A finite float (H, W) or (H, W, C) image in [0, 1], returned as numpy (H, W, C).

  The images that metrics, baselines and pictures take; `segment` instead
  scales whatever it is given (`prepare_image`).
  """
  array = check_image(image)
  if min(array.shape) < 1:
    raise ValueError(f"expected one image of shape (H, W) or (H, W, C) with no empty axis; got "
                     f"shape {np.shape(image)}.")
  check_floating(array, what=what)
  check_finite(array, what=what)
  check_unit_range(array, what=what)
  return array


def check_integer_dtype(array: Any, *, what: str = "labels") -> None:
  """Integers or bools (segment ids, masks)."""
  dtype = np.asarray(array).dtype
  if not (np.issubdtype(dtype, np.integer) or dtype == bool):
    raise ValueError(f"{what} must hold integers (segment ids); got dtype {dtype}. Cast with "
                     ".astype(np.int32) if its values are whole numbers.")


def check_label_map(labels: Any, *, what: str = "labels", integers: bool = True,
                    hint: str = "", ndim: int = 2) -> np.ndarray:
  """An (H, W) label map, or with `ndim=3` a label volume (of integers unless `integers=False`)."""
  array = np.asarray(labels)
  if array.ndim != ndim:
    kind = "2-D (H, W) label map" if ndim == 2 else f"{ndim}-D label volume"
    raise ValueError(f"{what} must be a {kind}; got shape {array.shape}.{hint}")
  if integers:
    check_integer_dtype(array, what=what)
  return array


def check_same_shape(first: Sequence[int], second: Sequence[int], *,
                     names: tuple[str, str], hint: str = "") -> None:
  """Two shapes that must be equal, e.g. a prediction's and its target's."""
  if tuple(first) != tuple(second):
    raise ValueError(f"{names[0]} has shape {tuple(first)} but {names[1]} has shape "
                     f"{tuple(second)}; they must match.{hint}")


# How a message names the indices of a pixel (2-D) or a voxel (3-D).
_INDEX_NAMES = {2: ("(row, col)", "two"), 3: ("(i, j, k)", "three")}


def check_pixel(pixel: Any, *, shape: Optional[Sequence[int]] = None, what: str = "pixel",
                where: str = "label map", ndim: int = 2) -> tuple[int, ...]:
  """A pixel (row, col), or with `ndim=3` a voxel (i, j, k), as Python ints.

  The entries are non-negative integers, inside `shape` when it is given.
  """
  names, count = _INDEX_NAMES[ndim]
  well_formed = (isinstance(pixel, (Sequence, np.ndarray)) and not isinstance(pixel, str)
                 and len(pixel) == ndim
                 and all(isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_))
                         for p in pixel))
  if not well_formed:
    raise ValueError(f"{what} must be {names}, {count} integers; got {pixel!r}.")
  index = tuple(int(p) for p in pixel)
  text = "(" + ", ".join(str(i) for i in index) + ")"
  if min(index) < 0:
    counting = "rows and columns count" if ndim == 2 else "indices count"
    raise ValueError(f"{what} {text} has a negative entry; {counting} from 0.")
  if shape is not None and not all(i < s for i, s in zip(index, shape)):
    extent = "x".join(str(s) for s in shape[:ndim])
    raise ValueError(f"{what} {text} lies outside the {extent} {where}.")
  return index


def check_clicks(clicks: Any, *, shape: Sequence[int], what: str = "click",
                 where: str = "label map", allow_empty: bool = False) -> list[tuple[int, ...]]:
  """One click or a sequence of clicks, each a pixel (row, col) or voxel (i, j, k) inside `shape`.

  The clicks have as many indices as `shape` has axes (2 or 3); each is
  checked by `check_pixel`. Returns them as a list of tuples of Python ints.
  """
  ndim = len(shape)
  array = np.asarray(clicks, dtype=object) if not isinstance(clicks, np.ndarray) else clicks
  if array.ndim == 0 or (array.ndim == 1 and len(array)
                          and not isinstance(array[0], (Sequence, np.ndarray))):
    items = [clicks]  # One click (or something that is no click, refused below).
  elif array.ndim == 1 and not len(array):
    items = []
  else:
    items = list(clicks)
  if not items and not allow_empty:
    raise ValueError(f"no {what} given; give one (row, col) pixel of an image or (i, j, k) "
                     "voxel of a volume, or a list of them.")
  checked = []
  for item in items:
    if isinstance(item, (Sequence, np.ndarray)) and not isinstance(item, str) and \
        len(item) in (2, 3) and len(item) != ndim:
      kind = "an image's" if ndim == 2 else "a volume's"
      given = "a voxel (i, j, k)" if len(item) == 3 else "a pixel (row, col)"
      raise ValueError(f"{what} {tuple(item)!r} is {given}, but the {where} of shape "
                       f"{tuple(shape)} is {kind}; give {ndim} indices per {what}.")
    checked.append(check_pixel(item, shape=shape, what=what, where=where, ndim=ndim))
  return checked


def check_spacing(spacing: Any, *, ndim: int, what: str = "spacing") -> tuple[float, ...]:
  """Voxel sizes: None (1 per axis), one number for every axis, or `ndim` numbers; all > 0.

  Returns them as `ndim` Python floats (the units are the caller's, e.g. mm).
  """
  if spacing is None:
    return (1.0,) * ndim
  values = np.atleast_1d(np.asarray(spacing, dtype=object))
  if values.ndim != 1 or len(values) not in (1, ndim):
    raise ValueError(f"{what} is {spacing!r}; expected one number or {ndim} (one per axis), "
                     "e.g. the voxel sizes in mm.")
  numbers = all(isinstance(v, (int, float, np.integer, np.floating))
                and not isinstance(v, (bool, np.bool_)) for v in values)
  if not numbers or not all(np.isfinite(float(v)) and v > 0 for v in values):
    raise ValueError(f"{what} is {spacing!r}; voxel sizes must be positive finite numbers.")
  sizes = tuple(float(v) for v in values)
  return sizes * ndim if len(sizes) == 1 else sizes


def check_share(value: Any, *, name: str) -> None:
  """Raises ValueError unless `value` is a number in (0, 1], naming it `name`."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
      or not 0 < value <= 1:
    raise ValueError(f"{name} is {value!r}; expected a share in (0, 1].")


def check_positive_integers(**values: Any) -> None:
  """Each value an integer >= 1 (bools are not counts); the message names the argument."""
  for name, value in values.items():
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
        or value < 1:
      raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def check_size(size: Any, *, what: str, minimum: int = 1, hint: str = "",
               error: type = ValueError) -> tuple[int, int]:
  """(height, width): two integers >= `minimum`, returned as Python ints."""
  try:
    height, width = size
    valid = all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_))
                and s >= minimum for s in (height, width))
  except (TypeError, ValueError):
    valid = False
  if not valid:
    raise error(f"{what} is {size!r}; expected (height, width), two integers >= {minimum}."
                f"{hint}")
  return int(height), int(width)


def check_one_of(value: Any, options: Sequence[Any], *, what: str,
                 error: type = ValueError) -> None:
  """`value` is one of `options`; the message lists them."""
  if value not in options:
    raise error(f"unknown {what} {value!r}; expected one of {tuple(options)}.")


def tree_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """{"params/encoder/conv0/kernel": shape, ...} of a pytree's arrays (or of their metadata)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path, simple=True, separator="/"):
          tuple(leaf.shape if hasattr(leaf, "shape") else np.shape(leaf))
          for path, leaf in leaves}


def first_shape_mismatch(expected: Mapping[str, tuple], found: Mapping[str, tuple],
                         ) -> Optional[tuple[str, Any, Any]]:
  """(name, expected shape, found shape) of the first array that differs, or None.

  Names missing on one side count as shape "none". Model weights ("params...")
  come before batch statistics and optimizer state: they name a wrong
  architecture most plainly.
  """
  for name in sorted(set(expected) | set(found), key=lambda n: (not n.startswith("params"), n)):
    if expected.get(name) != found.get(name):
      return name, expected.get(name, "none"), found.get(name, "none")
  return None
