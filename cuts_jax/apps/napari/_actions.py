"""What the dock widget's buttons do with files and training, without Qt or napari.

Layer data come in as napari holds them (a 2-D image, an RGB image, or a 3-D
volume) and are checked here (`layer_image`); masks and labels go out as
PNG or NIfTI. Segmenting is `_segmenting`'s, clicks are `_selection`'s.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
from typing import Any, Optional, Sequence

import ml_collections
import numpy as np

from cuts_jax import defaults
from cuts_jax import pixels
from cuts_jax.io import datasets
from cuts_jax.io import medical
from cuts_jax.runs import checkpointing

@dataclasses.dataclass
class LayerImage:
  """An image layer's pixels and what the widget needs to know about them.

  Attributes:
    data: (H, W) gray, (H, W, C) colour, or (D0, D1, D2) volume.
    is_volume: whether `data` is a volume.
    axis: for a volume, the axis its slices are cut along (the one the
      viewer steps through).
    name: the layer's name, for file names and messages.
    spacing: for a volume, its voxel sizes (the layer's scale); None: 1.
  """

  data: np.ndarray
  is_volume: bool
  axis: int = 0
  name: str = "image"
  spacing: Optional[tuple[float, ...]] = None

  @property
  def shape(self) -> tuple[int, ...]:
    """The shape of its label maps: the image's without channels."""
    return self.data.shape if self.is_volume or self.data.ndim == 2 else self.data.shape[:2]


def layer_image(data: Any, *, rgb: bool, multiscale: bool = False, axis: int = 0,
                name: str = "image", spacing: Optional[Sequence[float]] = None) -> LayerImage:
  """The pixels of an image layer, checked to be something CUTS segments.

  Raises:
    ValueError: multiscale data, an RGB volume, or a layer that is neither
      2-D nor 3-D; the message says what to pick instead.
  """
  if multiscale:
    raise ValueError(f"{name} is a multiscale image; open one resolution of it as its own "
                     "layer.")
  data = np.asarray(data)
  if rgb:
    if data.ndim != 3:
      raise ValueError(f"{name} is an RGB stack of shape {data.shape}; CUTS segments one RGB "
                       "image (H, W, 3) or a grayscale volume.")
    return LayerImage(data, is_volume=False, name=name)
  if data.ndim not in (2, 3):
    raise ValueError(f"{name} has {data.ndim} dimensions {data.shape}; CUTS segments a 2-D "
                     "image or a 3-D volume.")
  if not -3 <= axis < 3:
    raise ValueError(f"axis is {axis}; a volume has axes 0, 1 and 2.")
  spacing = None if spacing is None or data.ndim != 3 else tuple(float(s) for s in spacing)
  return LayerImage(data, is_volume=data.ndim == 3, axis=axis % 3, name=name, spacing=spacing)


def mask_paths(path: str | pathlib.Path, *, is_volume: bool) -> tuple[pathlib.Path, pathlib.Path]:
  """Where the mask and the segments beside it go: NAME_mask.png and NAME_labels.png.

  The suffix is set by the kind (.png for 2-D, .nii.gz for volumes); a name
  ending in _mask loses it before _labels is added.
  """
  path = pathlib.Path(path)
  suffix = ".nii.gz" if is_volume else ".png"
  stem = medical.nifti_stem(path) if medical.is_nifti(path) else path.stem
  mask_stem = stem if stem.endswith("_mask") else f"{stem}_mask"
  labels_stem = mask_stem[:-len("_mask")] + "_labels"
  return path.with_name(mask_stem + suffix), path.with_name(labels_stem + suffix)


def _volume_affine(like: Optional[medical.Volume],
                   spacing: Optional[Sequence[float]]) -> Optional[np.ndarray]:
  """None when `like` gives the space; else an affine of the voxel `spacing` (None: identity)."""
  if like is None and spacing is not None:
    return np.diag([float(s) for s in spacing] + [1.0])
  return None


def _write_labels(labels: np.ndarray, path: pathlib.Path, *, like: Optional[medical.Volume],
                  spacing: Optional[Sequence[float]]) -> pathlib.Path:
  """A label map as a PNG of its values, or a label volume as NIfTI (int16 when it fits)."""
  if labels.ndim == 2:
    return medical.write_label_png(labels, path)
  dtype = np.int16 if labels.max(initial=0) <= np.iinfo(np.int16).max else np.int32
  return medical.write_nifti_labels(labels, path, like=like,
                                    affine=_volume_affine(like, spacing), dtype=dtype)


def save_mask(mask: np.ndarray, labels: np.ndarray, path: str | pathlib.Path, *,
              like: Optional[medical.Volume] = None,
              spacing: Optional[Sequence[float]] = None) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes the selected mask and the segments beside it (see `mask_paths`).

  2-D: the mask as a 0/255 PNG and the segments as a PNG of label values.
  Volumes: NIfTI, the mask 0/1; in the space of `like` (the scan the volume
  was read from) when given, else with an affine of the voxel `spacing`.

  Returns:
    The paths of the mask and of the segments.
  """
  mask = np.asarray(mask, bool)
  mask_path, labels_path = mask_paths(path, is_volume=mask.ndim == 3)
  if mask.ndim == 2:
    medical.write_label_png(mask.astype(np.uint8) * 255, mask_path)
  else:
    medical.write_nifti_labels(mask.astype(np.uint8), mask_path, like=like,
                               affine=_volume_affine(like, spacing), dtype=np.uint8)
  _write_labels(np.asarray(labels), labels_path, like=like, spacing=spacing)
  return mask_path, labels_path


def save_labels(labels: np.ndarray, path: str | pathlib.Path, *,
                like: Optional[medical.Volume] = None,
                spacing: Optional[Sequence[float]] = None) -> pathlib.Path:
  """Writes a Labels layer's data: a PNG of label values (2-D) or NIfTI (a volume).

  The suffix is set by the kind (.png or .nii.gz). A volume is written in
  the space of `like` (the scan it was read from) when given, else with an
  affine of the voxel `spacing`.

  Returns:
    The path written.

  Raises:
    ValueError: labels that are neither 2-D nor 3-D, or negative (a PNG
      holds 0..65535).
  """
  labels = np.asarray(labels)
  if labels.ndim not in (2, 3):
    raise ValueError(f"labels of shape {labels.shape}: a Labels layer to save is 2-D or 3-D.")
  path = pathlib.Path(path)
  stem = medical.nifti_stem(path) if medical.is_nifti(path) else path.stem
  suffix = ".png" if labels.ndim == 2 else ".nii.gz"
  return _write_labels(labels, path.with_name(stem + suffix), like=like, spacing=spacing)


def load_config_file(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """`get_config()` of a config file such as configs/tiny.py ("FILE.py:PRESET" passes a preset).

  Raises:
    FileNotFoundError: there is no such file.
    ValueError: it defines no get_config().
  """
  text = str(path)
  file_name, _, preset = text.partition(":")
  file_path = pathlib.Path(file_name).expanduser()
  if not file_path.is_file():
    raise FileNotFoundError(f"config file {file_path} not found; leave the field empty for the "
                            "paper's model, or pick a file such as configs/demo.py.")
  spec = importlib.util.spec_from_file_location(f"_cuts_config_{file_path.stem}", file_path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{file_path} defines no get_config(); a cuts_jax config file does.")
  return module.get_config(preset) if preset else module.get_config()


def training_config(workdir: str | pathlib.Path, image: LayerImage, *, num_steps: int,
                    crop_size: int, config_file: str = "") -> ml_collections.ConfigDict:
  """The config to train on a layer image in `workdir`.

  A workdir that holds a run continues it with its own config.json (so a
  cancelled run resumes); otherwise the run starts from `config_file`, or the
  paper's model when it is empty. `num_steps` is the run's total; training
  uses random `crop_size` crops (0: whole images) of the image at its own size.
  """
  workdir = pathlib.Path(workdir).expanduser()
  if (workdir / checkpointing.CONFIG_FILE).is_file():
    config = checkpointing.read_config(workdir)
  elif config_file:
    config = load_config_file(config_file)
  else:
    config = defaults.get_config()
  shape = image.shape
  if image.is_volume:
    shape = tuple(s for axis, s in enumerate(shape) if axis != image.axis)
  config.data.kind = "arrays"
  config.data.root = ""
  config.data.image_size = tuple(int(s) for s in shape)
  config.data.limit = 0
  config.training.num_steps = int(num_steps)
  config.training.crop_size = int(crop_size)
  return config


def training_images(image: LayerImage) -> datasets.Dataset:
  """The images to train on: the image itself, or every slice of a volume.

  A volume is scaled to [0, 1] as a whole first, so that its slices stay
  comparable (as the volume data loader does).
  """
  if not image.is_volume:
    return datasets.from_arrays([image.data], names=[image.name])
  slices = np.moveaxis(pixels.to_unit_range(image.data), image.axis, 0)
  return datasets.from_arrays(list(slices),
                              names=[f"{image.name}_slice{i:03d}" for i in range(len(slices))])
