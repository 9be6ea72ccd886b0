"""From a trained model to segments: embed, cluster, and select with one click.

`embed` is pure and jit-able (use it inside other JAX code); `segment` runs on
the host: it validates and scales the image, embeds it (in tiles when it is
large), and clusters the pixel embeddings.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from cuts_jax import checkpointing
from cuts_jax import clustering
from cuts_jax import data as data_lib
from cuts_jax import model as model_lib

# Images are embedded in tiles of about this many pixels a side (plus a halo),
# which bounds the activation memory of very large images.
_TILE_SIDE = 512


@flax.struct.dataclass
class SegmentationParams:
  """What `embed` and `segment` need from a training run.

  A pytree: `params` and `batch_stats` are its leaves (so it can be passed
  through `jax.jit`); the architecture and training metadata are static.

  Attributes:
    params: the encoder's weights (the reconstruction head is not needed).
    batch_stats: the encoder's batch-norm running mean and variance.
    encoder: the `model.Encoder` module (its architecture).
    channels: image channels the model was trained on.
    image_size: (H, W) the training images were resized to.
  """

  params: Any
  batch_stats: Any
  encoder: model_lib.Encoder = flax.struct.field(pytree_node=False)
  channels: int = flax.struct.field(pytree_node=False)
  image_size: tuple[int, int] = flax.struct.field(pytree_node=False)

  @classmethod
  def from_variables(cls, variables: dict, config) -> "SegmentationParams":
    """From model variables ({'params', 'batch_stats'}, as in a TrainState) and the config."""
    params, batch_stats = variables["params"], variables["batch_stats"]
    channels = int(np.shape(params["encoder"]["conv0"]["kernel"])[2])
    model = model_lib.build_model(config, channels=channels)
    return cls(params=params["encoder"], batch_stats=batch_stats["encoder"],
               encoder=model.encoder, channels=channels,
               image_size=tuple(int(s) for s in config.data.image_size))

  @classmethod
  def from_train_state(cls, state, config) -> "SegmentationParams":
    """From the `TrainState` that `train_and_evaluate` returns."""
    return cls.from_variables({"params": state.params, "batch_stats": state.batch_stats},
                              config)


def load(workdir: str | pathlib.Path, *, step: Optional[int] = None) -> SegmentationParams:
  """Restores what `segment` needs from a training workdir.

  Args:
    workdir: the --workdir of a training run (holds config.json and checkpoints/).
    step: the checkpoint to load; the latest complete one by default.

  Raises:
    FileNotFoundError: when the workdir has no config.json or no checkpoint.
  """
  workdir = pathlib.Path(workdir).expanduser()
  config = checkpointing.read_config(workdir)
  manager = checkpointing.checkpoint_manager(workdir, read_only=True)
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{workdir} holds no complete checkpoint yet; train longer "
                              "or wait for the first save (config.training.checkpoint_every).")
    if step not in manager.all_steps():
      raise FileNotFoundError(f"{workdir} has no checkpoint of step {step}; it has "
                              f"{sorted(manager.all_steps())}.")
    restored = manager.restore(step, args=ocp.args.StandardRestore())
  finally:
    manager.close()
  variables = jax.tree.map(jnp.asarray, {"params": restored["params"],
                                         "batch_stats": restored["batch_stats"]})
  return SegmentationParams.from_variables(variables, config)


def embed(params: SegmentationParams, images: jax.Array) -> jax.Array:
  """Pixel embeddings of a batch of images. Pure and jit-able.

  Args:
    params: a `SegmentationParams` (from `load` or `SegmentationParams.from_train_state`).
    images: float (B, H, W, C) in [0, 1], C = params.channels.

  Returns:
    float32 (B, H, W, D) embeddings (batch norm uses the running statistics).
  """
  if images.ndim != 4 or images.shape[-1] != params.channels:
    raise ValueError(f"embed expects images of shape (B, H, W, {params.channels}); got "
                     f"{images.shape}.")
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

  Scaling is `data.to_unit_range`, the same as training: uint8 / 255, other
  dtypes min-max unless already in [0, 1]. RGBA loses its alpha channel.

  Raises:
    ValueError: wrong rank or channel count, non-numeric dtype, NaN/Inf, or
      an image with fewer than 2 pixels a side.
  """
  array = np.asarray(image)
  if array.ndim not in (2, 3):
    raise ValueError(f"expected one image of shape (H, W) or (H, W, C); got shape "
                     f"{array.shape}. For a batch, call segment once per image.")
  try:
    array = data_lib.as_channels_last(array)
    array = data_lib.to_unit_range(array)
  except data_lib.DataError as error:
    raise ValueError(str(error)) from error
  if array.shape[-1] != channels:
    raise ValueError(f"the model was trained on {channels}-channel images; got "
                     f"{array.shape[-1]} channel(s) (shape {np.shape(image)}). Convert the "
                     "image (e.g. skimage.color.gray2rgb or rgb2gray) first.")
  if min(array.shape[:2]) < 2:
    raise ValueError(f"image of shape {np.shape(image)} is too small to segment; it needs "
                     "at least 2 pixels a side.")
  return array


def segment(params: SegmentationParams, image: Any, *, num_clusters: int = 10,
            method: str = "spectral", seed: int = 0,
            resize_to: Optional[Sequence[int]] = None) -> np.ndarray:
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

  Returns:
    int32 (H, W) label map with labels 0 .. at most num_clusters - 1.
  """
  array = prepare_image(image, channels=params.channels)
  height, width = array.shape[:2]
  if resize_to is not None:
    array = data_lib.resize_image(array, tuple(resize_to))
  embeddings = embed_image(params, array)
  labels = clustering.cluster_image(embeddings, num_clusters=num_clusters, method=method,
                                    seed=seed)
  if labels.shape != (height, width):
    labels = data_lib.resize_labels(labels, (height, width))
  return labels.astype(np.int32)


def select(labels: Any, pixel: Sequence[int]) -> np.ndarray:
  """The binary mask of the segment under one (row, col) pixel.

  Args:
    labels: int (H, W) label map (e.g. from `segment`).
    pixel: (row, col), 0-based; negative indices are refused.

  Returns:
    bool (H, W) mask, True where labels equal the label at `pixel`.
  """
  labels = np.asarray(labels)
  if labels.ndim != 2:
    raise ValueError(f"labels must be a 2-D (H, W) map; got shape {labels.shape}.")
  if len(pixel) != 2:
    raise ValueError(f"pixel must be (row, col); got {pixel!r}.")
  row, col = (int(p) for p in pixel)
  if not (0 <= row < labels.shape[0] and 0 <= col < labels.shape[1]):
    raise ValueError(f"pixel ({row}, {col}) lies outside the {labels.shape[0]}x"
                     f"{labels.shape[1]} label map.")
  return labels == labels[row, col]
