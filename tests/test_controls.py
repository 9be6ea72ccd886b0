"""The controls: CUTS's pipeline with random weights, with raw patches, with colour at its k."""

import numpy as np
import pytest

from configs import tiny
from cuts_jax import scales
from cuts_jax import segmentation
from cuts_jax import step as step_lib
from cuts_jax.evaluation import baselines
from cuts_jax.evaluation import controls
from cuts_jax.evaluation import evaluate

import jax


def _params(config, seed=0, settings_overrides=None):
  state = step_lib.create_train_state(jax.random.key(seed), config, image_shape=(32, 32, 3))
  params = segmentation.SegmentationParams.from_train_state(state, config)
  return params.with_settings(**(settings_overrides or {}))


def test_patch_features_are_the_leading_principal_components():
  rng = np.random.default_rng(0)
  image = rng.random((12, 10, 2)).astype(np.float32)
  projected = controls.patch_features(image, patch_size=3, num_components=4)
  assert projected.shape == (12, 10, 4)
  # Principal components: centred, uncorrelated, in decreasing variance.
  flat = projected.reshape(-1, 4).astype(np.float64)
  np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=1e-5)
  covariance = flat.T @ flat
  np.testing.assert_allclose(covariance - np.diag(np.diag(covariance)), 0.0, atol=1e-3)
  assert np.all(np.diff(np.diag(covariance)) <= 1e-6)
  with pytest.raises(ValueError, match="num_components"):
    controls.patch_features(image, patch_size=3, num_components=19)
  with pytest.raises(ValueError, match="odd"):
    controls.patch_features(image, patch_size=4)


def test_patch_segments_follow_the_model_settings():
  config = tiny.get_config()
  params = _params(config, settings_overrides=dict(num_clusters=3, connected=False,
                                                   method="kmeans"))
  rng = np.random.default_rng(1)
  image = np.zeros((32, 32, 3), np.float32)
  image[:, 16:] = 1.0
  image += 0.01 * rng.random(image.shape).astype(np.float32)
  labels = controls.patch_segments(params, image, patch_size=5, num_components=4)
  assert labels.shape == (32, 32) and labels.dtype == np.int32
  assert len(np.unique(labels)) <= 3  # k = 3 and not cut into pieces: the model's settings.
  # The two halves never share a label.
  assert not set(np.unique(labels[:, :12])) & set(np.unique(labels[:, 20:]))


def test_untrained_params_keep_settings_and_differ_from_trained_weights():
  config = tiny.get_config()
  trained = _params(config, seed=5, settings_overrides=dict(num_clusters=4))
  untrained = controls.untrained_params(config, trained, seed=0)
  assert untrained.settings == trained.settings
  assert untrained.image_size == trained.image_size and untrained.channels == trained.channels
  same_seed = controls.untrained_params(config, trained, seed=0)
  kernel = lambda p: np.asarray(p.params["conv0"]["kernel"])
  np.testing.assert_array_equal(kernel(untrained), kernel(same_seed))
  assert not np.allclose(kernel(untrained), kernel(trained))


def test_matched_colour_control_takes_the_evaluation_k_and_folding():
  config = tiny.get_config()
  config.evaluation.num_clusters = 6
  config.evaluation.min_segment_fraction = 0.02
  config.evaluation.min_segment_pixels = 0  # 0: the share above folds, as in `segment`.
  function, kwargs = evaluate._baseline_call(  # pylint: disable=protected-access
      "colour_segments", config.evaluation.baselines["colour_segments"], 3, config.evaluation)
  assert function == "kmeans_pixels"
  assert kwargs == dict(num_clusters=6, method="spectral", smoothing_sigma=2.0, connected=True,
                        min_segment_fraction=0.02, min_segment_pixels=0, seed=3,
                        snap_scale=config.evaluation.snap_scale)
  config.evaluation.min_segment_pixels = 30
  config.evaluation.snap_scale = 0.0
  _, kwargs = evaluate._baseline_call(  # pylint: disable=protected-access
      "colour_segments", config.evaluation.baselines["colour_segments"], 3, config.evaluation)
  assert kwargs["min_segment_pixels"] == 30 and kwargs["snap_scale"] is None


def test_matched_colour_snaps_to_the_superpixels_when_the_model_does():
  # A blurred step: the colours' clusters split the blur band; snapped, each superpixel is whole.
  rng = np.random.default_rng(0)
  image = np.zeros((32, 32, 3))
  image[:, 16:] = 1.0
  image = np.clip(image + 0.05 * rng.standard_normal(image.shape), 0, 1)
  snapped = baselines.kmeans_pixels(image, num_clusters=3, method="kmeans", connected=True,
                                    smoothing_sigma=3.0, min_segment_pixels=20, snap_scale=32.0)
  superpixels = scales.image_superpixels(image, 32.0)
  for number in np.unique(superpixels):
    assert len(np.unique(snapped[superpixels == number])) == 1


def test_matched_colour_folds_by_pixels_when_the_model_does():
  image = np.zeros((32, 32, 3))
  image[10:14, 10:14] = 1.0  # A 16-pixel square: under 30 px, over 0.5% of 1024 (5 px).
  by_share = baselines.kmeans_pixels(image, num_clusters=2, method="kmeans", connected=True,
                                     min_segment_fraction=0.005)
  by_pixels = baselines.kmeans_pixels(image, num_clusters=2, method="kmeans", connected=True,
                                      min_segment_fraction=0.005, min_segment_pixels=30)
  assert by_share[12, 12] != by_share[0, 0]
  assert by_pixels[12, 12] == by_pixels[0, 0]
