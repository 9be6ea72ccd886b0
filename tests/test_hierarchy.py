"""Connected segments, the segment hierarchy and the choice of its level under a click."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cuts_jax
from configs import tiny
from cuts_jax import hierarchy
from cuts_jax import model as model_lib
from cuts_jax import regions


def _nested_squares(seed=0, noise=0.03):
  """Background 0, a 48 px square of 0.5, inside it a 16 px square of 1, plus noise."""
  image = np.zeros((64, 64))
  image[8:56, 8:56] = 0.5
  image[24:40, 24:40] = 1.0
  noisy = image + np.random.default_rng(seed).normal(0, noise, image.shape)
  return image, noisy[..., None].astype(np.float32)


@pytest.fixture(scope="module")
def squares_hierarchy():
  image, features = _nested_squares()
  return image, hierarchy.hierarchy_from_features(features, max_clusters=8, seed=0,
                                                  min_segment_size=8)


def _assert_nested(levels):
  for fine, coarse in zip(levels[:-1], levels[1:]):
    pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
    # Every fine segment lies in exactly one coarse segment.
    assert len(np.unique(pairs[0])) == pairs.shape[1]


def test_every_level_is_nested_in_the_next(squares_hierarchy):
  _, levels = squares_hierarchy
  assert levels.labels.shape == (7, 64, 64) and levels.labels.dtype == np.int32
  np.testing.assert_array_equal(levels.num_clusters, np.arange(8, 1, -1))
  assert np.all(np.diff(levels.scales) > 0) and np.all(np.diff(levels.heights) >= 0)
  _assert_nested(levels.labels)


def test_the_same_seed_gives_the_same_hierarchy(squares_hierarchy):
  _, first = squares_hierarchy
  again = hierarchy.hierarchy_from_features(_nested_squares()[1], max_clusters=8, seed=0,
                                            min_segment_size=8)
  np.testing.assert_array_equal(first.labels, again.labels)
  np.testing.assert_array_equal(first.heights, again.heights)


def test_regions_inside_regions_are_recovered_at_the_right_levels(squares_hierarchy):
  image, levels = squares_hierarchy
  inner, outer = image == 1.0, image >= 0.5
  click = (32, 32)
  np.testing.assert_array_equal(cuts_jax.select(levels, click, level=0), inner)
  np.testing.assert_array_equal(cuts_jax.select(levels, click, level=-1), outer)
  # The inner square survives from the finest level to the second coarsest.
  np.testing.assert_array_equal(cuts_jax.select(levels, click), inner)
  np.testing.assert_array_equal(cuts_jax.select(levels, click, target_size=2000), outer)
  # A click on the ring gets the ring, never the background around it.
  ring = cuts_jax.select(levels, (12, 12))
  np.testing.assert_array_equal(ring, outer & ~inner)


def test_persistent_level_passes_over_background_halves():
  labels = np.zeros((3, 20, 20), np.int32)
  labels[0, :, :5] = 1          # A strip, alone at the finest level.
  labels[1, :, :] = 0
  labels[1, :, :12] = 1         # Over half the image, for two levels.
  labels[2] = labels[1]
  levels = regions.Hierarchy(labels=labels, num_clusters=np.array([4, 3, 2]),
                             scales=np.log([1, 4 / 3, 2]), heights=np.zeros(3))
  assert regions.persistent_level(levels, (0, 0)) == 0
  assert regions.persistent_level(levels, (0, 0), max_fraction=1.0) == 1


@pytest.mark.parametrize("level, message", [("coarsest", "expected one of"), (7, "integer in"),
                                            (True, "integer in"), (1.5, "integer in")])
def test_a_bad_level_is_refused(squares_hierarchy, level, message):
  with pytest.raises(ValueError, match=message):
    cuts_jax.select(squares_hierarchy[1], (0, 0), level=level)


def test_segment_hierarchy_of_an_image_is_nested_at_the_images_size():
  config = tiny.get_config()
  model = model_lib.build_model(config, channels=3)
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  params = cuts_jax.SegmentationParams.from_variables(variables, config)
  image = np.random.default_rng(0).random((40, 52, 3)).astype(np.float32)
  levels = cuts_jax.segment_hierarchy(params, image, max_clusters=6)
  assert levels.labels.shape == (5, 40, 52)
  _assert_nested(levels.labels)
  again = cuts_jax.segment_hierarchy(params, image, max_clusters=6)
  np.testing.assert_array_equal(levels.labels, again.labels)
  assert cuts_jax.select(levels, (3, 4)).shape == (40, 52)
