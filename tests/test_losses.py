"""The losses against values worked out by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cuts_jax import losses


def test_cosine_similarity_of_known_vectors():
  a = jnp.array([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
  b = jnp.array([[0.0, 2.0], [2.0, 2.0], [-3.0, -4.0]])
  np.testing.assert_allclose(losses.cosine_similarity(a, b), [0.0, 1.0, -1.0], atol=1e-6)


def test_info_nce_single_pair_matches_the_paper_equation():
  # cos(a, p) = 1, cos(a, n) = 0, tau = 0.1:
  # -log(e^10 / (e^10 + e^0)) = log(1 + e^-10).
  anchors = jnp.array([[1.0, 0.0]])
  positives = jnp.array([[[2.0, 0.0]]])
  negatives = jnp.array([[[0.0, 1.0]]])
  value = losses.info_nce_per_positive(anchors, positives, negatives,
                                       jnp.array([[True]]), temperature=0.1)
  np.testing.assert_allclose(value, [[math.log1p(math.exp(-10.0))]], rtol=1e-5)


def test_info_nce_one_term_per_positive_with_masked_negatives():
  # Two positives: cos = 1 and cos = 0. Negatives: cos = 0 (kept), cos = -1 (kept),
  # cos = 1 (masked out). tau = 0.5, so logits are cos / 0.5.
  anchors = jnp.array([[1.0, 0.0]])
  positives = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])
  negatives = jnp.array([[[0.0, -1.0], [-1.0, 0.0], [1.0, 0.0]]])
  negative_mask = jnp.array([[True, True, False]])
  sigma = math.exp(0.0) + math.exp(-2.0)
  expected = [[-math.log(math.exp(2.0) / (math.exp(2.0) + sigma)),
               -math.log(math.exp(0.0) / (math.exp(0.0) + sigma))]]
  value = losses.info_nce_per_positive(anchors, positives, negatives, negative_mask,
                                       temperature=0.5)
  np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_info_nce_masked_negative_has_no_effect_and_no_gradient():
  anchors = jnp.array([[1.0, 0.5]])
  positives = jnp.array([[[0.8, 0.6]]])

  def loss(negatives, mask):
    return jnp.sum(losses.info_nce_per_positive(anchors, positives, negatives, mask))

  negatives = jnp.array([[[0.1, 0.9], [5.0, -3.0]]])
  with_masked = loss(negatives, jnp.array([[True, False]]))
  without = loss(negatives[:, :1], jnp.array([[True]]))
  np.testing.assert_allclose(with_masked, without, rtol=1e-6)
  gradient = jax.grad(loss)(negatives, jnp.array([[True, False]]))
  np.testing.assert_array_equal(gradient[0, 1], [0.0, 0.0])


def test_info_nce_gradient_is_finite_when_every_negative_is_masked():
  anchors = jnp.array([[1.0, 0.0]])
  positives = jnp.array([[[1.0, 1.0]]])
  negatives = jnp.array([[[0.0, 1.0]]])

  def loss(anchors):
    per_positive = losses.info_nce_per_positive(anchors, positives, negatives,
                                                jnp.array([[False]]))
    return losses.masked_mean(per_positive, jnp.array([[False]]))

  assert float(loss(anchors)) == 0.0
  assert np.all(np.isfinite(jax.grad(loss)(anchors)))


def test_reconstruction_error_is_the_mean_square_over_the_patch():
  patches = jnp.zeros((2, 3, 3, 1))
  rebuilt = jnp.zeros((2, 3, 3, 1)).at[0, 0, 0, 0].set(3.0).at[1].set(1.0)
  np.testing.assert_allclose(losses.reconstruction_error(patches, rebuilt), [1.0, 1.0])


def test_masked_mean_ignores_masked_entries_and_empty_masks():
  values = jnp.array([[1.0, 100.0], [3.0, 5.0]])
  mask = jnp.array([[True, False], [True, True]])
  assert float(losses.masked_mean(values, mask)) == pytest.approx(3.0)
  assert float(losses.masked_mean(values, jnp.zeros_like(mask))) == 0.0


def test_masked_mean_over_devices_is_the_global_mean():
  # Device 0 keeps one value (2), device 1 keeps three (4, 6, 8): the mean of
  # all kept values is 5, not the mean of the per-device means (2 + 6) / 2 = 4.
  values = jnp.array([[2.0, 0.0, 0.0], [4.0, 6.0, 8.0]])
  mask = jnp.array([[True, False, False], [True, True, True]])
  per_device = jax.pmap(
      lambda v, m: jax.lax.pmean(losses.masked_mean(v, m, axis_name="d"), "d"),
      axis_name="d")(values, mask)
  np.testing.assert_allclose(per_device, [5.0, 5.0], rtol=1e-6)


def test_total_loss_weights():
  assert float(losses.total_loss(jnp.array(2.0), jnp.array(0.5))) == pytest.approx(7.0)
  assert float(losses.total_loss(jnp.array(2.0), jnp.array(0.5), lambda_contrastive=0.0,
                                 lambda_reconstruction=1.0)) == pytest.approx(0.5)
