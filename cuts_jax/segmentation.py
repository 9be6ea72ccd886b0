"""From a trained model to segments: embed, cluster, and select with one click.

`embed` is pure and jit-able (use it inside other JAX code); `segment` runs on
the host: it validates and scales the image, embeds it (in tiles when it is
large), and clusters the pixel embeddings.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, Sequence, Union

import flax
import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import model as model_lib
from cuts_jax import pixels
from cuts_jax import regions

__all__ = ["CLUSTER_SPACES", "SegmentSettings", "SegmentationParams", "clustering_features",
           "embed", "embed_image", "image_to_segment", "prepare_image", "segment",
           "segment_features", "segments_from_features", "select"]

# Images are embedded in tiles of about this many pixels a side (plus a halo),
# which bounds the activation memory of very large images.
_TILE_SIDE = 512

# How far outside [0, 1] concrete inputs of `embed` may stray (resampling
# and float rounding overshoot a little) before they are refused.
_RANGE_TOLERANCE = 1e-3

# Rows of features per block when their variance is summed.
_VARIANCE_BLOCK_ROWS = 65_536


CLUSTER_SPACES = ("reconstruction", "embedding", "cosine")


@dataclasses.dataclass(frozen=True)
class SegmentSettings:
  """How a model segments by default; read from its config's `evaluation` section.

  Attributes:
    num_clusters: k of the spectral k-means.
    space: how embeddings are compared (see `clustering_features`).
    image_weight: weight of the Gaussian-smoothed image values (colour or grey
      level) clustered beside the embeddings; each part is first scaled to
      unit total variance. 0 clusters the embeddings alone.
    image_sigma: the smoothing's standard deviation in pixels, at the size
      the image is segmented at.
    connected: cut every cluster into its connected pieces, so that the
      segment under a click is one region.
    min_segment_fraction: with `connected`, pieces smaller than this share of
      the image's pixels join a neighbour.
    at_training_size: segment images at the training image size and scale
      the labels back (the scale the encoder learned features at).
  """

  num_clusters: int = 10
  space: str = "reconstruction"
  image_weight: float = 1.0
  image_sigma: float = 2.0
  connected: bool = True
  min_segment_fraction: float = 0.005
  at_training_size: bool = True

  @classmethod
  def from_config(cls, evaluation) -> "SegmentSettings":
    """From a config's `evaluation` section (fields of the same names)."""
    settings = cls(num_clusters=int(evaluation.num_clusters), space=evaluation.cluster_space,
                   image_weight=float(evaluation.image_weight),
                   image_sigma=float(evaluation.image_sigma),
                   connected=bool(evaluation.connected_segments),
                   min_segment_fraction=float(evaluation.min_segment_fraction),
                   at_training_size=bool(evaluation.segment_at_training_size))
    _validation.check_one_of(settings.space, CLUSTER_SPACES,
                             what="config.evaluation.cluster_space")
    return settings


@flax.struct.dataclass
class SegmentationParams:
  """What `embed` and `segment` need from a training run.

  A pytree: `params` and `batch_stats` are its leaves (so it can be passed
  through `jax.jit`); the architecture and training metadata are static.

  Attributes:
    params: the encoder's weights.
    batch_stats: the encoder's batch-norm running mean and variance.
    encoder: the `model.Encoder` module (its architecture).
    channels: image channels the model was trained on.
    image_size: (H, W) the training images were resized to.
    cluster_metric: (D, R) float32 matrix M such that distances between
      `embeddings @ M` equal distances between the patches the reconstruction
      head rebuilds from the embeddings (M = U S from the head's kernel
      W = U S V^T); None when the head is not known.
    settings: how `segment` turns embeddings into segments by default
      (`SegmentSettings`, from the run's config).
  """

  params: Any
  batch_stats: Any
  encoder: model_lib.Encoder = flax.struct.field(pytree_node=False)
  channels: int = flax.struct.field(pytree_node=False)
  image_size: tuple[int, int] = flax.struct.field(pytree_node=False)
  cluster_metric: Any = None
  settings: SegmentSettings = flax.struct.field(pytree_node=False,
                                                default=SegmentSettings())

  @property
  def cluster_space(self) -> str:
    """Where `segment` clusters by default (see `clustering_features`)."""
    return self.settings.space

  @classmethod
  def from_variables(cls, variables: dict, config) -> "SegmentationParams":
    """From model variables ({'params', 'batch_stats'}, as in a TrainState) and the config.

    Raises:
      ValueError: when the variables are not those of the encoder that
        `config.model` describes (e.g. a checkpoint beside another run's
        config.json): every weight's name and shape is checked, since flax
        would silently ignore weights the model does not use.
    """
    try:
      params, batch_stats = variables["params"]["encoder"], variables["batch_stats"]["encoder"]
      channels = int(np.shape(params["conv0"]["kernel"])[2])
    except (KeyError, TypeError, IndexError) as error:
      raise ValueError(f"these variables hold no CUTS encoder (missing {error}); expected "
                       "{'params': {'encoder': ...}, 'batch_stats': {'encoder': ...}} as "
                       "saved by cuts_jax training.") from error
    model = model_lib.build_model(config, channels=channels)
    _check_encoder_variables(model.encoder, {"params": params, "batch_stats": batch_stats},
                             channels)
    head = variables["params"].get("reconstruction_head")
    settings = SegmentSettings.from_config(config.evaluation)
    if head is None and settings.space == "reconstruction":
      settings = dataclasses.replace(settings, space="embedding")
    # Segments are embedded in float32 whatever precision trained the weights.
    return cls(params=params, batch_stats=batch_stats,
               encoder=model.encoder.clone(compute_dtype="float32"), channels=channels,
               image_size=tuple(int(s) for s in config.data.image_size),
               cluster_metric=None if head is None else _reconstruction_metric(head["kernel"]),
               settings=settings)

  @classmethod
  def from_train_state(cls, state, config) -> "SegmentationParams":
    """From the `TrainState` that `train_and_evaluate` returns."""
    return cls.from_variables({"params": state.params, "batch_stats": state.batch_stats},
                              config)


def _reconstruction_metric(kernel: Any) -> np.ndarray:
  """(D, R) matrix M with |e1 M - e2 M| = |e1 W - e2 W| for the head's kernel W (D, P*P*C).

  The reconstruction head maps an embedding to the patch it stands for;
  measuring embeddings by the patches they rebuild ignores the directions the
  head does not read and weighs the others by how much they change the patch.
  M = U S (from W = U S V^T) gives those distances in at most D dimensions.
  """
  u, singular, _ = np.linalg.svd(np.asarray(kernel, np.float64), full_matrices=False)
  return (u * singular).astype(np.float32)


def _project(params: SegmentationParams, embeddings: jax.Array, space: str) -> jax.Array:
  """`clustering_features` on the device (space already validated)."""
  if space == "embedding":
    return embeddings
  if space == "cosine":
    return embeddings / jnp.maximum(jnp.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-8)
  return embeddings @ params.cluster_metric


def _check_space(params: SegmentationParams, space: Optional[str]) -> str:
  space = params.cluster_space if space is None else space
  _validation.check_one_of(space, CLUSTER_SPACES, what="space")
  if space == "reconstruction" and params.cluster_metric is None:
    raise ValueError("these params carry no reconstruction head, so they cannot cluster in "
                     "the reconstruction space; use space='embedding'.")
  return space


def clustering_features(params: SegmentationParams, embeddings: np.ndarray, *,
                        space: Optional[str] = None) -> np.ndarray:
  """The per-pixel vectors `segment` clusters: (..., D) embeddings -> (..., R).

  Args:
    params: the model.
    embeddings: (..., D) from `embed`/`embed_image`.
    space: "reconstruction" (distances between the patches the head rebuilds
      from the embeddings), "embedding" (raw embeddings, the paper's literal
      choice) or "cosine" (embeddings scaled to unit length, the similarity
      the contrastive loss trains); default `params.cluster_space`.
  """
  space = _check_space(params, space)
  return np.asarray(_project(params, jnp.asarray(embeddings, jnp.float32), space))


def _check_encoder_variables(encoder: model_lib.Encoder, variables: dict, channels: int) -> None:
  """Raises ValueError unless `variables` has exactly the encoder's weights and shapes."""
  expected = jax.eval_shape(functools.partial(encoder.init, train=False), jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 8, 8, channels), jnp.float32))
  mismatch = _validation.first_shape_mismatch(_validation.tree_shapes(expected),
                                              _validation.tree_shapes(variables))
  if mismatch is not None:
    name, wanted, found = mismatch
    architecture = {f: getattr(encoder, f) for f in model_lib.ARCHITECTURE_FIELDS}
    raise ValueError(
        f"the weights do not fit the model the config describes ({architecture}): "
        f"{name} has shape {found} in the weights and {wanted} in that model. The checkpoint "
        "and the config come from different runs, or config.json was edited; use the "
        "config.json that the run which saved the checkpoint wrote.")


def embed(params: SegmentationParams, images: jax.Array) -> jax.Array:
  """Pixel embeddings of a batch of images. Pure and jit-able.

  Args:
    params: a `SegmentationParams` (from `load` or `SegmentationParams.from_train_state`).
    images: float (B, H, W, C) in [0, 1], C = params.channels, H and W >= 1.
      Integer images are refused (scale them first, e.g. with
      `prepare_image`). Values are checked (finite, within [0, 1]) only when
      they are concrete, i.e. not under `jit` or `grad`.

  Returns:
    float32 (B, H, W, D) embeddings (batch norm uses the running statistics).

  Raises:
    ValueError: wrong shape, channel count or dtype; NaN, Inf or values
      outside [0, 1] in concrete images.
  """
  images = _validation.check_batch(jnp.asarray(images), channels=params.channels)
  scale_hint = (" Scale them first: prepare_image(image, channels=...) for one image, or "
                "images / 255 for uint8.")
  _validation.check_floating(images, what="images", hint=scale_hint)
  if not isinstance(images, jax.core.Tracer):
    # Outside jit the values are known; a wrong scale would give silent garbage.
    _validation.check_finite(images, what="the batch")
    _validation.check_unit_range(images, what="the batch", tolerance=_RANGE_TOLERANCE,
                                 hint=scale_hint)
  variables = {"params": params.params, "batch_stats": params.batch_stats}
  return params.encoder.apply(variables, images.astype(jnp.float32), train=False)


@functools.partial(jax.jit, static_argnames="space")
def _embed_one(params: SegmentationParams, image: jax.Array, space: Optional[str]) -> jax.Array:
  embeddings = embed(params, image[None])[0]
  return embeddings if space is None else _project(params, embeddings, space)


def _halo(params: SegmentationParams) -> int:
  return sum(k // 2 for k in params.encoder.kernel_sizes)


def embed_image(params: SegmentationParams, image: np.ndarray, *,
                space: Optional[str] = None) -> np.ndarray:
  """Embeddings (H, W, D) of one float32 (H, W, C) image, in tiles when it is large.

  Each tile is embedded with a halo of the encoder's receptive radius, so the
  result equals embedding the whole image at once (up to float rounding).

  Args:
    params: the model.
    image: float32 (H, W, C) in [0, 1].
    space: None for the raw embeddings; a space of `clustering_features` to
      get those features instead, computed on the device before the copy to
      the host.
  """
  return _embed_image(params, image, space=space)


def _embed_image(params: SegmentationParams, image: np.ndarray, *, space: Optional[str],
                 spare_channels: int = 0) -> np.ndarray:
  """`embed_image` into an (H, W, D + spare_channels) array whose last channels are unset.

  The spare channels let `segment_features` add the image's own values
  without a second copy of a large image's features.
  """
  if space is not None:
    space = _check_space(params, space)
  height, width, _ = image.shape
  if max(height, width) <= _TILE_SIDE + 2 * _halo(params):
    embedded = np.asarray(_embed_one(params, jnp.asarray(image), space))
    if not spare_channels:
      return embedded
    output = np.empty(embedded.shape[:2] + (embedded.shape[2] + spare_channels,), np.float32)
    output[..., :embedded.shape[2]] = embedded
    return output
  halo = _halo(params)
  output = None
  for top in range(0, height, _TILE_SIDE):
    for left in range(0, width, _TILE_SIDE):
      bottom, right = min(top + _TILE_SIDE, height), min(left + _TILE_SIDE, width)
      r0, c0 = max(top - halo, 0), max(left - halo, 0)
      r1, c1 = min(bottom + halo, height), min(right + halo, width)
      tile = np.asarray(_embed_one(params, jnp.asarray(image[r0:r1, c0:c1]), space))
      if output is None:
        output = np.empty((height, width, tile.shape[-1] + spare_channels), np.float32)
      output[top:bottom, left:right, :tile.shape[-1]] = tile[top - r0:bottom - r0,
                                                             left - c0:right - c0]
  return output


def prepare_image(image: Any, *, channels: int) -> np.ndarray:
  """Validates an (H, W) or (H, W, C) image and maps it to float32 (H, W, C) in [0, 1].

  Scaling is `pixels.to_unit_range`, the same as training: uint8 / 255, other
  dtypes min-max unless already in [0, 1]. RGBA loses its alpha channel.

  Raises:
    ValueError: wrong rank or channel count, non-numeric dtype, NaN/Inf, or
      an image with fewer than 2 pixels a side.
  """
  array = _validation.check_image(image, hint=" For a batch, call segment once per image.")
  array = pixels.as_channels_last(array)
  if array.shape[-1] != channels:
    raise ValueError(f"the model was trained on {channels}-channel images; got "
                     f"{array.shape[-1]} channel(s) (shape {np.shape(image)}). Convert the "
                     "image (e.g. skimage.color.gray2rgb or rgb2gray) first.")
  if min(array.shape[:2]) < 2:
    raise ValueError(f"image of shape {np.shape(image)} is too small to segment; it needs "
                     "at least 2 pixels a side.")
  return pixels.to_unit_range(array)


def _total_spread(features: np.ndarray) -> float:
  """The square root of the summed per-channel variance, accumulated in float64 by blocks.

  By blocks of rows, so that a large image's features are never copied whole
  (np.var would make a float64 copy: 4.4 GB for a 2048 x 2048 image).
  """
  flat = features.reshape(-1, features.shape[-1])
  total = np.zeros(flat.shape[1])
  squares = np.zeros(flat.shape[1])
  for start in range(0, len(flat), _VARIANCE_BLOCK_ROWS):
    block = flat[start:start + _VARIANCE_BLOCK_ROWS].astype(np.float64)
    total += block.sum(axis=0)
    squares += np.einsum("ij,ij->j", block, block)
  mean = total / len(flat)
  variance = np.maximum(squares / len(flat) - mean * mean, 0.0)
  return float(np.sqrt(np.sum(variance)))


def _scale_to_unit_total_variance(features: np.ndarray) -> np.ndarray:
  """Divides features (in place) by their total spread (nothing when it is 0)."""
  spread = _total_spread(features)
  if spread > 0:
    features /= np.float32(spread)
  return features


def segment_features(params: SegmentationParams, image: np.ndarray, *,
                     space: Optional[str] = None, image_weight: Optional[float] = None,
                     image_sigma: Optional[float] = None) -> np.ndarray:
  """The per-pixel vectors `segment` clusters, for one image as `prepare_image` returns it.

  The embeddings as `clustering_features` measures them, each scaled to unit
  total variance, beside the Gaussian-smoothed image values scaled likewise
  and weighted by `image_weight` (the encoder describes each pixel's patch;
  the smoothed values keep the region's plain colour or grey level, which
  the reconstruction-space distances weigh little).

  Args:
    params: the model.
    image: float32 (H, W, C) in [0, 1].
    space, image_weight, image_sigma: as in `SegmentSettings`; None takes
      `params.settings`.

  Returns:
    float32 (H, W, R) with R = the embedding features (+ C when
    `image_weight` is not 0).
  """
  settings = params.settings
  weight = settings.image_weight if image_weight is None else float(image_weight)
  sigma = settings.image_sigma if image_sigma is None else float(image_sigma)
  if weight < 0 or sigma < 0:
    raise ValueError(f"image_weight ({weight}) and image_sigma ({sigma}) must be >= 0.")
  space = params.cluster_space if space is None else space
  channels = image.shape[-1] if weight else 0
  features = _embed_image(params, image, space=space, spare_channels=channels)
  if not features.flags.writeable:  # A device array's read-only view.
    features = features.copy()
  _scale_to_unit_total_variance(features[..., :features.shape[-1] - channels])
  if weight:
    smoothed = ndimage.gaussian_filter(np.asarray(image, np.float32), sigma=(sigma, sigma, 0),
                                       mode="reflect")
    features[..., -channels:] = np.float32(weight) * _scale_to_unit_total_variance(smoothed)
  return features


def image_to_segment(params: SegmentationParams, image: Any, *,
                     resize_to: Optional[Sequence[int]] = None,
                     at_training_size: Optional[bool] = None) -> np.ndarray:
  """`prepare_image`, then resized to the size the image is segmented at.

  Args:
    params: the model.
    image: (H, W) or (H, W, C) array, as `segment` takes it.
    resize_to: this (H, W); overrides `at_training_size`.
    at_training_size: True: `params.image_size`; False: the image's own size;
      None: `params.settings.at_training_size`.

  Returns:
    float32 (h, w, C) in [0, 1].
  """
  array = prepare_image(image, channels=params.channels)
  own_size = array.shape[:2]
  if resize_to is not None:
    size = _validation.check_size(resize_to, what="resize_to", minimum=2,
                                  hint=" E.g. params.image_size.")
  elif params.settings.at_training_size if at_training_size is None else at_training_size:
    size = tuple(params.image_size)
  else:
    size = array.shape[:2]
  return array if tuple(size) == own_size else pixels.resize_image(array, size)


def segment(params: SegmentationParams, image: Any, *, num_clusters: Optional[int] = None,
            method: str = "spectral", seed: int = 0,
            resize_to: Optional[Sequence[int]] = None,
            at_training_size: Optional[bool] = None,
            space: Optional[str] = None, image_weight: Optional[float] = None,
            image_sigma: Optional[float] = None, connected: Optional[bool] = None,
            min_segment_fraction: Optional[float] = None,
            on_device: Union[bool, str] = "auto") -> np.ndarray:
  """Segments one image into regions.

  The image is embedded (at the training image size by default), its pixels'
  features (`segment_features`) are clustered by spectral k-means, and each
  cluster is cut into its connected pieces, tiny pieces joining a neighbour.
  Every option left at None takes the model's default (`params.settings`,
  from the run's config).

  Args:
    params: a `SegmentationParams` (from `load` or `from_train_state`).
    image: (H, W) or (H, W, C) array of any numeric dtype: uint8 is read as
      0-255, bool as 0/1, float already in [0, 1] as is, anything else is
      min-max scaled. C must match the channels the model was trained on
      (RGBA loses alpha).
    num_clusters: k of the spectral k-means (the paper uses 10).
    method: "spectral" (the paper's spectral k-means) or "kmeans".
    seed: seeds the clustering; the same seed gives the same labels.
    resize_to: segment at this (H, W) and scale the labels back to the
      image's size; overrides `at_training_size`.
    at_training_size: True segments at `params.image_size` (the scale the
      encoder learned), False at the image's own size.
    space: how embeddings are compared (see `clustering_features`).
    image_weight: weight of the smoothed image values beside the embeddings
      (see `segment_features`); 0 clusters the embeddings alone.
    image_sigma: Gaussian sigma (px) of that smoothing.
    connected: cut clusters into connected segments; False returns the
      clusters themselves (labels < num_clusters), as the paper does.
    min_segment_fraction: with `connected`, pieces below this share of the
      pixels join the neighbour they share the longest border with.
    on_device: where the clustering runs: True on JAX's default device,
      False on the host (numpy/scikit-learn), "auto" where it was measured
      faster (`clustering.device_clustering_is_faster`).

  Returns:
    int32 (H, W) label map numbered 0, 1, ... in raster order: connected
    segments, or at most `num_clusters` clusters when `connected=False`.

  Raises:
    ValueError: the image is unusable (see `prepare_image`), `resize_to` is
      not two sides of at least 2 px, or an option is invalid.

  Example:
    params = cuts_jax.load("/tmp/retina")
    labels = cuts_jax.segment(params, skimage.io.imread("fundus.png"))
    lesion = cuts_jax.select(labels, (64, 40))   # bool (H, W): the segment under the click
  """
  array = prepare_image(image, channels=params.channels)
  size = array.shape[:2]
  _min_segment_fraction(params, min_segment_fraction)  # A bad value fails before the encoder.
  array = image_to_segment(params, array, resize_to=resize_to, at_training_size=at_training_size)
  features = segment_features(params, array, space=space, image_weight=image_weight,
                              image_sigma=image_sigma)
  return segments_from_features(params, features, size=size, num_clusters=num_clusters,
                                method=method, seed=seed, connected=connected,
                                min_segment_fraction=min_segment_fraction, on_device=on_device)


def _min_segment_fraction(params: SegmentationParams, value: Optional[float]) -> float:
  fraction = params.settings.min_segment_fraction if value is None else float(value)
  if not 0 <= fraction < 1:
    raise ValueError(f"min_segment_fraction is {fraction}; expected a share in [0, 1).")
  return fraction


def segments_from_features(params: SegmentationParams, features: np.ndarray, *,
                           size: Optional[Sequence[int]] = None,
                           num_clusters: Optional[int] = None, method: str = "spectral",
                           seed: int = 0, connected: Optional[bool] = None,
                           min_segment_fraction: Optional[float] = None,
                           on_device: Union[bool, str] = "auto") -> np.ndarray:
  """The second half of `segment`: (h, w, R) `segment_features` -> int32 label map.

  Call it several times on one image's features to try several options
  (e.g. values of k) without embedding the image again.

  Args:
    params: the model (its `settings` fill the options left at None).
    features: float (h, w, R), from `segment_features`.
    size: (H, W) to return the labels at (the image's own size); None: (h, w).
    num_clusters, method, seed, connected, min_segment_fraction, on_device: as
      in `segment`.

  Returns:
    int32 (H, W) labels numbered 0, 1, ... in raster order.
  """
  settings = params.settings
  fraction = _min_segment_fraction(params, min_segment_fraction)
  labels = clustering.cluster_image(
      features, num_clusters=settings.num_clusters if num_clusters is None else num_clusters,
      method=method, seed=seed, on_device=on_device)
  if settings.connected if connected is None else connected:
    labels = regions.connected_segments(labels, min_size=max(1, round(fraction * labels.size)))
  if size is not None and labels.shape != tuple(size):
    labels = regions.renumber(pixels.resize_labels(labels, size))
  return labels.astype(np.int32)


def select(labels: Union[np.ndarray, regions.Hierarchy], pixel: Sequence[int], *,
           connected: Optional[bool] = None, level: Union[str, int] = "persistent",
           target_size: Optional[int] = None) -> np.ndarray:
  """The binary mask of the segment under one click: a pixel of an image or a voxel of a volume.

  Args:
    labels: int (H, W) label map (e.g. from `segment`), int (D0, D1, D2)
      label volume (e.g. from `cuts_jax.segment_volume`), or a `Hierarchy`
      (from `segment_hierarchy`).
    pixel: (row, col) of an image, or (i, j, k) of a volume; 0-based,
      negative indices are refused.
    connected: True: only the connected part of the clicked segment that
      holds the click (face neighbours: 4-connectivity in 2-D,
      6-connectivity in 3-D); False: every pixel with the clicked label.
      Default: True for a volume, False for an image (the paper's one-click
      protocol; `segment`'s segments are connected already).
    level: for a hierarchy: "persistent" (the level at which the clicked
      segment survives the widest range of granularity) or a level index.
    target_size: for a hierarchy: instead of `level`, the level whose clicked
      segment has the number of pixels closest to this.

  Returns:
    bool mask of the labels' shape.
  """
  if isinstance(labels, regions.Hierarchy):
    return regions.select_level(labels, pixel, level=level, target_size=target_size)
  if np.ndim(labels) == 3:
    return _select_in_volume(labels, pixel, connected=connected is None or connected)
  labels = _validation.check_label_map(labels)
  row, col = _validation.check_pixel(pixel, shape=labels.shape)
  mask = labels == labels[row, col]
  return _component_holding(mask, (row, col)) if connected else mask


def _select_in_volume(labels: Any, voxel: Sequence[int], *, connected: bool) -> np.ndarray:
  # In a volume clustered as a whole, one label spans every structure of a
  # similar look (the ventricles and all other fluid), so a click means the
  # clicked structure itself: its connected part.
  labels = _validation.check_label_map(labels, ndim=3)
  if np.ndim(voxel) == 1 and len(voxel) == 2:
    raise ValueError(f"labels of shape {labels.shape} are a 3-D label volume, which takes a "
                     f"voxel (i, j, k), three integers; got the pixel {tuple(voxel)!r}. For a 2-D (H, W) "
                     "label map pass a 2-D array.")
  voxel = _validation.check_pixel(voxel, shape=labels.shape, what="voxel",
                                  where="label volume", ndim=3)
  mask = labels == labels[voxel]
  return _component_holding(mask, voxel) if connected else mask


def _component_holding(mask: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
  """The face-connected component of `mask` that holds `index`.

  Face neighbours only: diagonal contacts, which at the rim of two segments
  often join structures that are not one, do not link.
  """
  structure = ndimage.generate_binary_structure(mask.ndim, 1)
  components, _ = ndimage.label(mask, structure=structure)
  return components == components[index]
