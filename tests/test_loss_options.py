"""The loss options: the paper's summed reconstruction, the authors' NT-Xent and preset."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from configs import retina
from cuts_jax import losses
from cuts_jax import step as step_lib


def test_reconstruction_sum_is_the_squared_norm():
  patches = jnp.zeros((2, 3, 3, 1))
  rebuilt = jnp.ones((2, 3, 3, 1)).at[1].set(2.0)
  np.testing.assert_allclose(losses.reconstruction_error(patches, rebuilt), [1.0, 4.0])
  np.testing.assert_allclose(
      losses.reconstruction_error(patches, rebuilt, reduction="sum"), [9.0, 36.0])


def test_nt_xent_of_two_anchors_by_hand():
  anchors = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  # s_11 = s_22 = 1, s_12 = s_21 = 0 at tau = 1: -log(2e / 2).
  value = losses.nt_xent_per_image(anchors, anchors, temperature=1.0, epsilon=0.0)
  assert float(value) == pytest.approx(-1.0, abs=1e-6)
  # Positives swapped: s_ii = 0, off-diagonal 1: -log(2 / 2e) = 1.
  value = losses.nt_xent_per_image(anchors, anchors[::-1], temperature=1.0, epsilon=0.0)
  assert float(value) == pytest.approx(1.0, abs=1e-6)


def test_loss_settings_refuse_unknown_options():
  with pytest.raises(ValueError, match="reconstruction_reduction"):
    losses.LossSettings(temperature=0.1, lambda_contrastive=1.0, lambda_reconstruction=10.0,
                        reconstruction_reduction="median")
  with pytest.raises(ValueError, match="config.loss.contrastive"):
    losses.LossSettings(temperature=0.1, lambda_contrastive=1.0, lambda_reconstruction=10.0,
                        contrastive="triplet")


def test_authors_code_preset_is_their_whole_recipe():
  config = retina.get_config("authors_code")
  assert tuple(config.model.kernel_sizes) == (5, 5, 5, 5) and config.model.embedding_dim == 0
  assert config.sampling.patch_size == 5
  settings = step_lib.StepSettings.from_config(config)
  assert settings.loss.contrastive == "nt_xent" and settings.loss.temperature == 0.5
  assert math.isclose(settings.loss.lambda_contrastive + settings.loss.lambda_reconstruction,
                      1.0)
  paper = step_lib.StepSettings.from_config(retina.get_config())
  assert paper.loss.contrastive == "info_nce" and paper.loss.reconstruction_reduction == "mean"
  config.augment.enabled = True
  with pytest.raises(ValueError, match="augment"):
    step_lib.StepSettings.from_config(config)
