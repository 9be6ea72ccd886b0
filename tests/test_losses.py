"""The losses against values worked out by hand."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from cuts_jax import losses
from cuts_jax import sampling


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


def _hand_made_pairs():
  """One 2x2 image of 2-D embeddings, two anchors: the first with one kept pair, the second none.

  Pixel (0, 0) = [1, 0] is the first anchor; (0, 1) = [2, 0] its kept positive
  (cos 1); (1, 0) = [0, 1] its kept negative (cos 0); (1, 1) = [-1, 0] is a
  candidate of each kind that is not kept. The second anchor, (1, 1), keeps
  nothing. Patches are 1 x 1 with 2 channels.
  """
  embeddings = jnp.array([[[[1.0, 0.0], [2.0, 0.0]], [[0.0, 1.0], [-1.0, 0.0]]]])
  pairs = sampling.PairSelection(
      anchor_rc=jnp.array([[[0, 0], [1, 1]]]),
      positive_rc=jnp.array([[[[0, 1], [1, 1]], [[0, 0], [0, 1]]]]),
      negative_rc=jnp.array([[[[1, 0], [1, 1]], [[0, 0], [1, 0]]]]),
      positive_mask=jnp.array([[[True, False], [False, False]]]),
      negative_mask=jnp.array([[[True, False], [False, False]]]),
      anchor_patches=jnp.array([[[[[0.2, 0.4]]], [[[0.0, 1.0]]]]]),
      valid_anchor=jnp.array([[True, False]]))
  reconstructions = jnp.array([[[[[0.3, 0.1]]], [[[0.0, 0.6]]]]])
  return pairs, embeddings, reconstructions


def test_cuts_loss_composes_both_terms_as_worked_out_by_hand():
  pairs, embeddings, reconstructions = _hand_made_pairs()
  settings = losses.LossSettings(temperature=1.0, lambda_contrastive=2.0,
                                 lambda_reconstruction=3.0)
  seen = []

  def reconstruct(anchors):
    seen.append(anchors)
    return reconstructions

  terms = losses.cuts_loss(pairs, embeddings, settings, reconstruct=reconstruct)
  # The head rebuilds the anchors' patches from the anchors' embeddings.
  np.testing.assert_array_equal(seen[0], [[[1.0, 0.0], [-1.0, 0.0]]])
  # InfoNCE of the one kept pair: -log(e^1 / (e^1 + e^0)) = log(1 + e^-1); the
  # second anchor keeps no pair and adds nothing.
  contrastive = math.log1p(math.exp(-1.0))
  # Squared errors (0.01 + 0.09) / 2 = 0.05 and (0 + 0.16) / 2 = 0.08, averaged
  # over both anchors (every anchor is rebuilt, kept pairs or not).
  reconstruction = (0.05 + 0.08) / 2
  assert float(terms.contrastive) == pytest.approx(contrastive, rel=1e-6)
  assert float(terms.reconstruction) == pytest.approx(reconstruction, rel=1e-6)
  assert float(terms.total) == pytest.approx(2 * contrastive + 3 * reconstruction, rel=1e-6)
  # Under jit with the settings bound as a constant: the same values.
  jitted = jax.jit(lambda p, e: losses.cuts_loss(p, e, settings,
                                                  reconstruct=lambda _: reconstructions))(
      pairs, embeddings)
  np.testing.assert_allclose(jitted, terms, rtol=1e-6)


def test_cuts_loss_gradients_reach_only_kept_pairs_and_the_rebuilt_patches():
  pairs, embeddings, reconstructions = _hand_made_pairs()
  settings = losses.LossSettings(temperature=0.1, lambda_contrastive=1.0,
                                 lambda_reconstruction=10.0)

  def gradient(head):
    return jax.grad(lambda e: losses.cuts_loss(pairs, e, settings, reconstruct=head).total)(
        embeddings)

  # Pixel (1, 1) is in no kept pair: with a fixed rebuild nothing reaches it.
  fixed = gradient(lambda _: reconstructions)
  np.testing.assert_array_equal(fixed[0, 1, 1], [0.0, 0.0])
  assert np.all(np.isfinite(fixed)) and np.any(fixed[0, 0, 0] != 0)
  # A linear head rebuilds (1, 1)'s patch [0, 1] as 0.5 x [-1, 0]: the error's
  # gradient there is 10 x -(1/4) x ([0, 1] - [-0.5, 0]) = [-1.25, -2.5]
  # (1/2 for the two anchors, 1/2 for the two channels, 2 x -0.5 from the square).
  linear = gradient(lambda anchors: 0.5 * anchors[..., None, None, :])
  np.testing.assert_allclose(linear[0, 1, 1], [-1.25, -2.5], rtol=1e-6)


def test_loss_settings_come_from_the_config_and_are_checked():
  settings = losses.LossSettings.from_config(tiny.get_config().loss)
  assert settings == losses.LossSettings(temperature=0.1, lambda_contrastive=1.0,
                                         lambda_reconstruction=10.0)
  assert dataclasses.replace(settings, lambda_contrastive=0.0).lambda_contrastive == 0.0
  with pytest.raises(ValueError, match="config.loss.temperature"):
    dataclasses.replace(settings, temperature=0.0)
  with pytest.raises(ValueError, match="config.loss.lambda_contrastive"):
    dataclasses.replace(settings, lambda_contrastive=float("nan"))
  with pytest.raises(ValueError, match="config.loss.lambda_reconstruction"):
    dataclasses.replace(settings, lambda_reconstruction=-1.0)
