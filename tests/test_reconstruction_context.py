"""The wider reconstruction target (`config.loss.reconstruction_context`): its cell means, its
loss, its checks, and a model trained with it."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import cuts_jax
from configs import tiny
from cuts_jax import losses
from cuts_jax import model as model_lib
from cuts_jax import sampling
from cuts_jax import train


def _reference_means(image, centre, side, cells):
  """Cell means by hand: mirror each out-of-image index back inside, then average each cell."""
  height, width, _ = image.shape
  rows = np.arange(side) + centre[0] - side // 2
  cols = np.arange(side) + centre[1] - side // 2
  mirror = lambda i, n: np.where(i < 0, -i, np.where(i >= n, 2 * (n - 1) - i, i))
  window = image[mirror(rows, height)[:, None], mirror(cols, width)[None, :]]
  cell = side // cells
  means = np.zeros((cells, cells, image.shape[-1]))
  for a in range(cells):
    for b in range(cells):
      means[a, b] = window[a * cell:(a + 1) * cell, b * cell:(b + 1) * cell].mean(axis=(0, 1))
  return means


@pytest.mark.parametrize("side, cells", [(8, 2), (9, 3)])
def test_context_means_match_a_reference_inside_and_at_the_border(side, cells):
  image = np.random.default_rng(0).random((12, 15, 2)).astype(np.float32)
  # The corners and an edge pixel mirror part of the window; (6, 7) lies wholly inside.
  centres = np.array([[0, 0], [11, 14], [6, 7], [3, 14]])
  got = np.asarray(sampling.context_means(jnp.asarray(image), jnp.asarray(centres),
                                          side=side, cells=cells))
  assert got.shape == (4, cells, cells, 2)
  for centre, means in zip(centres, got):
    np.testing.assert_allclose(means, _reference_means(image, centre, side, cells), rtol=1e-5)


def test_the_reduction_treats_patch_and_context_as_one_vector():
  # One anchor, a 1x1x1 patch off by 1 and a 2x2x1 context off by 2 in every cell.
  pairs = sampling.PairSelection(
      anchor_rc=jnp.zeros((1, 1, 2), jnp.int32), positive_rc=jnp.zeros((1, 1, 1, 2), jnp.int32),
      negative_rc=jnp.zeros((1, 1, 1, 2), jnp.int32),
      positive_mask=jnp.zeros((1, 1, 1), bool), negative_mask=jnp.zeros((1, 1, 1), bool),
      anchor_patches=jnp.zeros((1, 1, 1, 1, 1)), valid_anchor=jnp.zeros((1, 1), bool))
  embeddings = jnp.ones((1, 1, 1, 4))
  rebuild = lambda anchors: (jnp.ones(anchors.shape[:-1] + (1, 1, 1)),
                             2 * jnp.ones(anchors.shape[:-1] + (2, 2, 1)))
  targets = jnp.zeros((1, 1, 2, 2, 1))
  errors = {}
  for reduction in losses.RECONSTRUCTION_REDUCTIONS:
    settings = losses.LossSettings(temperature=0.1, lambda_contrastive=1.0,
                                   lambda_reconstruction=1.0, reconstruction_reduction=reduction,
                                   reconstruction_context=4, reconstruction_context_cells=2)
    errors[reduction] = float(losses.cuts_loss(pairs, embeddings, settings, reconstruct=rebuild,
                                               context_targets=targets).reconstruction)
  # 1^2 + 4 * 2^2 = 17 over 1 + 4 values.
  assert errors == pytest.approx({"mean": 17 / 5, "sum": 17.0})


@pytest.mark.parametrize("context, cells, message", [
    (28, 5, "multiple of"), (-7, 7, "whole number"), (True, 7, "whole number"),
    (28.0, 7, "whole number"), (28, -1, "whole number"), (28, 0, "multiple of")])
def test_bad_context_settings_are_refused(context, cells, message):
  with pytest.raises(ValueError, match=message):
    losses.LossSettings(temperature=0.1, lambda_contrastive=1.0, lambda_reconstruction=10.0,
                        reconstruction_context=context, reconstruction_context_cells=cells)


def test_a_context_wider_than_the_training_crops_can_mirror_is_refused(tmp_path):
  config = tiny.get_config()
  config.loss.reconstruction_context = 70  # 35 px past the border of 32 px images.
  config.loss.reconstruction_context_cells = 7
  with pytest.raises(ValueError, match="reconstruction_context"):
    train.train_and_evaluate(config, tmp_path)


def test_a_model_trained_with_context_segments_and_reloads(tmp_path):
  config = tiny.get_config()
  config.loss.reconstruction_context = 12
  config.loss.reconstruction_context_cells = 3
  state = train.train_and_evaluate(config, tmp_path)
  patch, cells, channels = config.sampling.patch_size, 3, 3
  head = state.params["reconstruction_head"]["kernel"]
  assert head.shape == (16, (patch**2 + cells**2) * channels)
  assert all(math.isfinite(float(x)) for x in np.ravel(head))
  # A run restarted in the workdir restores the wider head into the state its config builds.
  restored = train.train_and_evaluate(config, tmp_path)
  assert int(restored.step) == config.training.num_steps
  np.testing.assert_array_equal(restored.params["reconstruction_head"]["kernel"], head)
  reloaded = cuts_jax.load(tmp_path)
  rebuilt = model_lib.build_model(config, channels=channels)
  patches, context = rebuilt.apply({"params": state.params}, jnp.zeros((2, 16)),
                                   method=model_lib.CUTSModel.reconstruct_with_context)
  assert patches.shape == (2, patch, patch, channels) and context.shape == (2, 3, 3, 3)
  # Clustering measures embeddings by the patches they rebuild: the head's patch columns only.
  patch_kernel = np.asarray(head)[:, :patch**2 * channels]
  metric = np.asarray(reloaded.cluster_metric, np.float64)
  np.testing.assert_allclose(metric @ metric.T, patch_kernel @ patch_kernel.T, atol=1e-5)
  image = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32)
  labels = cuts_jax.segment(reloaded, image)
  assert labels.shape == (32, 32) and len(np.unique(labels)) > 1
