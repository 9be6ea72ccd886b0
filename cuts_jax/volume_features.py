"""A volume's per-voxel features, computed once and kept: `volume_features` and `FeatureCache`.

Embedding a volume is the slow part of segmenting it (about 0.15-0.25 s a
slice on two CPU cores, half a minute for a brain scan); clustering the
features again with another k, or clicking, takes seconds or less. So the
features are computed once per (model, volume, feature settings) and kept:

1. The volume is scaled to [0, 1] once (`pixels.to_unit_range`, as training
   does), so an intensity looks the same on every slice.
2. Each slice along `axis` gets the features `segment` clusters
   (`features.image_features(..., scaled=False)`: resized to the size the
   settings choose, the embeddings in the settings' space, the smoothed
   intensities beside them).
3. The smoothed intensities are smoothed across slices too, with the width in
   millimetres that the in-plane smoothing has (`spacing`), so a thick-slice
   scan is not smeared over many slices.
4. Both parts are scaled to unit total variance over the whole volume
   (`features.scale_features`), not slice by slice.
5. PCA to `pca_dim` components (fitted on a subsample), stored as float16:
   the clustering projects to 32 dimensions first anyway, and the kept
   features of a 160-slice brain scan at 128 x 128 take 170 MB instead of
   520 MB.

A `FeatureCache` keeps `VolumeFeatures` in memory up to a byte budget (least
recently used out first) and, optionally, on disk. Its keys hash the model's
weights, the volume's voxels and the feature settings, so a changed model or
volume never gets stale features: it is a new key.

    cache = FeatureCache(max_bytes=2 * 2**30, directory="/tmp/cuts_features")
    kept = volume_features(params, scan.data, axis=0, spacing=scan.spacing, cache=cache)
    labels = cuts_jax.segment_volume(params, scan.data, axis=0, spacing=scan.spacing,
                                     cache=cache, num_clusters=6)   # no re-embedding
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import pathlib
import threading
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from scipy import ndimage

from cuts_jax import _validation
from cuts_jax import embedding
from cuts_jax import features as features_lib
from cuts_jax import pixels
from cuts_jax import scales
from cuts_jax import segment_settings

__all__ = ["FeatureCache", "VolumeFeatures", "check_volume", "grid_superpixels",
           "model_fingerprint", "volume_features", "volume_fingerprint"]

# A slice's superpixels keep pieces from 5 px up (2-D images: 20): a structure a few voxels
# across in one slice, such as a small lesion's last slices, keeps its own superpixel there.
# Chosen on the brain's tune hemisphere (experiments/results/tuning_volume.md).
SLICE_SUPERPIXEL_MIN_SIZE = 5
# Rows the PCA is fitted on, and rows per block when the features are projected.
_PCA_FIT_ROWS = 65_536
_PROJECT_BLOCK_ROWS = 262_144


@dataclasses.dataclass(frozen=True)
class VolumeFeatures:
  """The kept per-voxel features of one volume, on the grid it is segmented at.

  The grid is the volume with `axis` moved first and every slice resized to
  `size` (the size `segment` would segment that slice at).

  Attributes:
    features: float16 (S, h, w, F): S slices along `axis`, each at `size`
      = (h, w); F <= `pca_dim` principal components of the scaled features.
    volume_shape: the volume's own shape (D0, D1, D2).
    axis: the axis the slices were cut along.
    spacing: the volume's voxel sizes along its own three axes (e.g. mm).
    key: the cache key (model, volume and feature settings hashed).
    images: float16 (S, h, w, C): each slice as it is segmented (resized, in
      [0, 1]), which the slices' superpixels are drawn from (`snap_scale`:
      `grid_superpixels`); None: the segments are not snapped.
  """

  features: np.ndarray
  volume_shape: tuple[int, int, int]
  axis: int
  spacing: tuple[float, float, float]
  key: str
  images: Optional[np.ndarray] = None

  @property
  def size(self) -> tuple[int, int]:
    """(h, w): the size each slice is segmented at."""
    return tuple(int(s) for s in self.features.shape[1:3])

  @property
  def grid_shape(self) -> tuple[int, int, int]:
    """(S, h, w): the shape of the grid the features live on."""
    return tuple(int(s) for s in self.features.shape[:3])

  @property
  def slice_shape(self) -> tuple[int, int]:
    """A slice's own (rows, columns) in the volume."""
    return tuple(int(s) for s in np.delete(self.volume_shape, self.axis))

  @property
  def grid_spacing(self) -> tuple[float, float, float]:
    """Sizes of a grid voxel (slice axis first): a resized slice's pixels cover more or less."""
    return _grid_spacing(self.volume_shape, self.axis, self.spacing, self.size)

  @property
  def nbytes(self) -> int:
    """Bytes held by the features and the slices' images."""
    return int(self.features.nbytes) + (0 if self.images is None else int(self.images.nbytes))

  def to_grid(self, voxel: Sequence[int]) -> tuple[int, int, int]:
    """A voxel (i, j, k) of the volume -> its (slice, row, col) on the grid."""
    voxel = _validation.check_pixel(voxel, shape=self.volume_shape, what="voxel",
                                    where="volume", ndim=3)
    row, col = np.delete(np.asarray(voxel), self.axis)
    rows, cols = self.slice_shape
    height, width = self.size
    return (voxel[self.axis], min(int(row * height / rows), height - 1),
            min(int(col * width / cols), width - 1))

  def to_volume(self, grid: np.ndarray) -> np.ndarray:
    """Values on the grid (S, h, w) -> the volume's shape (nearest neighbour, axis put back).

    Nearest neighbour keeps every label (and a bool mask) as it is; a grid
    coarser than the slices is enlarged, so connected stays connected.
    """
    grid = np.asarray(grid)
    if grid.shape != self.grid_shape:
      raise ValueError(f"expected values on the feature grid {self.grid_shape}; got shape "
                       f"{grid.shape}.")
    if self.size != self.slice_shape:
      rows = _nearest(self.slice_shape[0], self.size[0])
      cols = _nearest(self.slice_shape[1], self.size[1])
      if grid.dtype == bool:  # A mask: only its bounding box is enlarged.
        return np.moveaxis(_enlarged_mask(grid, rows, cols), 0, self.axis)
      grid = grid[:, rows[:, None], cols[None, :]]
    return np.moveaxis(grid, 0, self.axis)


def _grid_spacing(volume_shape, axis: int, spacing, size) -> tuple[float, float, float]:
  in_plane = np.delete(np.asarray(spacing, np.float64), axis)
  scale = np.delete(np.asarray(volume_shape, np.float64), axis) / np.asarray(size, np.float64)
  return (float(spacing[axis]), *(float(v) for v in in_plane * scale))


def _enlarged_mask(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
  """`mask[:, rows[:, None], cols[None, :]]` of a bool (S, h, w) mask, drawn in its box only.

  `rows` and `cols` are non-decreasing (`_nearest`), so the enlarged pixels of a grid box
  form one box too.
  """
  enlarged = np.zeros((mask.shape[0], len(rows), len(cols)), bool)
  found = ndimage.find_objects(mask.view(np.uint8))
  if not found:
    return enlarged
  slices, (row_start, row_stop), (col_start, col_stop) = found[0][0], *(
      (int(np.searchsorted(index, cut.start)), int(np.searchsorted(index, cut.stop)))
      for index, cut in ((rows, found[0][1]), (cols, found[0][2])))
  enlarged[slices, row_start:row_stop, col_start:col_stop] = mask[slices][
      :, rows[row_start:row_stop, None], cols[None, col_start:col_stop]]
  return enlarged


def _nearest(target: int, source: int) -> np.ndarray:
  """Indices of the source pixel whose centre is nearest each target pixel's centre."""
  centres = (np.arange(target) + 0.5) * source / target
  return np.minimum(np.floor(centres).astype(np.int64), source - 1)


def _hash_arrays(arrays: Sequence[Any], extra: str = "") -> str:
  digest = hashlib.blake2b(digest_size=16)
  for array in arrays:
    array = np.ascontiguousarray(np.asarray(array))
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
  digest.update(extra.encode())
  return digest.hexdigest()


def model_fingerprint(params: embedding.SegmentationParams) -> str:
  """A hash of the model's weights, batch statistics, reconstruction metric and architecture.

  Any change of a weight gives another fingerprint (so kept features of the
  old weights are never reused).
  """
  leaves = jax.tree.leaves((params.params, params.batch_stats, params.cluster_metric))
  return _hash_arrays(leaves, extra=f"{params.encoder!r}|{params.channels}|"
                                    f"{tuple(params.image_size)}")


def volume_fingerprint(volume: Any) -> str:
  """A hash of the volume's voxels, dtype and shape."""
  return _hash_arrays([volume])


def _key(params, array: np.ndarray, settings: segment_settings.SegmentSettings, *, axis: int,
         spacing: Sequence[float], size: Sequence[int], pca_dim: Optional[int]) -> str:
  feature_settings = dict(space=settings.space, image_weight=float(settings.image_weight),
                          image_sigma=float(settings.image_sigma), axis=axis,
                          spacing=list(spacing), size=list(size), pca_dim=pca_dim,
                          seed=int(settings.seed), images=True)
  return hashlib.blake2b(
      (model_fingerprint(params) + volume_fingerprint(array)
       + json.dumps(feature_settings, sort_keys=True)).encode(), digest_size=16).hexdigest()


class FeatureCache:
  """Kept `VolumeFeatures`, in memory up to `max_bytes` (least recently used out first).

  With a `directory`, features are also written there (one `<key>.npy` and
  `<key>.json` each) and read back when they are not in memory, so they
  outlive the process. Keys hash the model, the volume and the feature
  settings: features of another model or volume are never returned.

  Thread-safe: the napari widget computes in a worker thread.

  Attributes:
    max_bytes: the memory budget; features larger than it are not kept in
      memory (only on disk, when there is a directory).
    directory: where features are written, or None.
    hits: lookups answered from memory or disk.
    misses: lookups that found nothing.

  Example:
    cache = FeatureCache(max_bytes=2**30)
    labels = cuts_jax.segment_volume(params, volume, cache=cache)               # embeds
    labels = cuts_jax.segment_volume(params, volume, cache=cache, num_clusters=4)  # does not
  """

  def __init__(self, *, max_bytes: int = 2 * 2**30,
               directory: Optional[str | pathlib.Path] = None):
    _validation.check_positive_integers(max_bytes=max_bytes)
    self.max_bytes = int(max_bytes)
    self.directory = None if directory is None else pathlib.Path(directory)
    self.hits = 0
    self.misses = 0
    self._entries: collections.OrderedDict[str, VolumeFeatures] = collections.OrderedDict()
    # Arrays computed from kept features (e.g. spectral coordinates), by (features key, name).
    self._derived: collections.OrderedDict[tuple[str, str], np.ndarray] = \
        collections.OrderedDict()
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self._entries)

  def __contains__(self, key: str) -> bool:
    return key in self._entries or (self.directory is not None
                                    and (self.directory / f"{key}.npy").exists())

  @property
  def nbytes(self) -> int:
    """Bytes held in memory: the features and what was derived from them."""
    return (sum(entry.nbytes for entry in self._entries.values())
            + sum(array.nbytes for array in self._derived.values()))

  def _recent(self, table: collections.OrderedDict, key: Any) -> Any:
    """`table[key]` marked most recently used and counted as a hit, or None (under the lock)."""
    value = table.get(key)
    if value is not None:
      table.move_to_end(key)
      self.hits += 1
    return value

  def derived(self, kept: VolumeFeatures, name: str, compute: Callable[[], np.ndarray]
              ) -> np.ndarray:
    """An array computed from `kept` (e.g. its spectral coordinates), kept in memory.

    Args:
      kept: the features it is computed from (their key is part of its key).
      name: what it is, with every option that changes it (e.g.
        "spectral q=16 seed=0").
      compute: makes the array when it is not kept.
    """
    key = (kept.key, name)
    with self._lock:
      array = self._recent(self._derived, key)
    if array is not None:
      return array
    array = compute()
    with self._lock:
      self.misses += 1
      self._derived[key] = array
      self._shrink()
    return array

  def get(self, key: str) -> Optional[VolumeFeatures]:
    """The features kept under `key` (memory first, then disk), or None."""
    with self._lock:
      entry = self._recent(self._entries, key)
    if entry is not None:
      return entry
    entry = self._read(key)
    with self._lock:
      if entry is None:
        self.misses += 1
        return None
      self.hits += 1
      self._keep(entry)
    return entry

  def put(self, entry: VolumeFeatures) -> None:
    """Keeps `entry` in memory (evicting the least recently used) and on disk."""
    with self._lock:
      self._keep(entry)
    if self.directory is not None:
      self._write(entry)

  def clear(self) -> None:
    """Forgets every entry in memory (files on disk stay)."""
    with self._lock:
      self._entries.clear()
      self._derived.clear()

  def _keep(self, entry: VolumeFeatures) -> None:
    self._entries.pop(entry.key, None)
    if entry.nbytes > self.max_bytes:
      return
    self._entries[entry.key] = entry
    self._shrink()

  def _shrink(self) -> None:
    """Drops derived arrays, then features, least recently used first, until within budget."""
    while self.nbytes > self.max_bytes and self._derived:
      self._derived.popitem(last=False)
    while self.nbytes > self.max_bytes and self._entries:
      self._entries.popitem(last=False)

  def _write(self, entry: VolumeFeatures) -> None:
    self.directory.mkdir(parents=True, exist_ok=True)
    # Written under temporary names, then renamed: a reader never sees half a file.
    array_path = self.directory / f"{entry.key}.npy"
    temporary = self.directory / f"{entry.key}.tmp.npy"
    if entry.images is not None:
      images_temporary = self.directory / f"{entry.key}.images.tmp.npy"
      np.save(images_temporary, entry.images)
      images_temporary.replace(self.directory / f"{entry.key}.images.npy")
    np.save(temporary, entry.features)
    temporary.replace(array_path)
    meta = dict(volume_shape=list(entry.volume_shape), axis=entry.axis,
                spacing=list(entry.spacing))
    (self.directory / f"{entry.key}.json").write_text(json.dumps(meta))

  def _read(self, key: str) -> Optional[VolumeFeatures]:
    if self.directory is None:
      return None
    array_path, meta_path = self.directory / f"{key}.npy", self.directory / f"{key}.json"
    if not (array_path.exists() and meta_path.exists()):
      return None
    images_path = self.directory / f"{key}.images.npy"
    try:
      meta = json.loads(meta_path.read_text())
      features = np.load(array_path, allow_pickle=False)
      images = np.load(images_path, allow_pickle=False)
    except (OSError, ValueError):  # A damaged or missing file is recomputed, not trusted.
      return None
    return VolumeFeatures(features=features, volume_shape=tuple(meta["volume_shape"]),
                          axis=int(meta["axis"]), spacing=tuple(meta["spacing"]), key=key,
                          images=images)


def check_volume(volume: Any, axis: Any) -> tuple[np.ndarray, int]:
  """(the volume as an array, the axis in 0..2): a 3-D volume and one of its axes, or ValueError."""
  array = np.asarray(volume)
  if array.ndim != 3:
    raise ValueError(f"expected a 3-D volume; got shape {array.shape}. For a 2-D image call "
                     "cuts_jax.segment.")
  if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -3 <= axis < 3:
    raise ValueError(f"axis is {axis!r}; a volume has axes 0, 1 and 2.")
  return array, int(axis) % 3


def volume_features(params: embedding.SegmentationParams, volume: Any, *, axis: int = 0,
                    spacing: Optional[Any] = None, cache: Optional[FeatureCache] = None,
                    pca_dim: Optional[int] = 32,
                    settings: Optional[segment_settings.SegmentSettings] = None,
                    progress: Optional[Callable[[int, int], None]] = None,
                    **overrides: Any) -> VolumeFeatures:
  """The per-voxel features of a volume (steps of the module docstring), kept in `cache`.

  Args:
    params: the model (from `cuts_jax.load`). A model trained on 3-channel
      images sees each grayscale slice repeated in 3 channels.
    volume: (D0, D1, D2) array of any numeric dtype.
    axis: the axis the 2-D encoder's slices are cut along.
    spacing: voxel sizes along the volume's axes (one number or three, e.g.
      `Volume.spacing` in mm); they set the smoothing across slices. None: 1.
    cache: a `FeatureCache` to look in first and to keep the result in.
    pca_dim: principal components kept; None keeps every feature.
    settings, **overrides: as in `cuts_jax.segment`; the size (`resize_to`,
      `at_training_size`), `space`, `image_weight`, `image_sigma` and `seed`
      (of the PCA's subsample) matter here.
    progress: called after each slice is embedded with (slices done, slices
      in all), e.g. to show progress; an exception it raises stops the work
      and nothing is kept (the napari widget's Cancel). Not called when the
      features come from `cache`.

  Returns:
    A `VolumeFeatures`.

  Raises:
    ValueError: the volume is not 3-D, not numeric or not finite; the axis,
      spacing or an option is invalid.
  """
  array, axis = check_volume(volume, axis)
  spacing = _validation.check_spacing(spacing, ndim=3)
  if pca_dim is not None:
    _validation.check_positive_integers(pca_dim=pca_dim)
  settings = segment_settings.resolve_settings(params, settings=settings, **overrides)
  _validation.check_numeric(array, what="volume")
  size = features_lib.segment_size(params, settings, np.delete(array.shape, axis))
  key = _key(params, array, settings, axis=axis, spacing=spacing, size=size, pca_dim=pca_dim)
  if cache is not None:
    kept = cache.get(key)
    if kept is not None:
      return kept
  _validation.check_finite(array, what="volume")
  slices = np.moveaxis(pixels.to_unit_range(array), axis, 0)
  features = images = None
  for index, image in enumerate(slices):
    # A gray slice is repeated in every channel the model was trained on.
    channels = np.repeat(image[..., None], params.channels, axis=-1)
    prepared = features_lib.image_to_segment(params, channels, settings=settings)
    vectors = features_lib.segment_features(params, prepared, settings=settings, scaled=False)
    if features is None:
      features = np.empty((len(slices), *vectors.shape), np.float32)
      images = np.empty((len(slices), *prepared.shape), np.float16)
    features[index] = vectors
    images[index] = prepared
    if progress is not None:
      progress(index + 1, len(slices))
  if settings.image_weight and len(slices) > 1:
    _smooth_across_slices(features, _grid_spacing(array.shape, axis, spacing, size),
                          settings.image_sigma, channels=params.channels)
  features_lib.scale_features(features, settings, image_channels=params.channels)
  kept = VolumeFeatures(features=_principal_components(features, pca_dim, seed=settings.seed),
                        volume_shape=tuple(array.shape), axis=axis, spacing=spacing, key=key,
                        images=images)
  if cache is not None:
    cache.put(kept)
  return kept


def grid_superpixels(kept: VolumeFeatures, scale: float) -> np.ndarray:
  """int32 (S, h, w): each slice's superpixels (`scales.image_superpixels` at `scale`, pieces
  of at least `SLICE_SUPERPIXEL_MIN_SIZE` px), numbered apart across slices, which a
  volume's segments are snapped to (`snap_scale`).

  Raises:
    ValueError: `kept` holds no slice images.
  """
  if kept.images is None:
    raise ValueError("these volume features hold no slice images to draw superpixels from; "
                     "compute them again with volume_features.")
  superpixels = np.empty(kept.grid_shape, np.int32)
  offset = 0
  for index, image in enumerate(kept.images):
    own = scales.image_superpixels(image.astype(np.float32), scale,
                                   min_size=SLICE_SUPERPIXEL_MIN_SIZE)
    superpixels[index] = own + offset
    offset += int(own.max()) + 1
  return superpixels


def _smooth_across_slices(features: np.ndarray, grid_spacing: Sequence[float], sigma: float,
                          *, channels: int) -> None:
  """Smooths the image columns along the slices as wide (in mm) as each slice is smoothed."""
  in_plane = float(np.mean(grid_spacing[1:]))
  across = sigma * in_plane / grid_spacing[0]
  if across > 0:
    image = features[..., -channels:]
    features[..., -channels:] = ndimage.gaussian_filter1d(image, across, axis=0,
                                                          mode="reflect")


def _principal_components(features: np.ndarray, pca_dim: Optional[int], *,
                          seed: int) -> np.ndarray:
  """float16 (..., min(F, pca_dim)) projections on the leading principal axes (centred)."""
  flat = features.reshape(-1, features.shape[-1])
  if pca_dim is None or flat.shape[1] <= pca_dim:
    return features.astype(np.float16)
  rng = np.random.default_rng(seed)
  sample = flat[np.sort(rng.choice(len(flat), min(len(flat), _PCA_FIT_ROWS), replace=False))]
  mean = sample.mean(axis=0, dtype=np.float64)
  centred = sample.astype(np.float64) - mean
  _, axes = np.linalg.eigh(centred.T @ centred)
  axes = axes[:, ::-1][:, :pca_dim].astype(np.float32)
  offset = (mean @ axes).astype(np.float32)
  reduced = np.empty((len(flat), pca_dim), np.float16)
  for start in range(0, len(flat), _PROJECT_BLOCK_ROWS):
    reduced[start:start + _PROJECT_BLOCK_ROWS] = flat[start:start + _PROJECT_BLOCK_ROWS] @ axes \
        - offset
  return reduced.reshape(*features.shape[:-1], pca_dim)
