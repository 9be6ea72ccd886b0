"""The per-pixel features every segmentation clusters: size, embedding, smoothed image, scaling."""

import numpy as np
from scipy import ndimage

import cuts_jax
from cuts_jax import embedding
from cuts_jax import features


def test_the_size_is_resize_to_else_the_training_size_else_the_images_own(trained_run):
  params = trained_run.params
  assert params.image_size == (32, 32)
  image = np.random.default_rng(0).random((50, 44, 3)).astype(np.float32)
  for overrides, size in [({}, (32, 32)), (dict(at_training_size=False), (50, 44)),
                          (dict(resize_to=(20, 24), at_training_size=False), (20, 24)),
                          (dict(resize_to=(20, 24)), (20, 24))]:
    settings = cuts_jax.resolve_settings(params, **overrides)
    assert features.segment_size(params, settings, image.shape) == size, overrides
    assert features.image_to_segment(params, image, **overrides).shape == size + (3,)
  np.testing.assert_array_equal(
      features.image_to_segment(params, image, at_training_size=False), image)


def test_features_are_the_embedding_then_the_smoothed_image(trained_run):
  params = trained_run.params
  image = np.random.default_rng(1).random((20, 24, 3)).astype(np.float32)
  raw = features.image_features(params, image, at_training_size=False, scaled=False,
                                image_sigma=1.5)
  # The model's space: distances between the patches its reconstruction head rebuilds.
  embedded = embedding.embed_image(params, image, space="reconstruction")
  assert raw.shape == (20, 24, embedded.shape[-1] + 3)
  np.testing.assert_allclose(raw[..., :-3], embedded, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(raw[..., -3:], ndimage.gaussian_filter(image, (1.5, 1.5, 0),
                                                                   mode="reflect"), atol=1e-6)
  alone = features.image_features(params, image, at_training_size=False, image_weight=0.0)
  assert alone.shape == embedded.shape


def _spread(columns):
  flat = columns.reshape(-1, columns.shape[-1]).astype(np.float64)
  return float(np.sqrt(np.sum(np.var(flat, axis=0))))


def test_each_part_is_scaled_to_unit_spread_and_the_image_weighted(monkeypatch):
  rng = np.random.default_rng(2)
  unscaled = (rng.random((2, 9, 7, 6)) * [3, 5, 1, 7, 2, 9]).astype(np.float32)
  settings = cuts_jax.SegmentSettings(image_weight=2.5)
  scaled = features.scale_features(unscaled.copy(), settings, image_channels=2,
                                   extra_columns=1)
  assert abs(_spread(scaled[..., :3]) - 1.0) < 1e-5      # The embedding part.
  assert abs(_spread(scaled[..., 3:5]) - 2.5) < 1e-5     # The image part, weighted.
  np.testing.assert_array_equal(scaled[..., 5], unscaled[..., 5])  # The caller's column.
  # Summed by blocks of rows (a large volume is never copied whole): the same scaling.
  monkeypatch.setattr(features, "_VARIANCE_BLOCK_ROWS", 10)
  blocked = features.scale_features(unscaled.copy(), settings, image_channels=2,
                                    extra_columns=1)
  np.testing.assert_allclose(blocked, scaled, rtol=1e-6)
  # Without the image part every column but the caller's is embedding.
  alone = features.scale_features(unscaled.copy(), cuts_jax.SegmentSettings(image_weight=0.0),
                                  image_channels=2, extra_columns=1)
  assert abs(_spread(alone[..., :5]) - 1.0) < 1e-5
