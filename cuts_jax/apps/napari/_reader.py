"""The reader napari asks about files: NIfTI volumes and DICOM series, via `cuts_jax.io.medical`.

A volume opens as an image layer in its file's voxel order, with the voxel
sizes as the layer's scale (so a scan looks in proportion) and its affine,
header and source in the layer's metadata, which "Save mask" uses to write
the mask in the scan's space.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Optional

import numpy as np

from cuts_jax.io import medical

# Layer metadata keys the widget reads back.
AFFINE_KEY = "affine"
HEADER_KEY = "nifti_header"
SOURCE_KEY = "source"


def get_reader(path: Any) -> Optional[Callable[[Any], list[tuple]]]:
  """The function that reads `path`, or None when it is no NIfTI file or DICOM series folder."""
  if isinstance(path, (list, tuple)):
    if len(path) != 1:
      return None
    path = path[0]
  path = pathlib.Path(path)
  if medical.is_nifti(path) and path.is_file():
    return _read_nifti
  if path.is_dir() and medical.dicom_files(path):
    return _read_dicom_series
  return None


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
  """The length of each voxel axis in the affine's units (millimetres)."""
  return tuple(float(s) for s in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def volume_layer(volume: medical.Volume) -> tuple:
  """The image layer data tuple of a volume: (data, attributes, "image")."""
  name = (medical.nifti_stem(volume.source) if medical.is_nifti(volume.source)
          else volume.source.name)
  attributes = {
      "name": name,
      "scale": voxel_spacing(volume.affine),
      "metadata": {AFFINE_KEY: volume.affine, HEADER_KEY: volume.header,
                   SOURCE_KEY: str(volume.source)},
  }
  return volume.data, attributes, "image"


def layer_volume(data: np.ndarray, metadata: dict) -> Optional[medical.Volume]:
  """The `Volume` a layer came from (for writing in its space), or None if not read here."""
  if AFFINE_KEY not in metadata:
    return None
  return medical.Volume(data=np.asarray(data), affine=np.asarray(metadata[AFFINE_KEY]),
                        header=metadata.get(HEADER_KEY),
                        source=pathlib.Path(metadata.get(SOURCE_KEY, "")))


def _read_nifti(path: Any) -> list[tuple]:
  return [volume_layer(medical.read_nifti(_one(path)))]


def _read_dicom_series(path: Any) -> list[tuple]:
  return [volume_layer(medical.read_dicom_series(_one(path)))]


def _one(path: Any) -> pathlib.Path:
  return pathlib.Path(path[0] if isinstance(path, (list, tuple)) else path)
