"""From a trained model to segments: embed, cluster, and select with one click.

`embed` is pure and jit-able (use it inside other JAX code); `segment` runs on
the host: it validates and scales the image, embeds it (in tiles when it is
large), and clusters the pixel embeddings.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import model as model_lib
from cuts_jax.io import datasets

__all__ = ["CLUSTER_SPACES", "SegmentationParams", "clustering_features", "embed", "embed_image",
           "prepare_image", "segment", "select"]

# Images are embedded in tiles of about this many pixels a side (plus a halo),
# which bounds the activation memory of very large images.
_TILE_SIDE = 512

# How far outside [0, 1] concrete inputs of `embed` may stray (resampling
# and float rounding overshoot a little) before they are refused.
_RANGE_TOLERANCE = 1e-3


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
    cluster_space: where `segment` clusters by default: "reconstruction"
      (embeddings @ cluster_metric) or "embedding" (the raw embeddings).
  """

  params: Any
  batch_stats: Any
  encoder: model_lib.Encoder = flax.struct.field(pytree_node=False)
  channels: int = flax.struct.field(pytree_node=False)
  image_size: tuple[int, int] = flax.struct.field(pytree_node=False)
  cluster_metric: Any = None
  cluster_space: str = flax.struct.field(pytree_node=False, default="reconstruction")

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
    space = config.evaluation.cluster_space
    _validation.check_one_of(space, CLUSTER_SPACES, what="config.evaluation.cluster_space")
    return cls(params=params, batch_stats=batch_stats,
               encoder=model.encoder, channels=channels,
               image_size=tuple(int(s) for s in config.data.image_size),
               cluster_metric=None if head is None else _reconstruction_metric(head["kernel"]),
               cluster_space=space if head is not None else "embedding")

  @classmethod
  def from_train_state(cls, state, config) -> "SegmentationParams":
    """From the `TrainState` that `train_and_evaluate` returns."""
    return cls.from_variables({"params": state.params, "batch_stats": state.batch_stats},
                              config)


CLUSTER_SPACES = ("reconstruction", "embedding")


def _reconstruction_metric(kernel: Any) -> np.ndarray:
  """(D, R) matrix M with |e1 M - e2 M| = |e1 W - e2 W| for the head's kernel W (D, P*P*C).

  The reconstruction head maps an embedding to the patch it stands for;
  measuring embeddings by the patches they rebuild ignores the directions the
  head does not read and weighs the others by how much they change the patch.
  M = U S (from W = U S V^T) gives those distances in at most D dimensions.
  """
  u, singular, _ = np.linalg.svd(np.asarray(kernel, np.float64), full_matrices=False)
  return (u * singular).astype(np.float32)


def clustering_features(params: SegmentationParams, embeddings: np.ndarray, *,
                        space: Optional[str] = None) -> np.ndarray:
  """The per-pixel vectors `segment` clusters: (..., D) embeddings -> (..., R).

  Args:
    params: the model.
    embeddings: (..., D) from `embed`/`embed_image`.
    space: "reconstruction" (distances between the patches the head rebuilds
      from the embeddings) or "embedding" (raw embeddings, the paper's
      literal choice); default `params.cluster_space`.
  """
  space = params.cluster_space if space is None else space
  _validation.check_one_of(space, CLUSTER_SPACES, what="space")
  if space == "embedding":
    return embeddings
  if params.cluster_metric is None:
    raise ValueError("these params carry no reconstruction head, so they cannot cluster in "
                     "the reconstruction space; use space='embedding'.")
  return np.asarray(embeddings, np.float32) @ np.asarray(params.cluster_metric, np.float32)


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


@jax.jit
def _embed_one(params: SegmentationParams, image: jax.Array) -> jax.Array:
  return embed(params, image[None])[0]


def _halo(params: SegmentationParams) -> int:
  return sum(k // 2 for k in params.encoder.kernel_sizes)


def embed_image(params: SegmentationParams, image: np.ndarray) -> np.ndarray:
  """Embeddings (H, W, D) of one float32 (H, W, C) image, in tiles when it is large.

  Each tile is embedded with a halo of the encoder's receptive radius, so the
  result equals embedding the whole image at once (up to float rounding).
  """
  height, width, _ = image.shape
  if max(height, width) <= _TILE_SIDE + 2 * _halo(params):
    return np.asarray(_embed_one(params, jnp.asarray(image)))
  halo = _halo(params)
  output = None
  for top in range(0, height, _TILE_SIDE):
    for left in range(0, width, _TILE_SIDE):
      bottom, right = min(top + _TILE_SIDE, height), min(left + _TILE_SIDE, width)
      r0, c0 = max(top - halo, 0), max(left - halo, 0)
      r1, c1 = min(bottom + halo, height), min(right + halo, width)
      tile = np.asarray(_embed_one(params, jnp.asarray(image[r0:r1, c0:c1])))
      if output is None:
        output = np.empty((height, width, tile.shape[-1]), np.float32)
      output[top:bottom, left:right] = tile[top - r0:bottom - r0, left - c0:right - c0]
  return output


def prepare_image(image: Any, *, channels: int) -> np.ndarray:
  """Validates an (H, W) or (H, W, C) image and maps it to float32 (H, W, C) in [0, 1].

  Scaling is `datasets.to_unit_range`, the same as training: uint8 / 255, other
  dtypes min-max unless already in [0, 1]. RGBA loses its alpha channel.

  Raises:
    ValueError: wrong rank or channel count, non-numeric dtype, NaN/Inf, or
      an image with fewer than 2 pixels a side.
  """
  array = _validation.check_image(image, hint=" For a batch, call segment once per image.")
  array = datasets.as_channels_last(array)
  if array.shape[-1] != channels:
    raise ValueError(f"the model was trained on {channels}-channel images; got "
                     f"{array.shape[-1]} channel(s) (shape {np.shape(image)}). Convert the "
                     "image (e.g. skimage.color.gray2rgb or rgb2gray) first.")
  if min(array.shape[:2]) < 2:
    raise ValueError(f"image of shape {np.shape(image)} is too small to segment; it needs "
                     "at least 2 pixels a side.")
  return datasets.to_unit_range(array)


def segment(params: SegmentationParams, image: Any, *, num_clusters: int = 10,
            method: str = "spectral", seed: int = 0,
            resize_to: Optional[Sequence[int]] = None,
            space: Optional[str] = None) -> np.ndarray:
  """Segments one image into at most `num_clusters` regions.

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
      image's size (e.g. `params.image_size`, when the image is at a different
      scale than the training images). None: segment at the image's own size.
    space: where pixels are clustered (see `clustering_features`): by the
      patches their embeddings rebuild ("reconstruction") or by the raw
      embeddings ("embedding"); default `params.cluster_space`.

  Returns:
    int32 (H, W) label map with labels 0 .. at most num_clusters - 1.

  Raises:
    ValueError: the image is unusable (see `prepare_image`), `resize_to` is
      not two sides of at least 2 px, or num_clusters/method are invalid.

  Example:
    params = cuts_jax.load("/tmp/retina")
    labels = cuts_jax.segment(params, skimage.io.imread("fundus.png"), num_clusters=10)
    lesion = cuts_jax.select(labels, (64, 40))   # bool (H, W): the segment under the click
  """
  array = prepare_image(image, channels=params.channels)
  height, width = array.shape[:2]
  if resize_to is not None:
    array = datasets.resize_image(array, _validation.check_size(
        resize_to, what="resize_to", minimum=2, hint=" E.g. params.image_size."))
  features = clustering_features(params, embed_image(params, array), space=space)
  labels = clustering.cluster_image(features, num_clusters=num_clusters, method=method,
                                    seed=seed)
  if labels.shape != (height, width):
    labels = datasets.resize_labels(labels, (height, width))
  return labels.astype(np.int32)


def select(labels: Any, pixel: Sequence[int], *,
           connected: Optional[bool] = None) -> np.ndarray:
  """The binary mask of the segment under one click: a pixel of an image or a voxel of a volume.

  Args:
    labels: int (H, W) label map (e.g. from `segment`), or int (D0, D1, D2)
      label volume (e.g. from `cuts_jax.segment_volume`).
    pixel: (row, col) of an image, or (i, j, k) of a volume; 0-based,
      negative indices are refused.
    connected: True: only the connected part of the clicked segment that
      holds the click (face neighbours: 4-connectivity in 2-D,
      6-connectivity in 3-D); False: every pixel with the clicked label.
      Default: True for a volume, False for an image (the paper's one-click
      protocol).

  Returns:
    bool mask of the labels' shape.
  """
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
