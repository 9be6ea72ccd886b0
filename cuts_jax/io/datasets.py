"""Host-side data loading (numpy only; nothing here runs inside `jit`).

Every loader returns a `Dataset` whose images are float32 (N, H, W, C) in
[0, 1] at the configured size; grayscale images keep one channel. Intensities
are mapped to [0, 1] by `cuts_jax.pixels.to_unit_range`: uint8 by /255, bool
as 0/1, and everything else (16-bit, float, ...) by min-max scaling of the
whole image or volume, unless it already lies in [0, 1]. `.npy`/`.npz` files are read with
`allow_pickle=False`: a pickled (object) array is refused, never executed.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from typing import Any, Optional, Sequence

import ml_collections
import numpy as np
import scipy.io
from skimage import data as skimage_data

from cuts_jax import _validation
from cuts_jax import pixels
from cuts_jax.io import image_files

__all__ = ["DATA_KINDS", "LOADERS", "DataError", "Dataset", "demo_images",
           "from_arrays", "load_bsds500", "load_dataset", "load_demo",
           "load_image_folder", "load_retina", "load_volume_slices"]

# What every loader raises for missing or malformed data.
DataError = pixels.DataError


@dataclasses.dataclass
class Dataset:
  """Images, their names and whatever ground truth the data set has.

  Attributes:
    images: float32 (N, H, W, C) in [0, 1].
    names: one name per image (file stem or slice id).
    masks: uint8 (N, H, W) binary target region at the images' size, or None.
    human_segmentations: for BSDS500, one list per image of the human label
      maps (int32, at the original resolution), or None.
    original_images: for BSDS500, the images at their original resolution
      (float32 (h, w, 3) each), or None.
  """

  images: np.ndarray
  names: list[str]
  masks: Optional[np.ndarray] = None
  human_segmentations: Optional[list[list[np.ndarray]]] = None
  original_images: Optional[list[np.ndarray]] = None

  def __len__(self) -> int:
    return len(self.images)


def _read_unit_image(path: os.PathLike | str) -> np.ndarray:
  """`image_files.read_image` then `to_unit_range`: float32 (H, W, C) in [0, 1].

  Raises:
    DataError: naming the file, when it cannot be read or its values are unusable.
  """
  image = image_files.read_image(path)
  try:
    return pixels.to_unit_range(image)
  except DataError as error:
    raise DataError(f"{path}: {error}") from None


def _require_dir(root: os.PathLike | str, what: str, flag_hint: str) -> pathlib.Path:
  if not root:
    raise DataError(f"No {what} location is set. Pass {flag_hint}=/path/to/it.")
  root = pathlib.Path(root).expanduser()
  if not root.is_dir():
    raise DataError(f"{what} not found at {root}. Put the data there or pass "
                    f"{flag_hint}=/path/to/it.")
  return root


def _shard(items: list, shard_index: int, shard_count: int) -> list:
  return items[shard_index::shard_count]


def _finish(images: list[np.ndarray], names: list[str], where: str, **extras) -> Dataset:
  if not images:
    raise DataError(f"no images found in {where}.")
  channels = {image.shape[-1] for image in images}
  if len(channels) > 1:
    # Mixed grayscale and colour: promote everything to RGB.
    images = [np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
              for image in images]
    channels = {image.shape[-1] for image in images}
  if len(channels) > 1:
    examples = {image.shape[-1]: name for image, name in zip(images, names)}
    found = ", ".join(f"{count} ({examples[count]})" for count in sorted(examples))
    raise DataError(f"the images in {where} have different channel counts: {found}. Use "
                    "images of one kind (gray and RGB mix; other counts do not).")
  return Dataset(images=np.stack(images).astype(np.float32), names=names, **extras)


def _included(paths: list[pathlib.Path], include: Sequence[str], root) -> list[pathlib.Path]:
  """The paths whose stems `include` names (all of them when it is empty)."""
  if not include:
    return paths
  missing = sorted(set(include) - {p.stem for p in paths})
  if missing:
    raise DataError(f"config.data.include names images that {root} does not hold: "
                    f"{missing[:5]}{' ...' if len(missing) > 5 else ''}.")
  return [p for p in paths if p.stem in set(include)]


def load_retina(root: os.PathLike | str, image_size: Sequence[int], *, limit: int = 0,
                include: Sequence[str] = (), shard_index: int = 0,
                shard_count: int = 1) -> Dataset:
  """The retina GA layout: image_with_GA/imageN.png and label_with_GA/labelN.npy.

  `include` keeps only the images of these names (e.g. "image14"), such as
  one part of experiments/splits.json. Returns the images with their binary
  GA masks (uint8 0/1).
  """
  root = _require_dir(root, "the retina GA data set", "--config.data.root")
  image_dir, label_dir = root / "image_with_GA", root / "label_with_GA"
  paths = sorted(image_dir.glob("image*.png"), key=image_files.natural_key)
  if not paths:
    raise DataError(f"no image_with_GA/imageN.png files under {root}; expected the retina "
                    "layout image_with_GA/imageN.png + label_with_GA/labelN.npy.")
  paths = _included(paths, include, root)
  if limit:
    paths = paths[:limit]
  images, masks, names = [], [], []
  for path in _shard(paths, shard_index, shard_count):
    number = re.sub(r"\D", "", path.stem)
    label_path = label_dir / f"label{number}.npy"
    if not label_path.exists():
      raise DataError(f"{path} has no matching label {label_path}.")
    image = _read_unit_image(path)
    label = image_files.load_npy(label_path)
    if not (label.dtype == bool or np.issubdtype(label.dtype, np.integer)
            or np.issubdtype(label.dtype, np.floating)):
      raise DataError(f"{label_path} holds {label.dtype} values; expected a numeric mask "
                      "(0 outside the GA region, > 0 inside).")
    if label.ndim == 3:
      label = label[..., 0]
    if label.shape != image.shape[:2]:
      raise DataError(f"{label_path} has shape {label.shape}; expected the image's "
                      f"{image.shape[:2]}.")
    images.append(pixels.resize_image(image, image_size))
    masks.append(pixels.resize_labels((label > 0).astype(np.uint8), image_size))
    names.append(path.stem)
  return _finish(images, names, str(root), masks=np.stack(masks))


def load_bsds500(root: os.PathLike | str, image_size: Sequence[int], *,
                 splits: Sequence[str] = ("train", "val"), limit: int = 0,
                 with_ground_truth: bool = True, shard_index: int = 0,
                 shard_count: int = 1) -> Dataset:
  """BSDS500's official layout: images/<split>/*.jpg, groundTruth/<split>/*.mat.

  All human segmentations of each image are kept at the original resolution,
  as are the original images (for the BSDS benchmark metrics).
  """
  root = _require_dir(root, "BSDS500", "--config.data.root")
  paths = []
  for split in splits:
    split_paths = sorted((root / "images" / split).glob("*.jpg"),
                         key=image_files.natural_key)
    if not split_paths:
      raise DataError(f"no images/{split}/*.jpg under {root}; expected BSDS500's layout "
                      "images/<split>/*.jpg and groundTruth/<split>/*.mat.")
    paths += [(split, path) for path in split_paths]
  if limit:
    paths = paths[:limit]
  images, names, originals, humans = [], [], [], []
  for split, path in _shard(paths, shard_index, shard_count):
    original = _read_unit_image(path)
    images.append(pixels.resize_image(original, image_size))
    names.append(f"{split}/{path.stem}")
    if with_ground_truth:
      mat_path = root / "groundTruth" / split / f"{path.stem}.mat"
      if not mat_path.exists():
        raise DataError(f"{path} has no matching ground truth {mat_path}.")
      try:
        cells = scipy.io.loadmat(mat_path)["groundTruth"][0]
        humans.append([np.asarray(cell["Segmentation"][0, 0], dtype=np.int32)
                       for cell in cells])
      except Exception as error:  # Truncated files and foreign .mat layouts fail differently.
        raise DataError(f"{mat_path}: cannot read BSDS500 ground truth from it "
                        f"({type(error).__name__}: {error}); expected a groundTruth cell array "
                        "of Segmentation maps.") from error
      originals.append(original)
  return _finish(images, names, str(root),
                 human_segmentations=humans if with_ground_truth else None,
                 original_images=originals if with_ground_truth else None)


def load_volume_slices(path: os.PathLike | str, image_size: Sequence[int], *, axis: int = 0,
                       label_ids: Sequence[int] = (), min_target_pixels: int = 0,
                       slice_range: Sequence[int] = (), limit: int = 0, shard_index: int = 0,
                       shard_count: int = 1) -> Dataset:
  """2-D slices of a volume .npz holding `vol` (and optionally `seg`).

  Intensities are scaled to [0, 1] once over the whole volume, so slices stay
  comparable. With `label_ids`, the target mask is `seg` in those ids and only
  slices with at least `min_target_pixels` target pixels are kept.
  `slice_range` (first, stop) keeps only slices first <= i < stop (e.g. one
  hemisphere's, for a tuning part); () keeps all.
  """
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise DataError(f"volume file not found at {path}; pass --config.data.root=/path/to/"
                    "volume.npz (arrays 'vol' and, for a target, 'seg').")
  try:
    with np.load(path, allow_pickle=False) as archive:
      if "vol" not in archive:
        raise DataError(f"{path} has no array 'vol' (found {list(archive.keys())}).")
      volume = archive["vol"]
      segmentation = archive["seg"] if "seg" in archive else None
  except DataError:
    raise
  except Exception as error:  # Truncated zips, pickled arrays and others fail differently.
    raise DataError(f"{path}: cannot read it as a .npz of plain numpy arrays "
                    f"({type(error).__name__}: {error}). Object (pickled) arrays are refused; "
                    "write it with np.savez(path, vol=..., seg=...).") from error
  if volume.ndim != 3:
    raise DataError(f"{path}: 'vol' has shape {volume.shape}; expected a 3-D volume.")
  if not -3 <= axis < 3:
    raise DataError(f"config.data.axis is {axis}; a volume has axes 0, 1 and 2.")
  try:
    volume = np.moveaxis(pixels.to_unit_range(volume), axis, 0)
  except DataError as error:
    raise DataError(f"{path}: 'vol': {error}") from None
  target = None
  if slice_range and (len(slice_range) != 2 or not 0 <= slice_range[0] < slice_range[1]):
    raise DataError(f"config.data.slice_range is {tuple(slice_range)}; expected (first, stop) "
                    "with 0 <= first < stop, or () for every slice.")
  kept = range(*slice_range) if slice_range else range(volume.shape[0])
  kept = [i for i in kept if i < volume.shape[0]]
  if label_ids:
    if segmentation is None:
      raise DataError(f"{path} has no 'seg' array, but config.data.label_ids asks for a target.")
    if segmentation.shape != np.moveaxis(volume, 0, axis).shape:
      raise DataError(f"{path}: 'seg' shape {segmentation.shape} differs from 'vol'.")
    target = np.moveaxis(np.isin(segmentation, list(label_ids)), axis, 0).astype(np.uint8)
    slice_ids = [i for i in kept if target[i].sum() >= min_target_pixels]
  else:
    slice_ids = kept
  if limit:
    slice_ids = slice_ids[:limit]
  slice_ids = _shard(slice_ids, shard_index, shard_count)
  images = [pixels.resize_image(volume[i][..., None], image_size) for i in slice_ids]
  names = [f"{path.stem}_axis{axis}_slice{i:03d}" for i in slice_ids]
  masks = None
  if target is not None and slice_ids:
    masks = np.stack([pixels.resize_labels(target[i], image_size) for i in slice_ids])
  return _finish(images, names, str(path), masks=masks)


def load_image_folder(root: os.PathLike | str, image_size: Sequence[int], *, limit: int = 0,
                      include: Sequence[str] = (), shard_index: int = 0,
                      shard_count: int = 1) -> Dataset:
  """Every PNG/JPG/TIFF/BMP/NPY file directly in `root` (or those `include` names by stem)."""
  root = _require_dir(root, "the image folder", "--config.data.root")
  # Regular files only: a FIFO named like an image would block the reader forever.
  paths = sorted((p for p in root.iterdir()
                  if p.suffix.lower() in image_files.IMAGE_EXTENSIONS and p.is_file()),
                 key=image_files.natural_key)
  if not paths:
    raise DataError(f"{root} holds no images ({', '.join(image_files.IMAGE_EXTENSIONS)}).")
  paths = _included(paths, include, root)
  if limit:
    paths = paths[:limit]
  paths = _shard(paths, shard_index, shard_count)
  images = [pixels.resize_image(_read_unit_image(p), image_size) for p in paths]
  return _finish(images, [p.stem for p in paths], str(root))


def demo_images() -> tuple[list[str], list[np.ndarray]]:
  """Names and float32 (H, W, 3) images in [0, 1] of the demo data, at their own sizes.

  The fundus photograph (`skimage.data.retina`), a few other photographs
  (immunohistochemistry, coffee, cat, astronaut), and 3 x 3 tiles of the
  fundus photograph. All ship with scikit-image: nothing is downloaded.
  """
  fundus = pixels.to_unit_range(skimage_data.retina())
  images, names = [fundus], ["retina"]
  for name in ("immunohistochemistry", "coffee", "chelsea", "astronaut"):
    images.append(pixels.to_unit_range(getattr(skimage_data, name)()))
    names.append(name)
  # The fundus disc fills the centre of the 1411 px photograph: tiles of it
  # add views of the optic disc and vessels at a finer scale.
  grid = np.linspace(200, 1411 - 200 - 512, 3).astype(int)
  for row in grid:
    for col in grid:
      images.append(fundus[row:row + 512, col:col + 512])
      names.append(f"retina_r{row}_c{col}")
  return names, images


def load_demo(image_size: Sequence[int], *, limit: int = 0, shard_index: int = 0,
              shard_count: int = 1) -> Dataset:
  """The images of `demo_images`, resized to `image_size`, so a fresh install has data."""
  names, images = demo_images()
  if limit:
    images, names = images[:limit], names[:limit]
  images, names = _shard(images, shard_index, shard_count), _shard(names, shard_index, shard_count)
  return _finish([pixels.resize_image(i, image_size) for i in images], names,
                 "scikit-image's data")


def from_arrays(images: Sequence[Any], *, image_size: Optional[Sequence[int]] = None,
                names: Optional[Sequence[str]] = None) -> Dataset:
  """A `Dataset` of images already in memory, e.g. to train on what a viewer shows.

  Each image is scaled to [0, 1] on its own by `to_unit_range`; scale a
  volume once as a whole before handing in its slices, so that they stay
  comparable. Train on it with `train_and_evaluate(config, workdir,
  dataset=...)` and `config.data.kind = "arrays"`.

  Args:
    images: (H, W) or (H, W, C) arrays of any numeric dtype, C in 1..4 (RGBA
      loses alpha; gray and RGB together become RGB).
    image_size: (H, W) every image is resized to; None: they must already
      share one size.
    names: one name per image; default "image0", "image1", ...

  Raises:
    DataError: no images, an unusable image (naming it), names that do not
      match the images, or images of different sizes without `image_size`.
  """
  images = list(images)
  names = [f"image{i}" for i in range(len(images))] if names is None else list(names)
  if len(names) != len(images):
    raise DataError(f"{len(names)} names for {len(images)} images; give one name per image.")
  size = None if image_size is None else _validation.check_size(
      image_size, what="image_size", error=DataError)
  scaled = []
  for name, image in zip(names, images):
    image = pixels.as_channels_last(np.asarray(image), path=name)
    try:
      image = pixels.to_unit_range(image)
    except DataError as error:
      raise DataError(f"{name}: {error}") from None
    scaled.append(image if size is None else pixels.resize_image(image, size))
  sizes = {image.shape[:2] for image in scaled}
  if len(sizes) > 1:
    raise DataError(f"the images have different sizes {sorted(sizes)}; pass image_size=(H, W) "
                    "to resize them to one.")
  return _finish(scaled, names, "the arrays given")


def _demo_from_config(data_config: ml_collections.ConfigDict, size: tuple[int, int],
                      **shard) -> Dataset:
  del data_config  # The demo images ship with scikit-image.
  return load_demo(size, **shard)


def _retina_from_config(data_config: ml_collections.ConfigDict, size: tuple[int, int],
                        **shard) -> Dataset:
  return load_retina(data_config.root, size, include=tuple(data_config.include), **shard)


def _bsds500_from_config(data_config: ml_collections.ConfigDict, size: tuple[int, int],
                         **shard) -> Dataset:
  return load_bsds500(data_config.root, size, splits=tuple(data_config.splits), **shard)


def _volume_from_config(data_config: ml_collections.ConfigDict, size: tuple[int, int],
                        **shard) -> Dataset:
  return load_volume_slices(data_config.root, size, axis=data_config.axis,
                            label_ids=tuple(data_config.label_ids),
                            min_target_pixels=data_config.min_target_pixels,
                            slice_range=tuple(data_config.slice_range), **shard)


def _folder_from_config(data_config: ml_collections.ConfigDict, size: tuple[int, int],
                        **shard) -> Dataset:
  return load_image_folder(data_config.root, size, include=tuple(data_config.include), **shard)


def _arrays_from_config(data_config: ml_collections.ConfigDict, size: tuple[int, int],
                        **shard) -> Dataset:
  raise DataError("config.data.kind is 'arrays': the images are in memory, not in files. "
                  "Hand them to train_and_evaluate(config, workdir, dataset="
                  "datasets.from_arrays(images)).")


# config.data.kind -> its loader, called as loader(config.data, image_size, limit=...,
# shard_index=..., shard_count=...). A new data set is one function and one entry here.
LOADERS = {
    "demo": _demo_from_config,
    "retina": _retina_from_config,
    "bsds500": _bsds500_from_config,
    "volume": _volume_from_config,
    "folder": _folder_from_config,
    # Images already in memory, handed to training as a `Dataset` (`from_arrays`);
    # there is nothing to load from the config.
    "arrays": _arrays_from_config,
}
DATA_KINDS = tuple(LOADERS)


def load_dataset(data_config: ml_collections.ConfigDict, *, shard_index: int = 0,
                 shard_count: int = 1) -> Dataset:
  """The data set `config.data` describes (`kind` picks the loader in `LOADERS`).

  `shard_index`/`shard_count` select every shard_count-th item, so that each
  host of a multi-host run loads only its own part.
  """
  _validation.check_one_of(data_config.kind, tuple(LOADERS), what="config.data.kind",
                           error=DataError)
  size = _validation.check_size(data_config.image_size, what="config.data.image_size",
                                error=DataError)
  return LOADERS[data_config.kind](data_config, size, limit=data_config.limit,
                                   shard_index=shard_index, shard_count=shard_count)
