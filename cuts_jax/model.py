"""The CUTS network: a pixel-centred patch encoder and a linear patch decoder.

The encoder maps every pixel, through the patch its convolutions can see, to an
embedding. Convolutions keep the spatial size (no stride, no pooling), so an
image of shape (B, H, W, C) becomes embeddings of shape (B, H, W, D).
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from cuts_jax import _validation
from cuts_jax import conv
from cuts_jax import defaults

__all__ = ["ACTIVATIONS", "ARCHITECTURE_FIELDS", "COMPUTE_DTYPES", "PADDING_MODES", "CUTSModel", "Conv2D", "Encoder",
           "build_model", "receptive_field", "validate_model_config"]

PADDING_MODES = ("zero", "edge", "reflect")
ACTIVATIONS = ("relu", "leaky_relu")
COMPUTE_DTYPES = ("float32", "bfloat16")

# The config.model fields that define the weights; the others (preset name,
# how gradients are computed) can change between runs of one model.
ARCHITECTURE_FIELDS = tuple(defaults.PAPER_PRESET)


def _activate(x: jax.Array, activation: str) -> jax.Array:
  if activation == "relu":
    return nn.relu(x)
  return nn.leaky_relu(x, negative_slope=0.01)


class Conv2D(nn.Module):
  """A bias-free, stride-1, same-size convolution (see `cuts_jax.conv.conv2d`).

  Its parameter is "kernel" of shape (k, k, Ci, Co), as in `flax.linen.Conv`,
  kept in float32; `dtype` is what the convolution computes in.
  """

  features: int
  kernel_size: int
  padding: str = "zero"
  weight_gradient: str = "auto"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features),
                        jnp.float32)
    return conv.conv2d(x.astype(self.dtype), kernel.astype(self.dtype), padding=self.padding,
                       weight_gradient=self.weight_gradient)


class Encoder(nn.Module):
  """Stacked same-size convolutions, each followed by batch norm and an activation.

  Attributes:
    kernel_sizes: odd kernel side of each convolution.
    features: output channels of each convolution.
    embedding_dim: size of the per-pixel dense layer applied last; 0 means the
      last convolution block's output is the embedding.
    activation: "relu" or "leaky_relu" (slope 0.01).
    padding: how borders are filled before each convolution: "zero", "edge"
      (replicate) or "reflect".
    weight_gradient: how convolution weight gradients are computed: "auto"
      (the backend's fastest, see `cuts_jax.conv.plan`), "fft", "im2col" or "xla".
    compute_dtype: "float32", or "bfloat16" for mixed precision: convolutions
      and the dense layer compute in bf16, parameters and batch-norm
      statistics stay float32, and the embeddings come back as float32.
  """

  kernel_sizes: Sequence[int] = defaults.PAPER_PRESET["kernel_sizes"]
  features: Sequence[int] = defaults.PAPER_PRESET["features"]
  embedding_dim: int = defaults.PAPER_PRESET["embedding_dim"]
  activation: str = defaults.PAPER_PRESET["activation"]
  padding: str = defaults.PAPER_PRESET["padding"]
  weight_gradient: str = "auto"
  compute_dtype: str = "float32"

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool,
               axis_name: Optional[str] = None) -> jax.Array:
    """Embeds every pixel.

    Args:
      images: float array (B, H, W, C).
      train: use batch statistics (and update the running averages) when True,
        the running averages when False.
      axis_name: in training, the mapped axis (e.g. pmap's) over which batch
        statistics are averaged (synchronised batch norm); None when the
        batch is not split over devices.

    Returns:
      float32 array (B, H, W, D) of embeddings.
    """
    x = images
    for index, (kernel, width) in enumerate(zip(self.kernel_sizes, self.features)):
      # No bias: the batch norm that follows would cancel it.
      x = Conv2D(width, kernel, padding=self.padding, weight_gradient=self.weight_gradient,
                 dtype=self.compute_dtype, name=f"conv{index}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                       axis_name=axis_name if train else None, dtype=self.compute_dtype,
                       name=f"batch_norm{index}")(x)
      x = _activate(x, self.activation)
    if self.embedding_dim:
      x = nn.Dense(self.embedding_dim, dtype=self.compute_dtype, name="embedding")(x)
    return x.astype(jnp.float32)


class CUTSModel(nn.Module):
  """The encoder plus the linear head that rebuilds each pixel's patch.

  Attributes:
    encoder: the pixel encoder.
    patch_size: side P of the patch the head rebuilds.
    channels: image channels C (the head outputs P x P x C values).
    context_cells: G > 0 when the head also rebuilds the G x G cell means of a
      wider window (`config.loss.reconstruction_context`): it then outputs
      P x P x C + G x G x C values, the patch's first.
  """

  encoder: Encoder
  patch_size: int
  channels: int
  context_cells: int = 0

  def setup(self):
    """Builds the reconstruction head (Flax calls this before the module is used)."""
    self.reconstruction_head = nn.Dense(
        (self.patch_size**2 + self.context_cells**2) * self.channels)

  def __call__(self, images: jax.Array, *, train: bool,
               axis_name: Optional[str] = None) -> jax.Array:
    """(B, H, W, C) images -> (B, H, W, D) embeddings (`axis_name`: see `Encoder`)."""
    embeddings = self.encoder(images, train=train, axis_name=axis_name)
    if self.is_initializing():
      # Creates the head's parameters, which only the loss uses.
      self.reconstruct(embeddings[:, 0, 0])
    return embeddings

  def reconstruct(self, embeddings: jax.Array) -> jax.Array:
    """(..., D) embeddings -> (..., P, P, C) patches."""
    return self.reconstruct_with_context(embeddings)[0]

  def reconstruct_with_context(self, embeddings: jax.Array
                               ) -> tuple[jax.Array, Optional[jax.Array]]:
    """(..., D) embeddings -> (..., P, P, C) patches and (..., G, G, C) context cell means.

    The context is None when the head rebuilds no context (`context_cells` 0).
    """
    flat = self.reconstruction_head(embeddings)
    lead, p, g, c = embeddings.shape[:-1], self.patch_size, self.context_cells, self.channels
    patches = flat[..., :p * p * c].reshape(lead + (p, p, c))
    if not g:
      return patches, None
    return patches, flat[..., p * p * c:].reshape(lead + (g, g, c))


def validate_model_config(model_config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field when the model config cannot work."""
  kernels, widths = tuple(model_config.kernel_sizes), tuple(model_config.features)
  if not kernels or len(kernels) != len(widths):
    raise ValueError(
        f"config.model.kernel_sizes {kernels} and config.model.features {widths} must be "
        "non-empty and of the same length (one width per convolution).")
  if any(k < 1 or k % 2 == 0 for k in kernels):
    raise ValueError(f"config.model.kernel_sizes {kernels} must be odd and positive so that "
                     "each pixel sits at the centre of what the convolution sees.")
  if any(w < 1 for w in widths):
    raise ValueError(f"config.model.features {widths} must be positive.")
  _validation.check_one_of(model_config.padding, PADDING_MODES, what="config.model.padding")
  _validation.check_one_of(model_config.activation, ACTIVATIONS, what="config.model.activation")
  _validation.check_one_of(model_config.weight_gradient, conv.WEIGHT_GRADIENTS,
                           what="config.model.weight_gradient")
  _validation.check_one_of(model_config.compute_dtype, COMPUTE_DTYPES,
                           what="config.model.compute_dtype")
  if model_config.embedding_dim < 0:
    raise ValueError("config.model.embedding_dim must be >= 0 (0: no dense layer).")


def receptive_field(model_config: ml_collections.ConfigDict) -> int:
  """Side of the input window that one embedding depends on."""
  return 1 + sum(k - 1 for k in model_config.kernel_sizes)


def build_model(config: ml_collections.ConfigDict, *, channels: int) -> CUTSModel:
  """The CUTS model described by `config.model`, `config.sampling.patch_size` and the context.

  The head's size follows `config.loss.reconstruction_context` (and its cells),
  so a checkpoint trained with a context restores into the model its config builds.
  """
  model_config = config.model
  validate_model_config(model_config)
  encoder = Encoder(
      kernel_sizes=tuple(model_config.kernel_sizes),
      features=tuple(model_config.features),
      embedding_dim=model_config.embedding_dim,
      activation=model_config.activation,
      padding=model_config.padding,
      weight_gradient=model_config.weight_gradient,
      compute_dtype=model_config.compute_dtype,
  )
  loss = config.get("loss", {})
  context_cells = loss.get("reconstruction_context_cells", 0) if loss.get(
      "reconstruction_context", 0) else 0
  return CUTSModel(encoder=encoder, patch_size=config.sampling.patch_size, channels=channels,
                   context_cells=context_cells)
