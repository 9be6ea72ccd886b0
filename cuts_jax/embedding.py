"""A trained encoder and its pixel embeddings: `SegmentationParams`, `embed`, `embed_image`.

`embed` is pure and jit-able (use it inside other JAX code); `embed_image`
runs on the host and embeds one image of any size, in tiles when it is
large; `clustering_features` measures embeddings as segmentation compares
them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np

from cuts_jax import _validation
from cuts_jax import model as model_lib
from cuts_jax import segment_settings

__all__ = ["SegmentationParams", "clustering_features", "embed", "embed_image"]

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
      W = U S V^T, its patch columns only when it also rebuilds a context);
      None when the head is not known.
    settings: the model's own `SegmentSettings` (from the run's config):
      what every segmentation uses by default. Read them through
      `segment_settings.resolve_settings(params, ...)`, which adds the
      caller's overrides and checks them.
  """

  params: Any
  batch_stats: Any
  encoder: model_lib.Encoder = flax.struct.field(pytree_node=False)
  channels: int = flax.struct.field(pytree_node=False)
  image_size: tuple[int, int] = flax.struct.field(pytree_node=False)
  cluster_metric: Any = None
  settings: segment_settings.SegmentSettings = flax.struct.field(
      pytree_node=False, default=segment_settings.SegmentSettings())

  @property
  def cluster_space(self) -> str:
    """Where `segment` clusters by default (see `clustering_features`)."""
    return segment_settings.resolve_settings(self).space

  def with_settings(self, **overrides: Any) -> "SegmentationParams":
    """These params with other default settings (fields of `SegmentSettings`).

    Example:
      params = cuts_jax.load(workdir).with_settings(num_clusters=6)
      labels = cuts_jax.segment(params, image)   # k = 6 from now on
    """
    return self.replace(settings=segment_settings.resolve_settings(self, **overrides))

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
    settings = segment_settings.SegmentSettings.from_config(config.evaluation)
    if head is None and settings.space == "reconstruction":
      settings = dataclasses.replace(settings, space="embedding")
    # Segments are embedded in float32 whatever precision trained the weights.
    return cls(params=params, batch_stats=batch_stats,
               encoder=model.encoder.clone(compute_dtype="float32"), channels=channels,
               image_size=tuple(int(s) for s in config.data.image_size),
               cluster_metric=None if head is None else _reconstruction_metric(
                   _patch_columns(head["kernel"], config.sampling.patch_size, channels)),
               settings=settings)

  @classmethod
  def from_train_state(cls, state, config) -> "SegmentationParams":
    """From the `TrainState` that `train_and_evaluate` returns."""
    return cls.from_variables({"params": state.params, "batch_stats": state.batch_stats},
                              config)


def _patch_columns(kernel: Any, patch_size: int, channels: int) -> Any:
  """The head kernel's columns that rebuild the patch (D, P*P*C), without any context cells.

  A head trained with `config.loss.reconstruction_context` also rebuilds a
  wider window's cell means; the clustering space still measures embeddings
  by the patches they rebuild, as for any other model. On the retina tuning
  part this scored a little above measuring by the whole head (Dice 0.785 vs
  0.776, +0.008 [-0.011, +0.034] paired over images, 3 x 3 seeds;
  experiments/results/tuning_network.md).
  """
  return kernel[:, :patch_size * patch_size * channels]


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


def clustering_features(params: SegmentationParams, embeddings: np.ndarray, *,
                        space: Optional[str] = None) -> np.ndarray:
  """The per-pixel vectors `segment` clusters: (..., D) embeddings -> (..., R).

  Args:
    params: the model.
    embeddings: (..., D) from `embed`/`embed_image`.
    space: "reconstruction" (distances between the patches the head rebuilds
      from the embeddings), "embedding" (raw embeddings, the paper's literal
      choice) or "cosine" (embeddings scaled to unit length, the similarity
      the contrastive loss trains); default: the model's.
  """
  space = segment_settings.resolve_settings(params, space=space).space
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
      `features.prepare_image`). Values are checked (finite, within [0, 1]) only when
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
                space: Optional[str] = None, spare_channels: int = 0) -> np.ndarray:
  """Embeddings (H, W, D) of one float32 (H, W, C) image, in tiles when it is large.

  Each tile is embedded with a halo of the encoder's receptive radius, so the
  result equals embedding the whole image at once (up to float rounding).

  Args:
    params: the model.
    image: float32 (H, W, C) in [0, 1].
    space: None for the raw embeddings; a space of `clustering_features` to
      get those features instead, computed on the device before the copy to
      the host.
    spare_channels: this many more channels at the end of the result, left
      unset, so a caller can add its own per-pixel values (the features of
      `cuts_jax.features` add the smoothed image) without a second copy of a
      large image's embeddings.

  Returns:
    float32 (H, W, D + spare_channels); D is the embedding's (or the space's) width.
  """
  if space is not None:
    space = segment_settings.resolve_settings(params, space=space).space
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
