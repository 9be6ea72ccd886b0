"""Medical image formats: NIfTI and DICOM volumes in, label volumes out.

Needs the `medical` extra (`pip install "cuts_jax[medical]"`: nibabel and
pydicom), imported when a function here first needs it.

    volume = medical.read_nifti("scan.nii.gz")
    labels = cuts_jax.segment_volume(params, volume.data, axis=2)
    medical.write_nifti_labels(labels, "scan_labels.nii.gz", like=volume)
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Optional, Sequence

import numpy as np
from skimage import io as skimage_io

from cuts_jax import _optional
from cuts_jax import _validation
from cuts_jax import pixels

__all__ = ["DICOM_SUFFIXES", "NIFTI_SUFFIXES", "Volume", "dicom_files", "is_nifti", "nifti_stem",
           "read_dicom_series", "read_nifti", "write_label_png", "write_nifti_labels"]

_nibabel = _optional.module("nibabel", extra="medical", purpose="reading and writing NIfTI")
_pydicom = _optional.module("pydicom", extra="medical", purpose="reading DICOM")

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom")

# NIfTI's intent code for a label map (NIFTI_INTENT_LABEL): viewers show it as
# segments rather than as intensities.
_NIFTI_INTENT_LABEL = "label"



@dataclasses.dataclass
class Volume:
  """A 3-D scan with its place in the world.

  Attributes:
    data: (X, Y, Z) array as stored in the file (NIfTI), or (rows, columns,
      slices) for a DICOM series; any numeric dtype (DICOM: rescale slope and
      intercept already applied).
    affine: float64 (4, 4) voxel index -> RAS+ millimetres (NIfTI convention).
    header: the `nibabel.Nifti1Header` of a NIfTI file, or None for DICOM.
    source: the file or folder it was read from.
  """

  data: np.ndarray
  affine: np.ndarray
  header: Any
  source: pathlib.Path

  @property
  def spacing(self) -> tuple[float, float, float]:
    """Voxel sizes in mm along the data's three axes: the lengths of the affine's columns.

    What `cuts_jax.segment_volume` and the distance metrics take as `spacing=`.
    """
    return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))


def is_nifti(path: str | pathlib.Path) -> bool:
  """True for a .nii or .nii.gz file name (the file is not opened)."""
  return str(path).lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: str | pathlib.Path) -> str:
  """The file name without .nii or .nii.gz ("scan.nii.gz" -> "scan")."""
  name = pathlib.Path(path).name
  for suffix in (".nii.gz", ".nii"):
    if name.lower().endswith(suffix):
      return name[:-len(suffix)]
  return pathlib.Path(name).stem


def dicom_files(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """The .dcm/.dicom files directly in `folder` (sorted by name), or []."""
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    return []
  return sorted(p for p in folder.iterdir()
                if p.is_file() and p.suffix.lower() in DICOM_SUFFIXES)


def read_nifti(path: str | pathlib.Path) -> Volume:
  """Reads a .nii or .nii.gz file as a 3-D volume with its affine and header.

  The data keep the file's dtype unless the header scales them (scl_slope /
  scl_inter), in which case nibabel returns the scaled floats. Trailing axes
  of length 1 (e.g. a (X, Y, Z, 1) time series of one frame) are dropped.

  Raises:
    ImportError: nibabel is not installed.
    pixels.DataError: the file is missing, unreadable, truncated, or not 3-D.
  """
  _optional.require(_nibabel)
  path = pathlib.Path(path)
  try:
    image = _nibabel.load(path)
    array = np.asanyarray(image.dataobj)
  except FileNotFoundError as error:
    raise pixels.DataError(f"{path}: no such NIfTI file.") from error
  except Exception as error:  # nibabel, gzip and zlib all fail differently on a bad file.
    raise pixels.DataError(f"{path}: cannot read it as NIfTI ({type(error).__name__}: "
                             f"{error}).") from error
  while array.ndim > 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim != 3:
    raise pixels.DataError(f"{path}: expected a 3-D volume, got shape {array.shape}. "
                             "Extract one 3-D volume (e.g. one time point) first.")
  return Volume(data=np.asarray(array), affine=np.asarray(image.affine, np.float64),
                header=image.header.copy(), source=path)


def _slice_geometry(slices: Sequence[Any]) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """(row_cosine, column_cosine) shared by the slices, or None when absent."""
  try:
    orientation = np.asarray(slices[0].ImageOrientationPatient, np.float64)
    positions = [s.ImagePositionPatient for s in slices]
  except AttributeError:
    return None
  if orientation.shape != (6,) or any(p is None for p in positions):
    return None
  return orientation[:3], orientation[3:]


def _sort_slices(slices: list[Any], names: list[str]) -> list[int]:
  """Order of the slices: along the slice normal, else by InstanceNumber, else by name."""
  geometry = _slice_geometry(slices)
  if geometry is not None:
    normal = np.cross(*geometry)
    heights = [float(np.dot(normal, np.asarray(s.ImagePositionPatient, np.float64)))
               for s in slices]
    return sorted(range(len(slices)), key=lambda i: (heights[i], names[i]))
  if all(getattr(s, "InstanceNumber", None) is not None for s in slices):
    return sorted(range(len(slices)), key=lambda i: (int(slices[i].InstanceNumber), names[i]))
  return sorted(range(len(slices)), key=lambda i: names[i])


def _dicom_affine(slices: Sequence[Any]) -> np.ndarray:
  """The RAS+ affine of a sorted series, for a volume indexed [row, column, slice].

  DICOM positions are LPS+ millimetres: voxel (r, c, k) lies at
  IPP_k + r * row_spacing * column_cosine + c * column_spacing * row_cosine.
  Without geometry tags the affine is the identity.
  """
  geometry = _slice_geometry(slices)
  if geometry is None:
    return np.eye(4)
  row_cosine, column_cosine = geometry
  row_spacing, column_spacing = (float(s) for s in getattr(slices[0], "PixelSpacing", (1, 1)))
  first = np.asarray(slices[0].ImagePositionPatient, np.float64)
  if len(slices) > 1:
    last = np.asarray(slices[-1].ImagePositionPatient, np.float64)
    step = (last - first) / (len(slices) - 1)
  else:
    thickness = float(getattr(slices[0], "SliceThickness", 1.0) or 1.0)
    step = np.cross(row_cosine, column_cosine) * thickness
  lps = np.eye(4)
  lps[:3, 0] = column_cosine * row_spacing
  lps[:3, 1] = row_cosine * column_spacing
  lps[:3, 2] = step
  lps[:3, 3] = first
  return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS+ -> RAS+.


def _rescaled(dataset: Any) -> np.ndarray:
  stored = dataset.pixel_array
  slope = getattr(dataset, "RescaleSlope", None)
  intercept = getattr(dataset, "RescaleIntercept", None)
  if slope is None and intercept is None:
    return stored
  slope = 1.0 if slope is None else float(slope)
  intercept = 0.0 if intercept is None else float(intercept)
  # float32 holds every 16-bit value times an ordinary slope exactly enough
  # (CT's Hounsfield units are integers well below 2**24).
  return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def read_dicom_series(source: str | pathlib.Path | Sequence[str | pathlib.Path]) -> Volume:
  """Reads a DICOM series (a folder of .dcm slices, or a list of files) as a volume.

  Slices are sorted by their ImagePositionPatient along the slice normal
  (InstanceNumber, then the file name, when positions are missing), and each
  slice's RescaleSlope and RescaleIntercept are applied (CT in Hounsfield
  units: float32; otherwise the stored integers).

  Args:
    source: a folder holding the series' .dcm/.dicom files (one series), or
      the files themselves.

  Returns:
    A `Volume` whose data are (rows, columns, slices) and whose affine maps
    [row, column, slice] to RAS+ millimetres; header is None.

  Raises:
    ImportError: pydicom is not installed.
    pixels.DataError: no files, an unreadable file, several series, slices of
      different sizes, or slices without pixel data.
  """
  _optional.require(_pydicom)
  if isinstance(source, (str, pathlib.Path)):
    folder = pathlib.Path(source)
    if not folder.is_dir():
      raise pixels.DataError(f"{folder}: not a folder; a DICOM series is read from the "
                               "folder that holds its .dcm files.")
    paths, where = dicom_files(folder), folder
  else:
    paths = [pathlib.Path(p) for p in source]
    where = paths[0].parent if paths else pathlib.Path(".")
  if not paths:
    raise pixels.DataError(f"{where}: no DICOM files ({', '.join(DICOM_SUFFIXES)}) found.")
  slices, images = [], []
  for path in paths:
    try:
      dataset = _pydicom.dcmread(path)
      images.append(_rescaled(dataset))
    except Exception as error:  # Truncated files and missing pixel data fail differently.
      raise pixels.DataError(f"{path}: cannot read it as a DICOM image "
                               f"({type(error).__name__}: {error}).") from error
    slices.append(dataset)
  series = {getattr(s, "SeriesInstanceUID", None) for s in slices}
  if len(series) > 1:
    raise pixels.DataError(f"{where} holds {len(series)} DICOM series; put each series in "
                             "its own folder.")
  shapes = {image.shape for image in images}
  if len(shapes) != 1 or len(next(iter(shapes))) != 2:
    raise pixels.DataError(f"{where}: the slices have shapes {sorted(shapes)}; a series "
                             "needs single-frame grayscale slices of one size.")
  order = _sort_slices(slices, [p.name for p in paths])
  volume = np.stack([images[i] for i in order], axis=-1)
  sorted_slices = [slices[i] for i in order]
  return Volume(data=volume, affine=_dicom_affine(sorted_slices), header=None, source=where)


def _label_dtype(labels: np.ndarray, dtype: Any) -> np.dtype:
  dtype = np.dtype(dtype)
  if not np.issubdtype(dtype, np.integer):
    raise ValueError(f"label dtype must be an integer type; got {dtype}.")
  if labels.size:
    _validation.check_integer_dtype(labels)
  info = np.iinfo(dtype)
  if labels.size and (labels.min() < info.min or labels.max() > info.max):
    raise ValueError(f"labels span {labels.min()}..{labels.max()}, which does not fit {dtype}; "
                     "pass dtype=np.int32.")
  return dtype


def write_nifti_labels(labels: Any, path: str | pathlib.Path, *, like: Optional[Volume] = None,
                       affine: Optional[np.ndarray] = None,
                       dtype: Any = np.int16) -> pathlib.Path:
  """Writes a label volume as NIfTI, in the space of the scan it came from.

  The input's header is copied (voxel sizes, units, qform/sform and their
  codes, orientation); the data type is set to `dtype`, the intensity scaling
  is removed (scl_slope 1, scl_inter 0, so labels read back as themselves),
  cal_min/cal_max span the labels and the intent says "label".

  Args:
    labels: integer (X, Y, Z) label volume, e.g. from `segment_volume`.
    path: a .nii or .nii.gz file name (folders are created).
    like: the `Volume` the labels were computed from: its affine and header
      are used. For a DICOM series (no header) a fresh header is made.
    affine: the (4, 4) affine when `like` is not given (default identity).
    dtype: integer dtype stored in the file (int16 holds any k <= 32767; use
      np.int32 for more labels).

  Returns:
    The path written.

  Raises:
    ImportError: nibabel is not installed.
    ValueError: the path is not .nii/.nii.gz, the labels are not integers or
      do not fit `dtype`, or their shape differs from `like`'s data.
  """
  _optional.require(_nibabel)
  path = pathlib.Path(path)
  if not is_nifti(path):
    raise ValueError(f"{path}: a NIfTI label file must end in .nii or .nii.gz.")
  labels = np.asarray(labels)
  dtype = _label_dtype(labels, dtype)
  if like is not None:
    _validation.check_same_shape(labels.shape, like.data.shape,
                                 names=("labels", "the scan they belong to"))
    affine = like.affine
    header = like.header.copy() if like.header is not None else None
  else:
    affine = np.eye(4) if affine is None else np.asarray(affine, np.float64)
    header = None
  image = _nibabel.Nifti1Image(labels.astype(dtype), affine, header)
  image.header.set_data_dtype(dtype)
  image.header.set_slope_inter(1.0, 0.0)
  image.header["cal_min"] = float(labels.min()) if labels.size else 0.0
  image.header["cal_max"] = float(labels.max()) if labels.size else 0.0
  image.header.set_intent(_NIFTI_INTENT_LABEL)
  path.parent.mkdir(parents=True, exist_ok=True)
  _nibabel.save(image, path)
  return path


def write_label_png(labels: Any, path: str | pathlib.Path) -> pathlib.Path:
  """Writes a 2-D label map as a PNG of the label values themselves.

  uint8 when the labels fit in 0..255, else uint16; nothing is rescaled, so
  reading the PNG gives the labels back (they look nearly black in an image
  viewer; the overlay PNGs are for looking).

  Args:
    labels: integer or bool (H, W) labels, 0 .. 65535.
    path: a .png file name (folders are created).

  Raises:
    ValueError: not 2-D, not integers, negative or above 65535, or the path
      does not end in .png.
  """
  path = pathlib.Path(path)
  if path.suffix.lower() != ".png":
    raise ValueError(f"{path}: a label map is written as .png.")
  labels = _validation.check_label_map(labels, integers=False,
                                       hint=" Write volumes with write_nifti_labels.")
  if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
    raise ValueError(f"labels span {labels.min()}..{labels.max()}; a PNG holds 0..65535.")
  dtype = np.uint8 if not labels.size or labels.max() <= np.iinfo(np.uint8).max else np.uint16
  dtype = _label_dtype(labels, dtype)
  path.parent.mkdir(parents=True, exist_ok=True)
  skimage_io.imsave(path, labels.astype(dtype), check_contrast=False)
  return path
