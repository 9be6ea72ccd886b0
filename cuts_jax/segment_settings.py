"""How a model segments: `SegmentSettings`, and `resolve_settings`, which fills them in.

Every way into segmentation (`segment`, `segments_from_features`,
`segment_hierarchy`, `segment_volume`, `cuts_jax.apps.predict` and the napari
widget) takes a model, optionally a `SegmentSettings`, and keyword overrides
of its fields, and turns them into the settings it runs with by one call:

    settings = resolve_settings(params, num_clusters=6)   # the model's, k = 6
    labels = cuts_jax.segment(params, image, settings=settings)
    levels = cuts_jax.segment_hierarchy(params, image, settings=settings)

A `SegmentSettings` checks its values when it is made, so no invalid one
exists; `resolve_settings` adds the checks that need the model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

import numpy as np

from cuts_jax import _validation
from cuts_jax import clustering

__all__ = ["CLUSTER_SPACES", "SCALE_RULES", "SegmentSettings", "resolve_settings"]

CLUSTER_SPACES = ("reconstruction", "embedding", "cosine")
# How `cuts_jax.select` chooses a stack's level under a click (`cuts_jax.scales`).
SCALE_RULES = ("consensus", "medoid", "stability", "fixed")


@dataclasses.dataclass(frozen=True)
class SegmentSettings:
  """How a model segments by default; read from its config's `evaluation` section.

  Attributes:
    num_clusters: k of the clustering (`config.evaluation.num_clusters`).
    method: "spectral" (the paper's spectral k-means) or "kmeans"
      (`config.evaluation.clustering`).
    seed: seeds the clustering; the same seed gives the same labels
      (`config.evaluation.seed`).
    space: how embeddings are compared: "reconstruction" (distances between
      the patches the reconstruction head rebuilds from them), "embedding"
      (raw embeddings, the paper's literal choice) or "cosine" (embeddings
      scaled to unit length).
    image_weight: weight of the Gaussian-smoothed image values (colour or grey
      level) clustered beside the embeddings; each part is first scaled to
      unit total variance. 0 clusters the embeddings alone.
    image_sigma: the smoothing's standard deviation in pixels, at the size
      the image is segmented at.
    connected: cut every cluster into its connected pieces, so that the
      segment under a click is one region; False keeps the clusters (the
      paper's labels).
    min_segment_fraction: with `connected`, pieces smaller than this share of
      the image's pixels join the neighbour they share the longest border with
      (when `min_segment_pixels` is None).
    min_segment_pixels: the fold threshold in pixels at the size the image is
      segmented at, replacing `min_segment_fraction` when not None: about the
      encoder's receptive field (31 px for the paper's 15/11/7 kernels), so
      that what the encoder can resolve is not folded away
      (`config.evaluation.min_segment_pixels`; 0 there means None).
    at_training_size: segment images at the training image size and scale
      the labels back (the scale the encoder learned features at); False: at
      each image's own size.
    resize_to: segment at this (height, width) instead; None: as
      `at_training_size` says.
    on_device: where the clustering runs: True on JAX's default device, False
      on the host (numpy/scikit-learn), "auto" where it was measured faster.
    scale_num_clusters: the k of the levels of `segment_hierarchy` (a
      `ScaleStack`), coarse to fine (`config.evaluation.scale_num_clusters`).
    scale_rule: how `select` chooses a stack's level under a click: one of
      `SCALE_RULES` ("fixed": the level with k = `num_clusters`)
      (`config.evaluation.scale_rule`).
    scale_max_fraction: levels whose clicked segment covers more than this
      share of the image are passed over by the rules other than "fixed"
      (`config.evaluation.scale_max_fraction`).
    snap_scale: an image's connected segments (`segment`'s, and each level
      of its `ScaleStack`) are redrawn along the edges of the image's
      superpixels (Felzenszwalb's graph segmentation at this `scale`, sigma
      0.8, pieces of at least 20 px, at the segmenting size): every
      superpixel takes the segment holding most of its pixels, then the map
      is cut into connected segments again. The embeddings come from 31 px
      receptive fields and blur boundaries; the superpixels follow the
      image's edges. None or 0: segments as clustered (0 also as an
      override: `segment(params, image, snap_scale=0)`); plain clusters
      (`connected=False`) are never snapped (`config.evaluation.snap_scale`;
      chosen on the tune parts: experiments/results/tuning_scale.md). A
      volume's segments are snapped the same way to each slice's superpixels
      (pieces from 5 px up; a segment that no superpixel's majority keeps
      stays as it was: `volume_features.grid_superpixels`; chosen on the
      brain's tune hemisphere: experiments/results/tuning_volume.md).
    volume_max_fraction: the same share for a 3-D stack (`volume.volume_stack`),
      of the volume's voxels: a share that keeps a background half out of a
      slice lets a region of many structures through in a volume
      (`config.evaluation.volume_max_fraction`, chosen on the brain's tune
      hemisphere: experiments/results/tuning_volume.md).
    volume_min_segment_voxels: the fold threshold of a volume's 3-D segments,
      in voxels of the grid it is segmented at, at most `min_segment_fraction`
      of them (`volume_fold_threshold`); None: as in 2-D (`fold_threshold`)
      (`config.evaluation.volume_min_segment_voxels`, chosen on the brain's
      tune hemisphere; 0 there means None).
    volume_min_kept_voxels: a clicked piece of a volume's segments smaller
      than the fold threshold is kept out of the fold (answered with itself)
      only when it has at least this many grid voxels; a smaller one folds
      like any other piece and the click takes the segment it joins
      (`volume_kept_floor`; 1: every clicked piece is kept; the default, 27
      grid voxels, 3 across, folds specks but keeps any structure the
      encoder resolves, however far below the fold threshold)
      (`config.evaluation.volume_min_kept_voxels`; experiments/results/
      tuning_volume.md).

  Raises:
    ValueError: when a value is invalid (checked when the settings are made).
  """

  num_clusters: int = 10
  method: str = "spectral"
  seed: int = 0
  space: str = "reconstruction"
  image_weight: float = 1.0
  image_sigma: float = 2.0
  connected: bool = True
  min_segment_fraction: float = 0.005
  at_training_size: bool = True
  resize_to: Optional[tuple[int, int]] = None
  on_device: Union[bool, str] = "auto"
  min_segment_pixels: Optional[int] = None
  scale_num_clusters: tuple[int, ...] = tuple(range(2, 16))
  scale_rule: str = "stability"
  scale_max_fraction: float = 0.25
  snap_scale: Optional[float] = 32.0
  volume_max_fraction: float = 0.05
  volume_min_segment_voxels: Optional[int] = 1000
  volume_min_kept_voxels: int = 27

  def __post_init__(self):
    _validation.check_positive_integers(num_clusters=self.num_clusters)
    _validation.check_one_of(self.method, clustering.METHODS, what="clustering method")
    if isinstance(self.seed, (bool, np.bool_)) or not isinstance(self.seed, (int, np.integer)) \
        or self.seed < 0:
      raise ValueError(f"seed must be a non-negative integer; got {self.seed!r}.")
    _validation.check_one_of(self.space, CLUSTER_SPACES, what="space")
    for name in ("image_weight", "image_sigma"):
      value = getattr(self, name)
      if isinstance(value, bool) or not (isinstance(value, (int, float, np.integer,
                                                            np.floating))
                                         and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")
    for name in ("connected", "at_training_size"):
      if not isinstance(getattr(self, name), (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}.")
    fraction = self.min_segment_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer,
                                                               np.floating)) \
        or not 0 <= fraction < 1:
      raise ValueError(f"min_segment_fraction is {fraction!r}; expected a share in [0, 1).")
    if self.resize_to is not None:
      object.__setattr__(self, "resize_to", _validation.check_size(
          self.resize_to, what="resize_to", minimum=2, hint=" E.g. params.image_size."))
    if self.on_device is not True and self.on_device is not False and self.on_device != "auto":
      raise ValueError(f"on_device is {self.on_device!r}; expected True, False or 'auto'.")
    if self.min_segment_pixels is not None:
      _validation.check_positive_integers(min_segment_pixels=self.min_segment_pixels)
    ks = self.scale_num_clusters
    if isinstance(ks, (str, bytes)) or not isinstance(ks, (tuple, list, np.ndarray)) \
        or not len(ks):
      raise ValueError(f"scale_num_clusters is {ks!r}; expected a non-empty sequence of k, "
                       "e.g. range(2, 16).")
    _validation.check_positive_integers(**{f"scale_num_clusters[{i}]": k
                                           for i, k in enumerate(ks)})
    object.__setattr__(self, "scale_num_clusters", tuple(sorted({int(k) for k in ks})))
    _validation.check_one_of(self.scale_rule, SCALE_RULES, what="scale rule")
    _validation.check_share(self.scale_max_fraction, name="scale_max_fraction")
    snap = self.snap_scale
    if snap is not None:
      number = isinstance(snap, (int, float, np.integer, np.floating)) and \
          not isinstance(snap, (bool, np.bool_))
      if not number or not np.isfinite(snap) or snap < 0:
        raise ValueError(f"snap_scale is {snap!r}; expected a positive Felzenszwalb scale "
                         "(e.g. 32.0), or 0 or None for segments as clustered.")
      object.__setattr__(self, "snap_scale", float(snap) or None)  # 0: off, as in the config.
    _validation.check_share(self.volume_max_fraction, name="volume_max_fraction")
    if self.volume_min_segment_voxels is not None:
      _validation.check_positive_integers(volume_min_segment_voxels=self.volume_min_segment_voxels)
    _validation.check_positive_integers(volume_min_kept_voxels=self.volume_min_kept_voxels)

  def fold_threshold(self, pixel_count: int) -> int:
    """Pieces with fewer pixels than this join a neighbour, in an image of `pixel_count` pixels."""
    if self.min_segment_pixels is not None:
      return int(self.min_segment_pixels)
    return max(1, round(self.min_segment_fraction * pixel_count))

  def volume_fold_threshold(self, voxel_count: int) -> int:
    """Pieces with fewer voxels than this join a neighbour, in a volume's grid of `voxel_count`.

    `volume_min_segment_voxels`, but at most `min_segment_fraction` of the
    grid, so that a small volume does not fold its structures away; None:
    as in 2-D (`fold_threshold`).
    """
    if self.volume_min_segment_voxels is None:
      return self.fold_threshold(voxel_count)
    return max(1, min(int(self.volume_min_segment_voxels),
                      round(self.min_segment_fraction * voxel_count)))

  def volume_kept_floor(self, voxel_count: int) -> int:
    """A clicked piece of a volume with fewer voxels than this is not kept out of the fold.

    `volume_min_kept_voxels`, shrunk in the proportion the fold threshold
    is on a small grid (`volume_fold_threshold`), so that a small volume's
    small structures stay clickable.
    """
    floor = float(self.volume_min_kept_voxels)
    if self.volume_min_segment_voxels is not None:
      floor *= self.volume_fold_threshold(voxel_count) / self.volume_min_segment_voxels
    return max(1, min(int(self.volume_min_kept_voxels), round(floor)))

  @classmethod
  def from_config(cls, evaluation) -> "SegmentSettings":
    """From a config's `evaluation` section (see each attribute for its field)."""
    return cls(num_clusters=int(evaluation.num_clusters), method=evaluation.clustering,
               seed=int(evaluation.seed), space=evaluation.cluster_space,
               image_weight=float(evaluation.image_weight),
               image_sigma=float(evaluation.image_sigma),
               connected=bool(evaluation.connected_segments),
               min_segment_fraction=float(evaluation.min_segment_fraction),
               at_training_size=bool(evaluation.segment_at_training_size),
               min_segment_pixels=int(evaluation.get("min_segment_pixels", 0)) or None,
               scale_num_clusters=tuple(evaluation.get("scale_num_clusters", range(2, 16))),
               scale_rule=evaluation.get("scale_rule", "stability"),
               scale_max_fraction=float(evaluation.get("scale_max_fraction", 0.25)),
               snap_scale=float(evaluation.get("snap_scale", cls.snap_scale or 0)) or None,
               volume_max_fraction=float(evaluation.get("volume_max_fraction",
                                                        cls.volume_max_fraction)),
               volume_min_segment_voxels=int(evaluation.get(
                   "volume_min_segment_voxels", cls.volume_min_segment_voxels or 0)) or None,
               volume_min_kept_voxels=int(evaluation.get("volume_min_kept_voxels",
                                                         cls.volume_min_kept_voxels)))


_FIELDS = tuple(field.name for field in dataclasses.fields(SegmentSettings))


def resolve_settings(params: Any, *, settings: Optional[SegmentSettings] = None,
                     **overrides: Any) -> SegmentSettings:
  """The settings a segmentation runs with: the model's (or `settings`), with `overrides`.

  The only reader of `params.settings`: every entry point calls it once and
  passes the result on, so all of them fill in and check options alike.

  Args:
    params: a `SegmentationParams` (its `settings` are the model's defaults).
    settings: start from these instead of the model's (e.g. settings
      resolved once for many images).
    **overrides: fields of `SegmentSettings` to change; None leaves a field
      as it is (so `num_clusters=None` means the model's k).

  Returns:
    A `SegmentSettings`, checked.

  Raises:
    TypeError: an override that is not a field of `SegmentSettings`.
    ValueError: an invalid value, or the "reconstruction" space for a model
      without its reconstruction head.

  Example:
    settings = resolve_settings(params, num_clusters=4, at_training_size=False)
  """
  unknown = sorted(set(overrides) - set(_FIELDS))
  if unknown:
    raise TypeError(f"unknown segmentation option(s) {unknown}; the options are the fields of "
                    f"SegmentSettings: {', '.join(_FIELDS)}.")
  base = params.settings if settings is None else settings
  if not isinstance(base, SegmentSettings):
    raise TypeError(f"settings must be a SegmentSettings; got {type(base).__name__}.")
  given = {name: value for name, value in overrides.items() if value is not None}
  resolved = dataclasses.replace(base, **given) if given else base
  if resolved.space == "reconstruction" and getattr(params, "cluster_metric", None) is None:
    raise ValueError("these params carry no reconstruction head, so they cannot cluster in "
                     "the reconstruction space; use space='embedding'.")
  return resolved
