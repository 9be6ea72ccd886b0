"""Segmenting a 3-D volume: `segment_volume`, and `segments_from_volume_features`.

By default the volume is segmented as a whole, the 2-D pipeline of `segment`
in 3-D, so a label means the same thing on every slice and one click
(`cuts_jax.select(labels, (i, j, k))`) follows a structure through the volume:

1. The per-voxel features (`volume_features.volume_features`): each slice
   along `axis` gets the features `segment` clusters (the embeddings beside
   the smoothed intensities, at the size the settings choose), the
   intensities are smoothed across slices as wide in millimetres as within
   them, both parts are scaled over the whole volume, and PCA keeps 32
   components in float16. With a `FeatureCache` they are computed once per
   model and volume: another k, or another click, costs a re-clustering.
2. Optionally each voxel's position in millimetres (index x spacing) joins
   its vector as a weak extra feature, so that far-apart voxels of a similar
   look lean towards different clusters.
3. All voxels are clustered together by `clustering.cluster_embeddings`: its
   PCA, landmarks and final k-means are fitted on subsamples and every voxel
   is then assigned, so time and memory grow linearly with the voxels.
4. With `connected` (the model's default), every cluster is cut into its
   6-connected pieces and pieces smaller than the volume fold threshold
   (`volume_min_segment_voxels` of the settings) fold into the neighbour
   they share the most border area with (in mm^2: `spacing`); a piece
   holding a click (`keep=`) is not folded away unless it has fewer voxels
   than `volume_min_kept_voxels` (27 grid voxels by default: a clicked
   speck takes the segment it joins, a small structure stays itself). With
   `snap_scale` set, the segments are then redrawn along each slice's
   superpixels (`volume_features.grid_superpixels`, as `segment` does in
   2-D; a segment no superpixel's majority keeps stays as it was) and cut
   and folded again.
5. Labels are made on the grid of resized slices and enlarged back to the
   volume (nearest neighbour, so connected stays connected).

`mode="slices"` segments every slice on its own with `segment` instead
(label 3 of one slice and label 3 of the next need not be the same tissue).
Reading and writing NIfTI and DICOM is `cuts_jax.io.medical`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import pixels
from cuts_jax import regions
from cuts_jax import scales
from cuts_jax import segmentation
from cuts_jax import volume_features as volume_features_lib

__all__ = ["MODES", "segment_volume", "segments_from_volume_features", "select_voxels",
           "stack_from_volume_features", "volume_clusters", "volume_stack"]

MODES = ("volume", "slices")

# Rows of the feature matrix that measure the features' spread for
# `position_weight`: ample for a standard deviation.
_SPREAD_SAMPLE = 16_384
# Spectral coordinates are computed for at least this many eigenvectors, so that
# any k up to it reuses them (kept in a FeatureCache).
_KEPT_EIGENVECTORS = 16


def segment_volume(params: segmentation.SegmentationParams, volume: Any, *, axis: int = 2,
                   spacing: Optional[Any] = None, mode: str = "volume",
                   position_weight: float = 0.0,
                   cache: Optional[volume_features_lib.FeatureCache] = None,
                   keep: Sequence[Sequence[int]] = (),
                   settings: Optional[segmentation.SegmentSettings] = None,
                   **overrides: Any) -> np.ndarray:
  """Segments a 3-D volume; by default its labels mean the same thing on every slice.

  Args:
    params: a `SegmentationParams` (from `cuts_jax.load`). A model trained on
      3-channel images sees each grayscale slice repeated in 3 channels.
    volume: (D0, D1, D2) array of any numeric dtype (e.g. `Volume.data`).
    axis: the axis to slice along for the 2-D encoder; slice i is
      `np.take(volume, i, axis)`.
    spacing: voxel sizes (one number, or one per axis, e.g. `Volume.spacing`
      in mm): the smoothing across slices, the border areas of the folding
      and the position feature use them. None: 1 per axis.
    mode: "volume" (every voxel segmented together: labels consistent across
      slices) or "slices" (each slice segmented on its own by `segment`).
    position_weight: for mode "volume": how much the voxels' positions (in
      units of `spacing`) count, as the ratio of their spread (the total
      standard deviation over the volume) to the spread of the clustering
      features; 0 leaves positions out.
    cache: for mode "volume": a `FeatureCache` that keeps the volume's
      features, so the next call on the same model and volume skips the
      embedding.
    keep: for mode "volume": voxels (i, j, k) whose connected pieces are not
      folded into a neighbour (e.g. the clicks about to be made), unless a
      piece has fewer grid voxels than the settings' `volume_kept_floor`.
    settings, **overrides: as in `cuts_jax.segment`, the model's by default:
      `num_clusters` (k of the volume's clustering, or of each slice's),
      `method`, `seed`, the size each slice is segmented at (`resize_to`,
      `at_training_size`; labels are scaled back), `space`, `image_weight`,
      `image_sigma`, `connected`, the fold threshold
      (`volume_min_segment_voxels` grid voxels; None: as in 2-D,
      `min_segment_pixels` or `min_segment_fraction` of the grid's voxels),
      `on_device`.

  Returns:
    int32 label volume of the input's shape, numbered 0, 1, ... in order of
    first appearance. Mode "volume": connected segments over the whole volume
    (at most `num_clusters` clusters with `connected=False`); mode "slices":
    each slice's labels from `segment`.

  Raises:
    ValueError: the volume is not 3-D, holds NaN/Inf or is not numeric; the
      axis does not exist; or an option is invalid.

  Example:
    volume = cuts_jax.io.medical.read_nifti("scan.nii.gz")
    labels = cuts_jax.segment_volume(params, volume.data, axis=2, spacing=volume.spacing)
    ventricles = cuts_jax.select(labels, (80, 96, 112))   # bool, 3-D component
  """
  array, axis = volume_features_lib.check_volume(volume, axis)
  _validation.check_one_of(mode, MODES, what="mode")
  spacing = _validation.check_spacing(spacing, ndim=3)
  _check_position_weight(position_weight)
  settings = segmentation.resolve_settings(params, settings=settings, **overrides)
  if mode == "slices":
    slices = np.moveaxis(pixels.to_unit_range(array), axis, 0)
    labels = np.empty(slices.shape, np.int32)
    for index, image in enumerate(slices):
      labels[index] = segmentation.segment(params, _channels(params, image), settings=settings)
    return np.moveaxis(labels, 0, axis)
  kept = volume_features_lib.volume_features(params, array, axis=axis, spacing=spacing,
                                             cache=cache, settings=settings)
  return segments_from_volume_features(kept, position_weight=position_weight, keep=keep,
                                       cache=cache, settings=settings)


def segments_from_volume_features(kept: volume_features_lib.VolumeFeatures, *,
                                  position_weight: float = 0.0,
                                  keep: Sequence[Sequence[int]] = (),
                                  on_grid: bool = False,
                                  cache: Optional[volume_features_lib.FeatureCache] = None,
                                  settings: segmentation.SegmentSettings) -> np.ndarray:
  """The second half of `segment_volume`: kept features -> int32 label volume.

  Call it several times on one volume's features (e.g. another k) without
  embedding the volume again.

  Args:
    kept: from `volume_features.volume_features`.
    position_weight, keep: as in `segment_volume`.
    cache: keeps the spectral coordinates of `kept` (see `volume_clusters`).
    on_grid: return the labels on the features' grid (S, h, w) instead of
      the volume's shape.
    settings: the resolved settings (`resolve_settings(params, ...)`):
      `num_clusters`, `method`, `seed`, `connected`, the fold threshold
      and `on_device` matter here.

  Returns:
    int32 labels of the volume's shape (or the grid's), numbered 0, 1, ...
    in raster order of first appearance.
  """
  _check_position_weight(position_weight)
  features = kept.features
  if position_weight > 0:
    features = _with_positions(features, kept.grid_spacing, position_weight,
                               seed=settings.seed)
  labels = volume_clusters(kept, settings, features=None if position_weight == 0 else features,
                           cache=cache)
  if settings.connected:
    cut = dict(min_size=settings.volume_fold_threshold(labels.size), spacing=kept.grid_spacing,
               keep=[kept.to_grid(voxel) for voxel in keep],
               min_kept=settings.volume_kept_floor(labels.size))
    labels = regions.connected_segments(labels, **cut)
    superpixels = _superpixels(kept, settings, cache)
    if superpixels is not None:
      labels = regions.connected_segments(
          scales.snap_to_superpixels(labels, superpixels, restore_lost=True), **cut)
  labels = labels.astype(np.int32)
  return labels if on_grid else regions.renumber(kept.to_volume(labels))


def volume_stack(params: segmentation.SegmentationParams, volume: Any, *, axis: int = 2,
                 spacing: Optional[Any] = None,
                 cache: Optional[volume_features_lib.FeatureCache] = None,
                 settings: Optional[segmentation.SegmentSettings] = None,
                 **overrides: Any) -> tuple[scales.ScaleStack, volume_features_lib.VolumeFeatures]:
  """A volume's segments at every k of `scale_num_clusters`: the 3-D `ScaleStack` clicks choose in.

  The features are computed once (or read from `cache`), their spectral
  coordinates once, and each k is a k-means of them cut into 3-D connected
  segments (pieces below the fold threshold kept in `pieces`, so a click on
  one is answered with it). The levels live on the features' grid (slices
  along `axis` first, each at the size it is segmented at); `select_voxels`
  takes the volume's voxels and returns a mask of the volume's shape.

  Args:
    params, volume, axis, spacing, cache: as in `segment_volume`.
    settings, **overrides: as in `segment_volume`; also read:
      `scale_num_clusters`, `scale_rule`, `volume_max_fraction`,
      `volume_min_kept_voxels` (the stack's `min_kept`), and the fold
      threshold (`volume_min_segment_voxels`, else as in 2-D:
      `min_segment_pixels`, else `min_segment_fraction` of the grid's voxels).

  Returns:
    (stack, kept): the `ScaleStack` (int32 (L, S, h, w) levels, coarse to
    fine) and the `VolumeFeatures` that map voxels onto its grid.

  Example:
    stack, kept = cuts_jax.volume.volume_stack(params, scan.data, axis=0,
                                               spacing=scan.spacing, cache=cache)
    mask = cuts_jax.volume.select_voxels(kept, stack, [(80, 96, 112)], negative=[(80, 90, 60)])
  """
  array, axis = volume_features_lib.check_volume(volume, axis)
  settings = segmentation.resolve_settings(params, settings=settings, **overrides)
  kept = volume_features_lib.volume_features(params, array, axis=axis, spacing=spacing,
                                             cache=cache, settings=settings)
  return stack_from_volume_features(kept, settings=settings, cache=cache), kept


def stack_from_volume_features(kept: volume_features_lib.VolumeFeatures, *,
                               settings: segmentation.SegmentSettings,
                               cache: Optional[volume_features_lib.FeatureCache] = None,
                               num_clusters: Optional[Sequence[int]] = None) -> scales.ScaleStack:
  """The second half of `volume_stack`: kept features -> a `ScaleStack` on their grid.

  Args:
    kept: from `volume_features.volume_features`.
    settings: resolved settings (see `volume_stack`).
    cache: keeps the spectral coordinates (see `volume_clusters`).
    num_clusters: the levels' k; None: `settings.scale_num_clusters`.
  """
  ks = sorted({int(k) for k in (settings.scale_num_clusters if num_clusters is None
                                else num_clusters)})
  voxel_count = int(np.prod(kept.grid_shape))
  min_size = settings.volume_fold_threshold(voxel_count)
  superpixels = _superpixels(kept, settings, cache)
  pieces, labels = [], []
  for k in ks:
    clusters = volume_clusters(kept, dataclasses.replace(settings, num_clusters=k), cache=cache)
    piece_map, segment_map = regions.pieces_and_segments(clusters, min_size=min_size,
                                                         spacing=kept.grid_spacing)
    if superpixels is not None:
      piece_map, segment_map = regions.pieces_and_segments(
          scales.snap_to_superpixels(segment_map, superpixels, restore_lost=True),
          min_size=min_size, spacing=kept.grid_spacing)
    pieces.append(piece_map)
    labels.append(segment_map)
  stack = scales.ScaleStack(labels=np.stack(labels), num_clusters=tuple(ks),
                            pieces=np.stack(pieces), folded_below=min_size,
                            min_kept=settings.volume_kept_floor(voxel_count),
                            rule=settings.scale_rule,
                            max_fraction=settings.volume_max_fraction,
                            fixed_clusters=settings.num_clusters)
  _ = stack.index  # The segments' sizes and boxes, made here so that the first click is fast.
  return stack


def select_voxels(kept: volume_features_lib.VolumeFeatures, stack: scales.ScaleStack,
                  clicks: Any, *, negative: Any = (), **options: Any) -> np.ndarray:
  """`cuts_jax.select` on a stack on the features' grid, with the volume's voxels in and out.

  Args:
    kept: the `VolumeFeatures` the stack was made from.
    stack: from `volume_stack` (levels on `kept`'s grid).
    clicks, negative: voxels (i, j, k) of the volume, one or a list each.
    **options: `rule`, `level`, `max_fraction` of `cuts_jax.select`.

  Returns:
    bool mask of the volume's shape.
  """
  if tuple(stack.shape) != kept.grid_shape:
    raise ValueError(f"the stack's levels have shape {tuple(stack.shape)}, not the features' "
                     f"grid {kept.grid_shape}; pass the VolumeFeatures it was made from.")
  where = dict(shape=kept.volume_shape, where="volume")
  positive = [kept.to_grid(c) for c in _validation.check_clicks(clicks, **where)]
  negative = [kept.to_grid(c) for c in _validation.check_clicks(
      negative, what="negative click", allow_empty=True, **where)]
  # A negative click on the grid voxel of a positive one cancels nothing it can tell apart.
  negative = [n for n in negative if n not in positive]
  # The levels are connected segments already: no component search needed.
  mask = segmentation.select(stack, positive, negative=negative, connected=False, **options)
  return kept.to_volume(mask)


def volume_clusters(kept: volume_features_lib.VolumeFeatures,
                    settings: segmentation.SegmentSettings, *,
                    features: Optional[np.ndarray] = None,
                    cache: Optional[volume_features_lib.FeatureCache] = None) -> np.ndarray:
  """int32 (S, h, w) clusters of a volume's kept features, numbered by first appearance.

  Spectral clustering computes the graph's leading eigenvectors once for
  every k up to 16 (`clustering.spectral_coordinates`; kept in `cache`), and
  each k is a k-means of its first k coordinates: a new k on a kept volume
  costs a k-means, not a new graph.

  Args:
    kept: from `volume_features.volume_features`.
    settings: `num_clusters`, `method`, `seed` and `on_device` are read.
    features: (S, h, w, F) to cluster instead of `kept.features` (e.g. with
      positions added); not kept.
    cache: keeps the spectral coordinates of `kept.features`.
  """
  own = features is None
  points = (kept.features if own else features)
  points = points.reshape(-1, points.shape[-1])
  k = settings.num_clusters
  if settings.method != "spectral":
    flat = clustering.cluster_embeddings(points, num_clusters=k, method=settings.method,
                                         seed=settings.seed, on_device=settings.on_device)
    return flat.reshape(kept.grid_shape)
  count = max(k, _KEPT_EIGENVECTORS)

  def coordinates():
    return clustering.spectral_coordinates(points, num_eigenvectors=count, seed=settings.seed,
                                           on_device=settings.on_device)

  name = f"spectral coordinates q={count} seed={settings.seed} on_device={settings.on_device}"
  spectral = (cache.derived(kept, name, coordinates) if own and cache is not None
              else coordinates())
  leading = spectral[:, :k]
  # Rows to unit length over the k columns kept, as the clustering of k alone does.
  leading = leading / np.maximum(np.linalg.norm(leading, axis=1, keepdims=True), 1e-12)
  flat = clustering.cluster_embeddings(leading, num_clusters=k, method="kmeans",
                                       seed=settings.seed, on_device=settings.on_device)
  return flat.reshape(kept.grid_shape)


def _superpixels(kept: volume_features_lib.VolumeFeatures,
                 settings: segmentation.SegmentSettings,
                 cache: Optional[volume_features_lib.FeatureCache]) -> Optional[np.ndarray]:
  """The slices' superpixels the segments are snapped to, or None (`snap_scale` off, or
  features without slice images)."""
  if settings.snap_scale is None or kept.images is None:
    return None
  scale = settings.snap_scale
  compute = lambda: volume_features_lib.grid_superpixels(kept, scale)
  return compute() if cache is None else cache.derived(kept, f"superpixels scale={scale}",
                                                       compute)


def _check_position_weight(weight: Any) -> None:
  if not (np.isfinite(weight) and weight >= 0):
    raise ValueError(f"position_weight must be a non-negative number; got {weight!r}.")


def _channels(params, image: np.ndarray) -> np.ndarray:
  """A gray (H, W) slice as the (H, W, C) image the model takes (gray repeated in C)."""
  return np.repeat(image[..., None], params.channels, axis=-1)


def _with_positions(features: np.ndarray, spacing: Sequence[float], weight: float, *,
                    seed: int) -> np.ndarray:
  """float32 features with 3 more columns: the grid voxels' centres in units of `spacing`.

  The positions are scaled so that their total standard deviation is
  `weight` times the features'.
  """
  shape = features.shape[:3]
  axes = [np.arange(n, dtype=np.float64) * s for n, s in zip(shape, spacing)]
  axes = [a - a.mean() for a in axes]
  position_spread = np.sqrt(sum(a.var() for a in axes))
  rows = features.reshape(-1, features.shape[-1])
  sample = rows[np.random.default_rng(seed).choice(len(rows), min(len(rows), _SPREAD_SAMPLE),
                                                   replace=False)]
  feature_spread = np.sqrt(sample.astype(np.float64).var(axis=0).sum())
  # A single voxel, or a volume without contrast: positions cannot help.
  scale = (weight * feature_spread / position_spread
           if position_spread > 0 and feature_spread > 0 else 0.0)
  result = np.empty((*shape, features.shape[-1] + 3), np.float32)
  result[..., :-3] = features
  result[..., -3] = (scale * axes[0])[:, None, None]
  result[..., -2] = (scale * axes[1])[None, :, None]
  result[..., -1] = (scale * axes[2])[None, None, :]
  return result
