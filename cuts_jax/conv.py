"""Same-size 2-D convolution, computed the way each backend does fastest.

A same-size convolution of a padded image is a VALID convolution of the
explicitly padded input. How each of its three parts (forward, input
gradient, weight gradient) is computed is chosen per backend by `plan`, a
pure function of the backend's name, the layer's input channels and the
`weight_gradient` option:

* GPU and TPU: the VALID convolution itself and XLA's own gradients (their
  convolution libraries handle every padding at full speed, so nothing is
  computed that is then thrown away).
* CPU: XLA hands convolutions to its CPU library (YNNPACK), which is fast
  for any convolution with some padding but several times slower for one
  with none (VALID), and which refuses convolutions whose output is larger
  than their input (the input gradient XLA derives), leaving those to a
  slower generic path. So the forward pass is the VALID convolution with
  one zero column added on the right (1/W more work, the extra output
  column dropped); the input gradient is a SAME convolution of the output
  gradient padded by half a kernel; and the weight gradient, which XLA's
  CPU path computes at a small fraction of the CPU's speed, is one matrix
  product per kernel row and image over shifted copies of the input
  (im2col), or for inputs of a few channels (the image) a convolution that
  puts the images in the feature axis. `benchmarks/run.py --only=conv_layers`
  measures each part of each layer against XLA's own and PyTorch's.

Zero padding needs no padded copy for the forward pass or the input
gradient (XLA's SAME convolution is exact and fast everywhere); on CPU only
its weight gradient is replaced.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
from jax import lax
import jax.numpy as jnp

from cuts_jax import _validation

__all__ = ["ConvPlan", "WEIGHT_GRADIENTS", "conv2d", "plan"]

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
WEIGHT_GRADIENTS = ("auto", "xla", "im2col")

# Inputs with at most this many channels (the images) are too thin for XLA's
# CPU convolution and for im2col products to run fast: their forward pass
# stacks row shifts into channels, and their weight gradient puts the images
# in the feature axis.
_MAX_FEW_CHANNELS = 4


@dataclasses.dataclass(frozen=True)
class ConvPlan:
  """How `conv2d` computes one layer on one backend.

  Attributes:
    forward: "valid" (XLA's VALID convolution of the padded input),
      "extra_column" (the same with one zero column added on the right, whose
      output column is dropped: XLA's fast CPU path) or "stacked_rows" (for
      few input channels: the k row shifts of the input stacked as channels,
      then a 1 x k convolution).
    input_gradient: "xla" (XLA's derivative) or "same_on_padded" (a SAME
      convolution of the output gradient padded by half a kernel).
    weight_gradient: "xla", "im2col" (matrix products over shifted copies of
      the input) or "channel_convolution" (a convolution with the images in
      the feature axis).
  """

  forward: str
  input_gradient: str
  weight_gradient: str

  @property
  def custom(self) -> bool:
    """Whether any part differs from XLA's own (so a custom VJP is needed)."""
    return self != ConvPlan("valid", "xla", "xla")


def plan(backend: str, *, in_channels: int, weight_gradient: str = "auto") -> ConvPlan:
  """The fastest measured way to compute a layer's three parts on `backend`.

  Args:
    backend: a `jax.default_backend()` name: "cpu", or any other ("gpu",
      "tpu", ...) for an accelerator, whose convolution library needs no help.
    in_channels: the layer's input channels.
    weight_gradient: "auto" (the backend's choice), "xla" (XLA's own weight
      gradient everywhere) or "im2col" (the im2col products everywhere).

  Returns:
    The `ConvPlan`.
  """
  _validation.check_one_of(weight_gradient, WEIGHT_GRADIENTS, what="weight gradient")
  if backend == "cpu":
    few_channels = in_channels <= _MAX_FEW_CHANNELS
    forward = "stacked_rows" if few_channels else "extra_column"
    input_gradient = "same_on_padded"
    auto = "channel_convolution" if few_channels else "im2col"
  else:
    forward, input_gradient, auto = "valid", "xla", "xla"
  chosen = {"auto": auto, "xla": "xla", "im2col": "im2col"}[weight_gradient]
  return ConvPlan(forward, input_gradient, chosen)


def _xla_conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMENSIONS)


def _valid_forward(padded: jax.Array, kernel: jax.Array, method: str) -> jax.Array:
  if method == "valid":
    return _xla_conv(padded, kernel, "VALID")
  if method == "stacked_rows":
    k, _, in_channels, out_channels = kernel.shape
    height = padded.shape[1] - k + 1
    rows = jnp.concatenate([padded[:, i:i + height] for i in range(k)], axis=-1)
    row_kernel = kernel.transpose(1, 0, 2, 3).reshape(1, k, k * in_channels, out_channels)
    return _xla_conv(rows, row_kernel, ((0, 1), (0, 0)))[:, :-1]
  return _xla_conv(padded, kernel, ((0, 0), (0, 1)))[:, :, :-1]


def _same_on_padded_input_gradient(output_gradient: jax.Array, kernel: jax.Array) -> jax.Array:
  """dL/d(padded input) of a VALID convolution, as one SAME convolution.

  The exact derivative is the convolution of the output gradient, padded by
  k - 1 zeros, with the flipped kernel; half of that padding made explicit
  leaves a SAME convolution whose output is no larger than its input.
  """
  half = kernel.shape[0] // 2
  flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
  padded_gradient = jnp.pad(output_gradient, ((0, 0), (half, half), (half, half), (0, 0)))
  return _xla_conv(padded_gradient, flipped, "SAME")


def _im2col_weight_gradient(padded: jax.Array, output_gradient: jax.Array,
                            kernel_size: int) -> jax.Array:
  """dL/dkernel of a VALID convolution, as matrix products over shifted inputs.

  Each image is flattened channel by channel on the padded width Wp, so that
  the input under kernel offset (i, j) of output pixel q = y * Wp + x is
  element q + i * Wp + j: every shift is a contiguous slice. For each kernel
  row i, the k shifts j are stacked into a (k * Ci, H * Wp) matrix and
  multiplied by the (H * Wp, Co) output gradient, which is zero in the
  Wp - W columns that are not outputs. One row of shifts at a time keeps the
  copy within the cache; one image at a time keeps it small.

  Args:
    padded: (B, H + k - 1, W + k - 1, Ci) input of the VALID convolution.
    output_gradient: (B, H, W, Co) gradient of its output.
    kernel_size: k.

  Returns:
    float32 (k, k, Ci, Co) gradient of the kernel.
  """
  batch, padded_height, padded_width, in_channels = padded.shape
  _, height, width, out_channels = output_gradient.shape
  k = kernel_size
  pixels = height * padded_width
  flat = padded.astype(jnp.float32).transpose(0, 3, 1, 2).reshape(
      batch, in_channels, padded_height * padded_width)
  flat = jnp.pad(flat, ((0, 0), (0, 0), (0, k)))  # The last shifts read past the end.
  gradient = jnp.pad(output_gradient.astype(jnp.float32),
                     ((0, 0), (0, 0), (0, padded_width - width), (0, 0)))
  gradient = gradient.reshape(batch, pixels, out_channels)

  def add_image(total, image_and_gradient):
    image, image_gradient = image_and_gradient
    rows = []
    for i in range(k):
      start = i * padded_width
      shifted = jnp.stack([image[:, start + j:start + j + pixels] for j in range(k)])
      rows.append((shifted.reshape(k * in_channels, pixels) @ image_gradient).reshape(
          k, in_channels, out_channels))
    return total + jnp.stack(rows), None

  initial = jnp.zeros((k, k, in_channels, out_channels), jnp.float32)
  total, _ = lax.scan(add_image, initial, (flat, gradient))
  return total


def _channel_convolution_weight_gradient(padded: jax.Array, output_gradient: jax.Array,
                                         kernel_size: int) -> jax.Array:
  """dL/dkernel of a VALID convolution with few input channels, as one convolution.

  The derivative is the correlation of the input with the output gradient:
  a convolution with the input channels as its batch, the images as its
  input features and the output gradient as an (H, W) kernel. One zero
  column keeps it on XLA's fast CPU path (see the module docstring).
  """
  k = kernel_size
  lhs = padded.astype(jnp.float32).transpose(3, 1, 2, 0)  # (Ci, Hp, Wp, B)
  rhs = output_gradient.astype(jnp.float32).transpose(1, 2, 0, 3)  # (H, W, B, Co)
  out = _xla_conv(lhs, rhs, ((0, 0), (0, 1)))[:, :, :k]  # (Ci, k, k, Co)
  return out.transpose(1, 2, 0, 3)


def _weight_gradient(padded, output_gradient, kernel, method: str) -> jax.Array:
  k = kernel.shape[0]
  if method == "im2col":
    gradient = _im2col_weight_gradient(padded, output_gradient, k)
  elif method == "channel_convolution":
    gradient = _channel_convolution_weight_gradient(padded, output_gradient, k)
  else:
    _, kernel_vjp = jax.vjp(lambda w: _xla_conv(padded, w, "VALID"), kernel)
    (gradient,) = kernel_vjp(output_gradient)
  return gradient.astype(kernel.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _planned_valid_conv(padded: jax.Array, kernel: jax.Array, conv_plan: ConvPlan) -> jax.Array:
  return _valid_forward(padded, kernel, conv_plan.forward)


def _planned_valid_forward(padded, kernel, conv_plan):
  return _valid_forward(padded, kernel, conv_plan.forward), (padded, kernel)


def _planned_valid_backward(conv_plan, residuals, output_gradient):
  padded, kernel = residuals
  if conv_plan.input_gradient == "same_on_padded":
    input_gradient = _same_on_padded_input_gradient(output_gradient, kernel)
  else:
    _, input_vjp = jax.vjp(lambda x: _xla_conv(x, kernel, "VALID"), padded)
    (input_gradient,) = input_vjp(output_gradient)
  return (input_gradient.astype(padded.dtype),
          _weight_gradient(padded, output_gradient, kernel, conv_plan.weight_gradient))


_planned_valid_conv.defvjp(_planned_valid_forward, _planned_valid_backward)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _zero_padded_conv(x: jax.Array, kernel: jax.Array, weight_gradient: str) -> jax.Array:
  return _xla_conv(x, kernel, "SAME")


def _zero_padded_forward(x, kernel, weight_gradient):
  return _xla_conv(x, kernel, "SAME"), (x, kernel)


def _zero_padded_backward(weight_gradient, residuals, output_gradient):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda y: _xla_conv(y, kernel, "SAME"), x)
  (input_gradient,) = input_vjp(output_gradient)
  half = kernel.shape[0] // 2
  padded = jnp.pad(x, ((0, 0), (half, half), (half, half), (0, 0)))
  return input_gradient, _weight_gradient(padded, output_gradient, kernel, weight_gradient)


_zero_padded_conv.defvjp(_zero_padded_forward, _zero_padded_backward)


@functools.partial(jax.named_call, name="conv2d")
def conv2d(x: jax.Array, kernel: jax.Array, *, padding: str = "zero",
           weight_gradient: str = "auto", backend: str | None = None) -> jax.Array:
  """Stride-1 convolution that keeps the spatial size.

  Args:
    x: (B, H, W, Ci) input.
    kernel: (k, k, Ci, Co) with k odd.
    padding: "zero", "edge" (replicate) or "reflect": how the border is filled.
    weight_gradient: "auto" (the backend's fastest), "xla" or "im2col"; see `plan`.
    backend: whose plan to follow; default `jax.default_backend()`. Every
      plan runs on every backend and gives the same values (tests run the
      GPU plan on CPU).

  Returns:
    (B, H, W, Co) output.
  """
  conv_plan = plan(backend or jax.default_backend(), in_channels=x.shape[-1],
                   weight_gradient=weight_gradient)
  half = kernel.shape[0] // 2
  if padding == "zero":
    if conv_plan.weight_gradient == "xla":
      return _xla_conv(x, kernel, "SAME")
    return _zero_padded_conv(x, kernel, conv_plan.weight_gradient)
  mode = {"edge": "edge", "reflect": "reflect"}[padding]
  padded = jnp.pad(x, ((0, 0), (half, half), (half, half), (0, 0)), mode=mode)
  if not conv_plan.custom:
    return _xla_conv(padded, kernel, "VALID")
  return _planned_valid_conv(padded, kernel, conv_plan)
