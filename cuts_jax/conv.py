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
  gradient padded by half a kernel; both go through FFTs of overlapping
  tiles instead for kernels of 9 and more or work of at least 128 tiles,
  where that measured faster; and the weight gradient, which XLA's
  CPU path computes at a small fraction of the CPU's speed, comes from FFTs
  of overlapping tiles (a matrix product per frequency: a twentieth of the
  arithmetic of the direct sum for 7x7 and 11x11 kernels), or for inputs of
  a few channels (the image) from a convolution that puts the images in the
  feature axis. `weight_gradient="im2col"` is the direct sum as matrix
  products over shifted copies of the input. `benchmarks/run.py
  --only=conv_layers` measures each part of each layer against PyTorch's.

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

from cuts_jax import _measured
from cuts_jax import _validation

__all__ = ["ConvPlan", "WEIGHT_GRADIENTS", "conv2d", "plan"]

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
WEIGHT_GRADIENTS = ("auto", "xla", "im2col", "fft")
# The CPU plan's thresholds (channels, kernel sizes, tile counts) were measured
# on one machine: they live in cuts_jax/_measured.py with its name and the date.


@dataclasses.dataclass(frozen=True)
class ConvPlan:
  """How `conv2d` computes one layer on one backend.

  Attributes:
    forward: "valid" (XLA's VALID convolution of the padded input),
      "extra_column" (the same with one zero column added on the right, whose
      output column is dropped: XLA's fast CPU path) or "stacked_rows" (for
      few input channels: the k row shifts of the input stacked as channels,
      then a 1 x k convolution).
      "fft": overlap-save FFT tiles (see `_fft_valid_correlation`).
    input_gradient: "xla" (XLA's derivative), "same_on_padded" (a SAME
      convolution of the output gradient padded by half a kernel) or "fft"
      (the output gradient's full correlation with the flipped kernel by FFT
      tiles).
    weight_gradient: "xla", "im2col" (matrix products over shifted copies of
      the input), "fft" (per-frequency products of FFT tiles of the input and
      the output gradient) or "channel_convolution" (a convolution with the
      images in the feature axis).
  """

  forward: str
  input_gradient: str
  weight_gradient: str

  @property
  def custom(self) -> bool:
    """Whether any part differs from XLA's own (so a custom VJP is needed)."""
    return self != ConvPlan("valid", "xla", "xla")


def plan(backend: str, *, in_channels: int, weight_gradient: str = "auto",
         kernel_size: int | None = None,
         output_shape: tuple[int, int, int] | None = None) -> ConvPlan:
  """The fastest measured way to compute a layer's three parts on `backend`.

  Args:
    backend: a `jax.default_backend()` name: "cpu", or any other ("gpu",
      "tpu", ...) for an accelerator, whose convolution library needs no help.
    in_channels: the layer's input channels.
    weight_gradient: "auto" (the backend's choice), "xla" (XLA's own weight
      gradient everywhere), "im2col" or "fft" (those products everywhere).
    kernel_size, output_shape: k and the output's (B, H, W); with both, the
      CPU plan may take FFT tiles for the forward pass and the input gradient
      (large kernels, or enough tiles), and takes im2col products for the
      weight gradient of small work; without, neither.

  Returns:
    The `ConvPlan`.
  """
  _validation.check_one_of(weight_gradient, WEIGHT_GRADIENTS, what="weight gradient")
  if backend == "cpu":
    few_channels = in_channels <= _measured.CONV_MAX_FEW_CHANNELS
    forward = "stacked_rows" if few_channels else "extra_column"
    input_gradient = "same_on_padded"
    auto = "channel_convolution" if few_channels else "fft"
    if not few_channels and kernel_size is not None and output_shape is not None:
      batch, height, width = output_shape
      _, _, down, across = _tile_grid(height, width, kernel_size)
      tiles = batch * down * across
      large_kernel = kernel_size >= _measured.CONV_FFT_MIN_KERNEL
      if large_kernel or tiles >= _measured.CONV_FFT_MIN_TILES:
        forward = input_gradient = "fft"
      if not large_kernel and tiles < _measured.CONV_FFT_MIN_WEIGHT_TILES:
        auto = "im2col"
  else:
    forward, input_gradient, auto = "valid", "xla", "xla"
  chosen = auto if weight_gradient == "auto" else weight_gradient
  return ConvPlan(forward, input_gradient, chosen)


def _xla_conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMENSIONS)


def _valid_forward(padded: jax.Array, kernel: jax.Array, method: str) -> jax.Array:
  if method == "valid":
    return _xla_conv(padded, kernel, "VALID")
  if method == "fft":
    return _fft_valid_correlation(padded, kernel).astype(padded.dtype)
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

  The output rows are taken `_measured.CONV_IM2COL_CHUNK_ROWS` at a time, each
  chunk with the k - 1 input rows below it. A chunk is flattened channel by channel on
  the padded width Wp, so that the input under kernel offset (i, j) of output
  pixel q = y * Wp + x is element q + i * Wp + j: every shift is a contiguous
  slice. For each kernel row i, the k shifts j are stacked into a
  (k * Ci, rows * Wp) matrix and multiplied by the chunk's (rows * Wp, Co)
  output gradient, which is zero in the Wp - W columns that are not outputs.
  A chunk's stack fits in the CPU's cache; a whole image's does not (it ran
  at two thirds of the speed).

  Args:
    padded: (B, H + k - 1, W + k - 1, Ci) input of the VALID convolution.
    output_gradient: (B, H, W, Co) gradient of its output.
    kernel_size: k.

  Returns:
    float32 (k, k, Ci, Co) gradient of the kernel.
  """
  batch, _, padded_width, in_channels = padded.shape
  _, height, width, out_channels = output_gradient.shape
  k = kernel_size
  chunk_rows = min(_measured.CONV_IM2COL_CHUNK_ROWS, height)
  chunks = -(-height // chunk_rows)
  extra_rows = chunks * chunk_rows - height  # Zero gradient rows: they add nothing.
  padded = jnp.pad(padded.astype(jnp.float32), ((0, 0), (0, extra_rows), (0, 0), (0, 0)))
  gradient = jnp.pad(output_gradient.astype(jnp.float32),
                     ((0, 0), (0, extra_rows), (0, padded_width - width), (0, 0)))
  pixels = chunk_rows * padded_width
  gradient = gradient.reshape(batch * chunks, pixels, out_channels)
  rows = jnp.arange(chunks)[:, None] * chunk_rows + jnp.arange(chunk_rows + k - 1)[None, :]
  inputs = padded.transpose(0, 3, 1, 2)[:, :, rows]  # (B, Ci, chunks, rows + k - 1, Wp)
  inputs = inputs.transpose(0, 2, 1, 3, 4).reshape(
      batch * chunks, in_channels, (chunk_rows + k - 1) * padded_width)
  inputs = jnp.pad(inputs, ((0, 0), (0, 0), (0, k)))  # The last shifts read past the end.

  def add_chunk(total, chunk_and_gradient):
    chunk, chunk_gradient = chunk_and_gradient
    kernel_rows = []
    for i in range(k):
      start = i * padded_width
      shifted = jnp.stack([chunk[:, start + j:start + j + pixels] for j in range(k)])
      kernel_rows.append((shifted.reshape(k * in_channels, pixels) @ chunk_gradient).reshape(
          k, in_channels, out_channels))
    return total + jnp.stack(kernel_rows), None

  initial = jnp.zeros((k, k, in_channels, out_channels), jnp.float32)
  total, _ = lax.scan(add_chunk, initial, (inputs, gradient))
  return total


def _fft_tile_side(kernel_size: int) -> int:
  """The FFT tile side for a k x k kernel (see `_measured.CONV_FFT_TILE_SIDE`)."""
  if 2 * kernel_size <= _measured.CONV_FFT_TILE_SIDE:
    return _measured.CONV_FFT_TILE_SIDE
  return 1 << (2 * kernel_size - 1).bit_length()


def _tile_grid(height: int, width: int, kernel_size: int) -> tuple[int, int, int, int]:
  """(side N, step S = N - k + 1, tiles down, tiles across) covering an H x W output."""
  side = _fft_tile_side(kernel_size)
  step = side - kernel_size + 1
  return side, step, -(-height // step), -(-width // step)


def _input_tile_spectra(padded: jax.Array, height: int, width: int,
                        kernel_size: int) -> jax.Array:
  """rfft2 of the N x N input tiles under each S x S output tile: (tiles, Ci, N, N/2 + 1).

  The input is zero-extended to whole tiles; those zeros only meet outputs
  (or output-gradient zeros) beyond the edges.
  """
  side, step, down, across = _tile_grid(height, width, kernel_size)
  _, padded_height, padded_width, _ = padded.shape
  padded = jnp.pad(padded.astype(jnp.float32),
                   ((0, 0), (0, (down - 1) * step + side - padded_height),
                    (0, (across - 1) * step + side - padded_width), (0, 0)))
  return jnp.fft.rfft2(_overlapping_tiles(padded, side, step))


def _fft_valid_correlation(padded: jax.Array, kernel: jax.Array) -> jax.Array:
  """A VALID convolution (cross-correlation, as XLA's) by FFTs of overlapping tiles.

  Overlap-save: each S x S block of the output, S = N - k + 1, is the valid
  part of the N-point circular correlation of the N x N input tile under it
  with the kernel; per frequency, the tiles' spectra times the kernel's
  conjugate spectrum is one (tiles x Ci) @ (Ci x Co) product.

  Args:
    padded: (B, H + k - 1, W + k - 1, Ci).
    kernel: (k, k, Ci, Co).

  Returns:
    float32 (B, H, W, Co).
  """
  batch, padded_height, padded_width, in_channels = padded.shape
  k, _, _, out_channels = kernel.shape
  height, width = padded_height - k + 1, padded_width - k + 1
  side, step, tiles_down, tiles_across = _tile_grid(height, width, k)
  input_spectra = _input_tile_spectra(padded, height, width, k)
  tiles = input_spectra.shape[0]
  frequencies = side * (side // 2 + 1)
  kernel_spectra = jnp.fft.rfft2(kernel.astype(jnp.float32).transpose(2, 3, 0, 1),
                                 s=(side, side))  # (Ci, Co, N, N/2+1)
  products = jnp.matmul(  # (frequencies, T, Co)
      input_spectra.reshape(tiles, in_channels, frequencies).transpose(2, 0, 1),
      jnp.conj(kernel_spectra).reshape(in_channels, out_channels, frequencies).transpose(2, 0, 1))
  blocks = jnp.fft.irfft2(
      products.transpose(1, 2, 0).reshape(tiles, out_channels, side, side // 2 + 1),
      s=(side, side))[:, :, :step, :step]
  output = blocks.reshape(batch, tiles_down, tiles_across, out_channels, step, step).transpose(
      0, 1, 4, 2, 5, 3).reshape(batch, tiles_down * step, tiles_across * step, out_channels)
  return output[:, :height, :width]


def _overlapping_tiles(images: jax.Array, side: int, step: int) -> jax.Array:
  """(B, (a - 1) * step + side, (b - 1) * step + side, C) -> (B * a * b, C, side, side)."""
  batch, height, width, channels = images.shape
  down, across = (height - side) // step + 1, (width - side) // step + 1
  rows = (jnp.arange(down)[:, None] * step + jnp.arange(side)[None, :]).reshape(-1)
  columns = (jnp.arange(across)[:, None] * step + jnp.arange(side)[None, :]).reshape(-1)
  return images[:, rows][:, :, columns].reshape(
      batch, down, side, across, side, channels).transpose(0, 1, 3, 5, 2, 4).reshape(
          batch * down * across, channels, side, side)


def _fft_input_gradient(output_gradient: jax.Array, kernel: jax.Array) -> jax.Array:
  """dL/d(padded input) of a VALID convolution: the output gradient, padded by
  k - 1, correlated with the flipped kernel, by FFT tiles."""
  k = kernel.shape[0]
  flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
  padded_gradient = jnp.pad(output_gradient, ((0, 0), (k - 1, k - 1), (k - 1, k - 1), (0, 0)))
  return _fft_valid_correlation(padded_gradient, flipped)


def _fft_weight_gradient(padded: jax.Array, output_gradient: jax.Array,
                         kernel_size: int) -> jax.Array:
  """dL/dkernel of a VALID convolution from FFTs of tiles (overlap-save).

  dL/dw[i, j] is the correlation of the input with the output gradient at
  lags 0..k-1. The output gradient is cut into S x S tiles, S = N - k + 1, and
  each is correlated with the N x N input tile under it: with N-point FFTs,
  the circular correlation at lags below k wraps nothing, so it is the
  product of the input tile's spectrum with the conjugate of the zero-padded
  gradient tile's. Summed over tiles, that is one (Ci x tiles) @ (tiles x Co)
  matrix product per frequency, then an inverse FFT per (Ci, Co) pair, of
  which the first k x k values are kept. About a twentieth of the
  arithmetic of the direct sum for the paper's 11x11 and 7x7 layers, and as
  exact in float32 (relative error ~1e-6).

  Args and returns as `_im2col_weight_gradient`.
  """
  batch, _, _, in_channels = padded.shape
  _, height, width, out_channels = output_gradient.shape
  k = kernel_size
  side, step, tiles_down, tiles_across = _tile_grid(height, width, k)
  input_spectra = _input_tile_spectra(padded, height, width, k)
  # Zero gradient rows and columns beyond the edges add nothing.
  gradient = jnp.pad(output_gradient.astype(jnp.float32),
                     ((0, 0), (0, tiles_down * step - height),
                      (0, tiles_across * step - width), (0, 0)))
  tiles = batch * tiles_down * tiles_across
  gradient_tiles = gradient.reshape(
      batch, tiles_down, step, tiles_across, step, out_channels).transpose(
          0, 1, 3, 5, 2, 4).reshape(tiles, out_channels, step, step)
  gradient_spectra = jnp.fft.rfft2(gradient_tiles, s=(side, side))
  frequencies = side * (side // 2 + 1)
  products = jnp.matmul(  # (frequencies, Ci, Co)
      input_spectra.reshape(tiles, in_channels, frequencies).transpose(2, 1, 0),
      jnp.conj(gradient_spectra).reshape(tiles, out_channels, frequencies).transpose(2, 0, 1))
  correlation = jnp.fft.irfft2(
      products.transpose(1, 2, 0).reshape(in_channels, out_channels, side, side // 2 + 1),
      s=(side, side))
  return correlation[:, :, :k, :k].transpose(2, 3, 0, 1)


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
  elif method == "fft":
    gradient = _fft_weight_gradient(padded, output_gradient, k)
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
  elif conv_plan.input_gradient == "fft":
    input_gradient = _fft_input_gradient(output_gradient, kernel)
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
    weight_gradient: "auto" (the backend's fastest), "xla", "im2col" or "fft";
      see `plan`.
    backend: whose plan to follow; default `jax.default_backend()`. Every
      plan runs on every backend and gives the same values (tests run the
      GPU plan on CPU).

  Returns:
    (B, H, W, Co) output.
  """
  conv_plan = plan(backend or jax.default_backend(), in_channels=x.shape[-1],
                   weight_gradient=weight_gradient, kernel_size=kernel.shape[0],
                   output_shape=x.shape[:3])
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
