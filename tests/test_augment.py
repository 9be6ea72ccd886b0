"""Augmented views: photometric and geometric changes, and where each pixel lands."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from cuts_jax import augment
from cuts_jax import step as step_lib


def _geometry_only(**overrides):
  fields = dict(enabled=True, brightness=0.0, contrast=0.0, gamma=0.0, colour_shift=0.0,
                max_scale=0.0)
  fields.update(overrides)
  return augment.AugmentSettings(**fields)


@pytest.mark.parametrize("shape", [(9, 9), (7, 10)])
def test_view_positions_find_each_pixel_in_flipped_and_turned_views(shape):
  height, width = shape
  # Every pixel holds its own index: a view's value at a pixel's position is that pixel's.
  image = jnp.arange(height * width, dtype=jnp.float32).reshape(height, width, 1)
  settings = _geometry_only()
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  pixels = jnp.asarray(np.stack([rows, cols], -1).reshape(-1, 2))
  seen = set()
  draw = jax.jit(functools.partial(augment.random_view, settings=settings))
  for seed in range(20):
    # The photometric part clips to [0, 1]; move the geometry of the index image itself.
    _, transform = draw(jax.random.key(seed), image / image.max())
    view = augment._turn(jnp.where(transform.flip == 1, image[:, ::-1], image),  # pylint: disable=protected-access
                         transform.turns)
    positions, inside = augment.view_positions(pixels, transform, shape)
    assert bool(inside.all())
    values = view[positions[:, 0], positions[:, 1], 0]
    np.testing.assert_array_equal(values, image[pixels[:, 0], pixels[:, 1], 0])
    seen.add((int(transform.flip), int(transform.turns)))
  assert len(seen) == (8 if height == width else 4)


def test_zoom_moves_pixels_away_from_the_centre_and_marks_those_pushed_out():
  transform = augment.ViewTransform(scale=jnp.float32(2.0), flip=jnp.int32(0),
                                    turns=jnp.int32(0))
  positions, inside = augment.view_positions(jnp.array([[4, 4], [5, 6], [0, 0]]), transform,
                                             (9, 9))
  np.testing.assert_array_equal(positions[:2], [[4, 4], [6, 8]])
  np.testing.assert_array_equal(inside, [True, True, False])
  image = jnp.zeros((9, 9, 1)).at[5, 6, 0].set(1.0)
  zoomed = augment._zoom(image, jnp.float32(2.0))  # pylint: disable=protected-access
  assert float(zoomed[6, 8, 0]) == pytest.approx(1.0)


def test_photometric_views_stay_in_range_and_change_values():
  image = jax.random.uniform(jax.random.key(0), (16, 16, 3))
  settings = augment.AugmentSettings(enabled=True, flips=False, rotations=False, max_scale=0.0,
                                     brightness=0.2, contrast=0.5, gamma=0.5, colour_shift=0.1)
  view, _ = augment.random_view(jax.random.key(1), image, settings)
  assert view.shape == image.shape
  assert float(view.min()) >= 0.0 and float(view.max()) <= 1.0
  assert float(jnp.abs(view - image).mean()) > 0.01


def test_settings_refuse_bad_values():
  with pytest.raises(ValueError, match="config.augment.contrast"):
    augment.AugmentSettings(contrast=1.0)
  with pytest.raises(ValueError, match="config.augment.gamma"):
    augment.AugmentSettings(gamma=-0.1)
  with pytest.raises(ValueError, match="num_views"):
    augment.AugmentSettings(num_views=0)


def test_a_train_step_with_views_is_finite_and_counts_more_pairs():
  config = tiny.get_config()
  # Smooth images, so that SSIM keeps positives near every anchor.
  rows = jnp.linspace(0.0, 1.0, 32)
  smooth = 0.5 + 0.4 * jnp.sin(3.0 * rows[:, None, None] + 2.0 * rows[None, :, None]
                               + jnp.arange(3.0))
  images = jnp.stack([smooth, smooth[::-1]])
  pairs = {}
  for enabled in (False, True):
    config.augment.enabled = enabled
    settings = step_lib.StepSettings.from_config(config)
    state = step_lib.create_train_state(jax.random.key(0), config, image_shape=(32, 32, 3))
    step = jax.jit(functools.partial(step_lib.train_step, settings=settings))
    _, metrics = step(state, images, jax.random.key(1))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    pairs[enabled] = float(metrics["pairs_per_anchor"])
  assert pairs[True] > pairs[False]
