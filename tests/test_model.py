"""The encoder's architecture, presets, padding modes and receptive field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from cuts_jax import model as model_lib


def _init(config, shape=(2, 40, 40, 3)):
  model = model_lib.build_model(config, channels=shape[-1])
  variables = model.init(jax.random.key(0), jnp.zeros(shape), train=False)
  return model, variables


def test_paper_encoder_layers_and_output_shape():
  config = default.get_config()
  model, variables = _init(config)
  encoder = variables["params"]["encoder"]
  kernels = [encoder[f"conv{i}"]["kernel"].shape for i in range(3)]
  assert kernels == [(15, 15, 3, 32), (11, 11, 32, 64), (7, 7, 64, 128)]
  assert encoder["embedding"]["kernel"].shape == (128, 128)
  assert set(variables["batch_stats"]["encoder"]) == {"batch_norm0", "batch_norm1",
                                                      "batch_norm2"}
  head = variables["params"]["reconstruction_head"]["kernel"]
  assert head.shape == (128, 7 * 7 * 3)
  out = model.apply(variables, jnp.ones((2, 40, 40, 3)), train=False)
  assert out.shape == (2, 40, 40, 128) and out.dtype == jnp.float32


def test_authors_code_preset():
  config = default.get_config("authors_code")
  model, variables = _init(config, (1, 24, 24, 1))
  encoder = variables["params"]["encoder"]
  assert [encoder[f"conv{i}"]["kernel"].shape[-1] for i in range(4)] == [16, 32, 64, 128]
  assert all(encoder[f"conv{i}"]["kernel"].shape[:2] == (5, 5) for i in range(4))
  assert "embedding" not in encoder
  out = model.apply(variables, jnp.ones((1, 24, 24, 1)), train=False)
  assert out.shape == (1, 24, 24, 128)
  # LeakyReLU output of the last block: negative values exist, scaled by 0.01.
  out = model.apply(variables, jax.random.normal(jax.random.key(1), (1, 24, 24, 1)),
                    train=False)
  assert float(out.min()) < 0


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="preset"):
    default.get_config("unet")


@pytest.mark.parametrize("padding", ["zero", "edge", "reflect"])
def test_padding_modes_change_only_the_border(padding):
  config = default.get_config()
  config.model.kernel_sizes, config.model.features = (5, 3), (4, 4)
  config.model.embedding_dim = 8
  config.model.padding = padding
  model, variables = _init(config, (1, 20, 20, 1))
  image = jax.random.uniform(jax.random.key(2), (1, 20, 20, 1))
  out = model.apply(variables, image, train=False)
  config.model.padding = "zero"
  zero_model = model_lib.build_model(config, channels=1)
  zero_out = zero_model.apply(variables, image, train=False)
  # Receptive field 7: pixels 3 or more from the border never see padding.
  np.testing.assert_allclose(out[0, 3:-3, 3:-3], zero_out[0, 3:-3, 3:-3], rtol=1e-5, atol=1e-6)
  if padding != "zero":
    assert not np.allclose(out[0, 0], zero_out[0, 0])


def test_receptive_field_is_the_patch_centred_on_the_pixel():
  config = default.get_config()
  model, variables = _init(config, (1, 64, 64, 3))
  assert model_lib.receptive_field(config.model) == 31
  image = jax.random.uniform(jax.random.key(0), (1, 64, 64, 3))
  base = model.apply(variables, image, train=False)
  changed = model.apply(variables, image.at[0, 32, 32].add(1.0), train=False)
  moved = np.any(np.abs(np.asarray(changed - base))[0] > 1e-6, axis=-1)
  rows, cols = np.nonzero(moved)
  assert rows.min() == 32 - 15 and rows.max() == 32 + 15
  assert cols.min() == 32 - 15 and cols.max() == 32 + 15


def test_train_mode_updates_batch_statistics():
  config = default.get_config()
  model, variables = _init(config, (2, 32, 32, 3))
  _, updates = model.apply(variables, jnp.full((2, 32, 32, 3), 0.5), train=True,
                           mutable=["batch_stats"])
  before = variables["batch_stats"]["encoder"]["batch_norm0"]["mean"]
  after = updates["batch_stats"]["encoder"]["batch_norm0"]["mean"]
  assert not np.allclose(before, after)


@pytest.mark.parametrize("field, value, message", [
    ("kernel_sizes", (4, 3), "odd"),
    ("features", (8,), "same length"),
    ("padding", "circular", "padding"),
    ("activation", "gelu", "activation"),
])
def test_bad_model_config_names_the_field(field, value, message):
  config = default.get_config()
  config.model.kernel_sizes, config.model.features = (5, 3), (8, 8)
  config.model[field] = value
  with pytest.raises(ValueError, match=message):
    model_lib.build_model(config, channels=3)
