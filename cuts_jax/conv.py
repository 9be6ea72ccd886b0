"""Same-size 2-D convolution with a faster weight gradient on CPU.

XLA's CPU backend computes the weight gradient of a large convolution at a
small fraction of the CPU's speed, and its VALID convolutions run slower than
SAME ones (benchmarks/notes.md). `conv2d` therefore:

* always runs XLA's fast SAME convolution in the forward pass (for edge and
  reflect padding on the explicitly padded input, cropping the border);
* on CPU, computes the weight gradient as one matrix product per image of the
  image's patches (im2col) with the output gradient, summed over the batch;
  elsewhere (GPU/TPU, whose convolution libraries are fast) it keeps XLA's.

The input gradient is always XLA's. `benchmarks/run.py` measures the gain.
"""

from __future__ import annotations

import functools

import jax
from jax import lax
import jax.numpy as jnp

from cuts_jax import _validation

__all__ = ["WEIGHT_GRADIENTS", "conv2d", "use_im2col"]

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
WEIGHT_GRADIENTS = ("auto", "xla", "im2col")


def _xla_conv(x: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMENSIONS)


def _same_then_crop(padded: jax.Array, kernel: jax.Array) -> jax.Array:
  """The VALID convolution of `padded`, computed by XLA's faster SAME path."""
  half = kernel.shape[0] // 2
  out = _xla_conv(padded, kernel, "SAME")
  return out[:, half:out.shape[1] - half, half:out.shape[2] - half]


def _im2col_weight_gradient(padded: jax.Array, output_gradient: jax.Array,
                           kernel_size: int) -> jax.Array:
  """dL/dkernel of a VALID convolution, as per-image patch matrix products.

  For each image and each kernel row i, the (H * W, k * Ci) matrix of the
  pixels' patch rows is multiplied by the (Co, H * W) transposed output
  gradient. One kernel row at a time keeps the patch matrix small (it is
  built by copying, which costs as much as the product), and the transposed
  product is the faster one on XLA's CPU backend.

  Args:
    padded: (B, H + k - 1, W + k - 1, Ci) input of the VALID convolution.
    output_gradient: (B, H, W, Co) gradient of its output.
    kernel_size: k.

  Returns:
    (k, k, Ci, Co) gradient of the kernel.
  """
  _, height, width, out_channels = output_gradient.shape
  in_channels = padded.shape[-1]
  k = kernel_size

  def add_image(total, image_and_gradient):
    image, gradient = image_and_gradient
    gradient_t = gradient.reshape(height * width, out_channels).T
    per_row = []
    for i in range(k):
      band = image[i:i + height]
      patch_rows = jnp.stack([band[:, j:j + width] for j in range(k)], axis=2)
      per_row.append(gradient_t @ patch_rows.reshape(height * width, k * in_channels))
    return total + jnp.stack(per_row), None

  initial = jnp.zeros((k, out_channels, k * in_channels), jnp.float32)
  total, _ = lax.scan(add_image, initial, (padded.astype(jnp.float32),
                                           output_gradient.astype(jnp.float32)))
  # (k, Co, k, Ci) -> (k, k, Ci, Co)
  return total.reshape(k, out_channels, k, in_channels).transpose(0, 2, 3, 1)


@jax.custom_vjp
def _valid_conv_im2col(padded: jax.Array, kernel: jax.Array) -> jax.Array:
  return _same_then_crop(padded, kernel)


def _valid_conv_forward(padded, kernel):
  return _same_then_crop(padded, kernel), (padded, kernel)


def _valid_conv_backward(residuals, output_gradient):
  padded, kernel = residuals
  _, input_vjp = jax.vjp(lambda x: _xla_conv(x, kernel, "VALID"), padded)
  (input_gradient,) = input_vjp(output_gradient)
  kernel_gradient = _im2col_weight_gradient(padded, output_gradient, kernel.shape[0])
  return input_gradient, kernel_gradient.astype(kernel.dtype)


_valid_conv_im2col.defvjp(_valid_conv_forward, _valid_conv_backward)


@jax.custom_vjp
def _zero_padded_conv_im2col(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _xla_conv(x, kernel, "SAME")


def _zero_padded_forward(x, kernel):
  return _xla_conv(x, kernel, "SAME"), (x, kernel)


def _zero_padded_backward(residuals, output_gradient):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda y: _xla_conv(y, kernel, "SAME"), x)
  (input_gradient,) = input_vjp(output_gradient)
  half = kernel.shape[0] // 2
  padded = jnp.pad(x, ((0, 0), (half, half), (half, half), (0, 0)))
  kernel_gradient = _im2col_weight_gradient(padded, output_gradient, kernel.shape[0])
  return input_gradient, kernel_gradient.astype(kernel.dtype)


_zero_padded_conv_im2col.defvjp(_zero_padded_forward, _zero_padded_backward)


def use_im2col(weight_gradient: str) -> bool:
  """Whether `weight_gradient` ("auto", "xla" or "im2col") means im2col here."""
  _validation.check_one_of(weight_gradient, WEIGHT_GRADIENTS, what="weight gradient")
  if weight_gradient == "auto":
    return jax.default_backend() == "cpu"
  return weight_gradient == "im2col"


@functools.partial(jax.named_call, name="conv2d")
def conv2d(x: jax.Array, kernel: jax.Array, *, padding: str = "zero",
           weight_gradient: str = "auto") -> jax.Array:
  """Stride-1 convolution that keeps the spatial size.

  Args:
    x: (B, H, W, Ci) input.
    kernel: (k, k, Ci, Co) with k odd.
    padding: "zero", "edge" (replicate) or "reflect": how the border is filled.
    weight_gradient: "im2col" (faster on CPU), "xla", or "auto" (im2col on CPU).

  Returns:
    (B, H, W, Co) output.
  """
  half = kernel.shape[0] // 2
  im2col = use_im2col(weight_gradient)
  if padding == "zero":
    return _zero_padded_conv_im2col(x, kernel) if im2col else _xla_conv(x, kernel, "SAME")
  mode = {"edge": "edge", "reflect": "reflect"}[padding]
  padded = jnp.pad(x, ((0, 0), (half, half), (half, half), (0, 0)), mode=mode)
  return _valid_conv_im2col(padded, kernel) if im2col else _same_then_crop(padded, kernel)
