"""Every backend's convolution plan gives XLA's values and gradients, on CPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cuts_jax import conv

_MODES = {"zero": "constant", "edge": "edge", "reflect": "reflect"}


def _reference(x, kernel, padding):
  half = kernel.shape[0] // 2
  padded = jnp.pad(x, ((0, 0), (half, half), (half, half), (0, 0)), mode=_MODES[padding])
  return jax.lax.conv_general_dilated(padded, kernel, (1, 1), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _check_plan(padding, kernel_size, in_channels, out_channels, backend, weight_gradient,
                shape=(2, 13, 11)):
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], shape + (in_channels,))
  kernel = jax.random.normal(keys[1], (kernel_size, kernel_size, in_channels,
                                       out_channels)) * 0.1
  weights = jax.random.normal(keys[2], shape + (out_channels,))

  def loss(x, kernel, convolve):
    return jnp.sum(jnp.sin(convolve(x, kernel)) * weights)

  planned = lambda x, k: conv.conv2d(x, k, padding=padding, weight_gradient=weight_gradient,
                                     backend=backend)
  reference = lambda x, k: _reference(x, k, padding)
  np.testing.assert_allclose(jax.jit(planned)(x, kernel), reference(x, kernel),
                             rtol=1e-5, atol=1e-5)
  expected = jax.grad(loss, argnums=(0, 1))(x, kernel, reference)
  got = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)(x, kernel, planned)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", ["zero", "edge", "reflect"])
@pytest.mark.parametrize("kernel_size, in_channels", [(5, 3), (3, 6)])
@pytest.mark.parametrize("backend, weight_gradient",
                         [("cpu", "auto"), ("cpu", "xla"), ("cpu", "im2col"), ("cpu", "fft"),
                          ("gpu", "auto")])
def test_every_plan_matches_xla(padding, kernel_size, in_channels, backend, weight_gradient):
  _check_plan(padding, kernel_size, in_channels, 6, backend, weight_gradient)


@pytest.mark.parametrize("in_channels", [3, 24])
def test_cpu_plan_matches_xla_with_enough_channels_for_its_library(in_channels):
  # XLA's CPU library takes convolutions with more than 16 channels only:
  # these run the fast paths the plan is for, not the generic one.
  _check_plan("reflect", 5, in_channels, 20, "cpu", "auto", shape=(2, 12, 10))


def test_plan_per_backend():
  cpu = conv.plan("cpu", in_channels=32)
  assert cpu == conv.ConvPlan("extra_column", "same_on_padded", "fft")
  assert conv.plan("cpu", in_channels=3) == conv.ConvPlan("stacked_rows", "same_on_padded",
                                                          "channel_convolution")
  assert conv.plan("cpu", in_channels=32, weight_gradient="xla").weight_gradient == "xla"
  for accelerator in ("gpu", "tpu", "cuda", "rocm"):
    assert conv.plan(accelerator, in_channels=32) == conv.ConvPlan("valid", "xla", "xla")
    assert not conv.plan(accelerator, in_channels=3).custom
    assert conv.plan(accelerator, in_channels=3, weight_gradient="im2col").weight_gradient == \
        "im2col"
  with pytest.raises(ValueError, match="weight gradient"):
    conv.plan("cpu", in_channels=3, weight_gradient="winograd")


@pytest.mark.parametrize("height, width, kernel_size", [(128, 128, 7), (128, 128, 11),
                                                        (64, 64, 7), (9, 30, 5), (3, 3, 15)])
def test_fft_weight_gradient_equals_the_direct_sum(height, width, kernel_size):
  """Every tile size the layer's sizes pick (and tiles that overhang the edges) is exact."""
  keys = jax.random.split(jax.random.key(1), 2)
  padded = jax.random.normal(keys[0], (2, height + kernel_size - 1, width + kernel_size - 1, 4))
  gradient = jax.random.normal(keys[1], (2, height, width, 5))
  _, vjp = jax.vjp(lambda w: jax.lax.conv_general_dilated(
      padded, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")),
                   jnp.zeros((kernel_size, kernel_size, 4, 5)))
  expected = vjp(gradient)[0]
  got = jax.jit(conv._fft_weight_gradient, static_argnums=2)(padded, gradient, kernel_size)
  scale = float(jnp.max(jnp.abs(expected)))
  np.testing.assert_allclose(got, expected, atol=2e-6 * scale)


def test_fft_tile_side():
  assert conv._fft_tile_side(7) == conv._fft_tile_side(11) == 32
  assert conv._fft_tile_side(31) == 64


@pytest.mark.parametrize("padding", ["edge", "reflect"])
@pytest.mark.parametrize("kernel_size, shape", [(9, (2, 20, 17)), (3, (130, 4, 4))])
def test_fft_forward_and_input_gradient_plans_match_xla(padding, kernel_size, shape):
  # A large kernel, and a small kernel over many tiles: both take FFT tiles on CPU.
  assert conv.plan("cpu", in_channels=6, kernel_size=kernel_size,
                   output_shape=shape) == conv.ConvPlan("fft", "fft", "fft")
  _check_plan(padding, kernel_size, 6, 5, "cpu", "auto", shape=shape)


def test_cpu_plan_takes_fft_tiles_only_where_they_were_faster():
  seven = dict(in_channels=64, kernel_size=7)
  assert conv.plan("cpu", **seven, output_shape=(8, 128, 128)).forward == "fft"
  assert conv.plan("cpu", **seven, output_shape=(1, 128, 128)).forward == "extra_column"
  assert conv.plan("cpu", in_channels=32, kernel_size=11,
                   output_shape=(1, 128, 128)).input_gradient == "fft"
  assert conv.plan("cpu", in_channels=3, kernel_size=15,
                   output_shape=(8, 128, 128)).forward == "stacked_rows"
  assert conv.plan("cpu", **seven, output_shape=(8, 64, 64)).weight_gradient == "fft"
  assert conv.plan("cpu", **seven, output_shape=(1, 32, 32)).weight_gradient == "im2col"
  assert conv.plan("gpu", **seven, output_shape=(8, 128, 128)) == conv.ConvPlan(
      "valid", "xla", "xla")
