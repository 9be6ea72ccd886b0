"""The convolution with the im2col weight gradient equals XLA's, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cuts_jax import conv


@pytest.mark.parametrize("padding", ["zero", "edge", "reflect"])
@pytest.mark.parametrize("kernel_size, in_channels", [(5, 3), (3, 4)])
def test_im2col_matches_xla(padding, kernel_size, in_channels):
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], (2, 13, 11, in_channels))
  kernel = jax.random.normal(keys[1], (kernel_size, kernel_size, in_channels, 6)) * 0.1
  weights = jax.random.normal(keys[2], (2, 13, 11, 6))

  def loss(x, kernel, weight_gradient):
    out = conv.conv2d(x, kernel, padding=padding, weight_gradient=weight_gradient)
    return jnp.sum(jnp.sin(out) * weights)

  reference = jax.lax.conv_general_dilated(
      jnp.pad(x, ((0, 0),) + ((kernel_size // 2,) * 2,) * 2 + ((0, 0),),
              mode={"zero": "constant", "edge": "edge", "reflect": "reflect"}[padding]),
      kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  for weight_gradient in ("xla", "im2col"):
    out = conv.conv2d(x, kernel, padding=padding, weight_gradient=weight_gradient)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)
  xla = jax.grad(loss, argnums=(0, 1))(x, kernel, "xla")
  im2col = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)(x, kernel, "im2col")
  for a, b in zip(xla, im2col):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_auto_uses_im2col_on_cpu_only():
  assert conv.use_im2col("auto") == (jax.default_backend() == "cpu")
  assert conv.use_im2col("im2col") and not conv.use_im2col("xla")
  with pytest.raises(ValueError, match="weight gradient"):
    conv.use_im2col("fft")
