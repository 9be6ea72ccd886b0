"""What `predict` segments: the input kinds it reads, and finding them in a file or folder.

Each input kind is one entry of `INPUT_KINDS`, looked up by name: a reader
and the file name endings it claims. A new format is one reader function
and one entry here.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable, Optional

import numpy as np

from cuts_jax import pixels
from cuts_jax.io import image_files
from cuts_jax.io import medical


@dataclasses.dataclass
class Item:
  """One input: a 2-D image file, a NIfTI file or a DICOM series folder."""

  path: pathlib.Path
  kind: str  # A key of INPUT_KINDS: "image", "dicom_image", "nifti" or "dicom_series".
  name: str = ""


@dataclasses.dataclass(frozen=True)
class InputKind:
  """How `predict` reads one kind of input.

  Attributes:
    read: path -> an (H, W) or (H, W, C) array for a 2-D kind, or a
      `medical.Volume` for a volume kind.
    is_volume: whether `read` gives a volume.
    suffixes: the (lower-case) file name endings of this kind; () for a kind
      found as a folder.
  """

  read: Callable[[pathlib.Path], Any]
  is_volume: bool
  suffixes: tuple[str, ...] = ()


def _read_dicom_image(path: pathlib.Path) -> np.ndarray:
  """One .dcm file as a 2-D image (its only slice)."""
  return medical.read_dicom_series([path]).data[..., 0]


# Looked up in this order when a file's name is matched to its kind.
INPUT_KINDS = {
    "nifti": InputKind(medical.read_nifti, is_volume=True, suffixes=medical.NIFTI_SUFFIXES),
    "image": InputKind(image_files.read_image, is_volume=False,
                       suffixes=image_files.IMAGE_EXTENSIONS),
    "dicom_image": InputKind(_read_dicom_image, is_volume=False,
                             suffixes=medical.DICOM_SUFFIXES),
    # A folder of .dcm slices (found by `find_inputs`, never by a file name).
    "dicom_series": InputKind(medical.read_dicom_series, is_volume=True),
}


def find_inputs(input_path: str | pathlib.Path, *,
                exclude: Optional[pathlib.Path] = None) -> tuple[list[Item], list[str]]:
  """The inputs under `input_path`, and the names of the files that are none.

  A file is one input. In a folder, every image and NIfTI file is one input,
  the folder's own .dcm files together are one DICOM series, and so are the
  .dcm files of each subfolder (other subfolders are not searched).

  Raises:
    FileNotFoundError: the path does not exist.
    pixels.DataError: the folder holds nothing to segment, or the file's type
      is not one this tool reads.
  """
  path = pathlib.Path(input_path).expanduser()
  if not path.exists():
    raise FileNotFoundError(f"--input {path} does not exist; pass an image, a NIfTI file or "
                            "a folder of them.")
  if path.is_file():
    item = _file_item(path)
    if item is None:
      raise pixels.DataError(
          f"{path}: cannot tell its type from the name; use {', '.join(_known_suffixes())}.")
    return _named([item]), []
  items, others = [], []
  if medical.dicom_files(path):
    items.append(Item(path, "dicom_series"))
  for entry in sorted(path.iterdir(), key=image_files.natural_key):
    if exclude is not None and entry.resolve() == exclude.resolve():
      continue
    if entry.is_dir():
      if medical.dicom_files(entry):
        items.append(Item(entry, "dicom_series"))
      continue
    if entry.suffix.lower() in medical.DICOM_SUFFIXES:
      continue  # Part of this folder's series.
    if not entry.is_file():
      others.append(entry.name)  # A FIFO or socket would block a reader forever.
      continue
    item = _file_item(entry)
    if item is None:
      others.append(entry.name)
    else:
      items.append(item)
  if not items:
    raise pixels.DataError(f"{path} holds nothing to segment; expected files ending in "
                           f"{', '.join(_known_suffixes())} or folders of .dcm slices.")
  return _named(items), others


def input_files(input_path: pathlib.Path, items: list[Item]) -> list[pathlib.Path]:
  """Every file the inputs read (a series' slices one by one): outputs must not overwrite them."""
  if input_path.is_file():
    return [input_path]
  return [p for item in items
          for p in ([item.path] if item.path.is_file() else medical.dicom_files(item.path))]


def _known_suffixes() -> list[str]:
  return [suffix for kind in INPUT_KINDS.values() for suffix in kind.suffixes]


def _matched_suffix(path: pathlib.Path) -> tuple[Optional[str], str]:
  """(the kind whose file name ending `path` has, that ending), or (None, "")."""
  name = path.name.lower()
  for kind, spec in INPUT_KINDS.items():
    for suffix in spec.suffixes:
      if name.endswith(suffix):
        return kind, suffix
  return None, ""


def _file_item(path: pathlib.Path) -> Optional[Item]:
  kind, _ = _matched_suffix(path)
  return None if kind is None else Item(path, kind)


def _stem(item: Item) -> str:
  """The file name without its kind's ending ("scan.nii.gz" -> "scan"); a folder's stem."""
  _, suffix = _matched_suffix(item.path)
  if item.path.is_dir() or not suffix:
    return item.path.stem
  return item.path.name[:-len(suffix)]


def _named(items: list[Item]) -> list[Item]:
  """Gives each item an output name; names that would collide keep their suffix."""
  counts = {}
  for item in items:
    counts[_stem(item)] = counts.get(_stem(item), 0) + 1
  for item in items:
    name = _stem(item)
    if counts[name] > 1 and item.kind != "dicom_series":
      name = item.path.name.replace(".", "_")
    item.name = name
  return items
