"""Pair selection: geometry, SSIM verification, masks with equal counts."""

import dataclasses
import functools

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cuts_jax import sampling

SETTINGS = sampling.SamplingSettings(
    num_anchors=32, num_positive_candidates=6, num_negative_candidates=6, patch_size=7,
    positive_radius=5, negative_min_distance=12.0, ssim_threshold=0.5, ssim_filter_size=7,
    ssim_filter_sigma=1.5)


def _select(key, image, settings=SETTINGS):
  """`select_pairs` compiled whole: run eagerly, each of its many operations compiles alone."""
  return jax.jit(functools.partial(sampling.select_pairs, settings=settings))(key, image)


def _textured_image(seed=0, size=48):
  """Two halves of different texture, smoothed so that nearby patches are alike."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[0:size, 0:size] / size
  left = 0.5 + 0.3 * np.sin(12 * rows) * np.cos(9 * cols)
  right = 0.5 + 0.2 * rng.standard_normal((size, size))
  image = np.where(cols < 0.5, left, right)
  return jnp.asarray(np.clip(np.stack([image, image ** 2, 1 - image], -1), 0, 1),
                     jnp.float32)


def test_disk_offsets_exclude_the_centre_and_stay_in_the_radius():
  offsets = sampling.disk_offsets(5)
  distance2 = (offsets ** 2).sum(-1)
  assert distance2.min() > 0 and distance2.max() <= 25
  assert len(offsets) == 80  # Integer points with 0 < r^2 <= 25.
  assert len({tuple(o) for o in offsets}) == len(offsets)


def test_extract_patches_is_centred():
  image = jnp.arange(10 * 12, dtype=jnp.float32).reshape(10, 12, 1)
  patches = sampling.extract_patches(image, jnp.array([[[4, 5]]]), 3)
  assert patches.shape == (1, 1, 3, 3, 1)
  np.testing.assert_array_equal(patches[0, 0, :, :, 0], image[3:6, 4:7, 0])


def test_select_pairs_geometry_masks_and_ssim():
  image = _textured_image()
  pairs = _select(jax.random.key(3), image)
  half = SETTINGS.patch_size // 2
  anchor = np.asarray(pairs.anchor_rc)
  for rc in (anchor, np.asarray(pairs.positive_rc), np.asarray(pairs.negative_rc)):
    assert rc.min() >= half and rc[..., 0].max() < 48 - half and rc[..., 1].max() < 48 - half

  positive_mask = np.asarray(pairs.positive_mask)
  negative_mask = np.asarray(pairs.negative_mask)
  offsets = np.asarray(pairs.positive_rc) - anchor[:, None]
  distance2 = (offsets ** 2).sum(-1)
  assert np.all((distance2[positive_mask] > 0) & (distance2[positive_mask] <= 25))
  negative_distance2 = ((np.asarray(pairs.negative_rc) - anchor[:, None]) ** 2).sum(-1)
  assert np.all(negative_distance2[negative_mask] > 12.0 ** 2)
  # Equal numbers of kept positives and negatives per anchor.
  np.testing.assert_array_equal(positive_mask.sum(-1), negative_mask.sum(-1))
  np.testing.assert_array_equal(pairs.valid_anchor, positive_mask.sum(-1) > 0)
  assert 0 < np.asarray(pairs.valid_anchor).sum() < SETTINGS.num_anchors

  # Every kept pair is verified against SSIM computed independently.
  host = np.asarray(image)  # Sliced on the host: no compilation per slice.
  patch = lambda rc: host[rc[0] - half:rc[0] + half + 1, rc[1] - half:rc[1] + half + 1]
  patch_ssim = jax.jit(functools.partial(dm_pix.ssim, filter_size=7))  # One compilation.
  ssim = lambda a, b: float(patch_ssim(patch(a), patch(b)))
  np.testing.assert_allclose(pairs.anchor_patches[5], patch(anchor[5]))
  for s, k in zip(*np.nonzero(positive_mask)):
    assert ssim(anchor[s], pairs.positive_rc[s, k]) >= 0.5
  for s, k in zip(*np.nonzero(negative_mask)):
    assert ssim(anchor[s], pairs.negative_rc[s, k]) < 0.5


def test_negatives_are_dropped_when_every_candidate_is_too_close():
  # On a 17x17 image patch centres lie in [3, 14), so no two are more than
  # 14.2 px apart: with a 20 px minimum distance no negative exists.
  image = _textured_image(size=17)
  pairs = _select(jax.random.key(0), image,
                  dataclasses.replace(SETTINGS, negative_min_distance=20.0))
  assert not np.any(pairs.negative_mask) and not np.any(pairs.positive_mask)
  assert not np.any(pairs.valid_anchor)


def test_constant_image_gives_positives_but_no_negatives():
  # SSIM of identical constant patches is 1: every candidate is similar.
  pairs = _select(jax.random.key(0), jnp.full((40, 40, 1), 0.3))
  assert not np.any(pairs.valid_anchor)


def test_settings_that_cannot_work_are_refused_when_built_not_inside_jit():
  # dm_pix.ssim would silently compute a wrong value with a window larger than the patch.
  with pytest.raises(ValueError, match="ssim_filter_size"):
    dataclasses.replace(SETTINGS, ssim_filter_size=9)
  with pytest.raises(ValueError, match="odd"):
    dataclasses.replace(SETTINGS, patch_size=8, ssim_filter_size=5)
  with pytest.raises(ValueError, match="positive_radius"):
    dataclasses.replace(SETTINGS, positive_radius=0)
  with pytest.raises(ValueError, match="negative_min_distance"):
    dataclasses.replace(SETTINGS, negative_min_distance=4.0)
  with pytest.raises(ValueError, match="ssim_filter_sigma"):
    dataclasses.replace(SETTINGS, ssim_filter_sigma=0.0)
  with pytest.raises(ValueError, match="num_negative_candidates"):
    dataclasses.replace(SETTINGS, num_negative_candidates=2.5)
  with pytest.raises(ValueError, match="too small"):
    SETTINGS.check_image_size((16, 64))  # 7 px patches and 5 px radius need 17 px.
  SETTINGS.check_image_size((17, 17))


def test_settings_from_the_config_are_what_select_pairs_is_bound_to():
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config().sampling
  settings = sampling.SamplingSettings.from_config(config)
  assert {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)} == {
      f.name: config[f.name] for f in dataclasses.fields(settings)}
  assert sampling.validate_sampling_config(config, (128, 128)) == settings


def test_pixels_at_gathers_the_vectors_at_rows_and_columns():
  embeddings = jnp.arange(3 * 4 * 2, dtype=jnp.float32).reshape(3, 4, 2)
  picked = sampling.pixels_at(embeddings, jnp.array([[[0, 0], [2, 3]], [[1, 2], [1, 2]]]))
  assert picked.shape == (2, 2, 2)
  np.testing.assert_array_equal(picked[0, 1], embeddings[2, 3])
  np.testing.assert_array_equal(picked[1, 0], embeddings[1, 2])


def test_validate_sampling_config_names_the_field():
  from configs import default
  config = default.get_config().sampling
  sampling.validate_sampling_config(config, (128, 128))
  config.patch_size = 6
  with pytest.raises(ValueError, match="patch_size"):
    sampling.validate_sampling_config(config, (128, 128))
  config.patch_size = 7
  config.ssim_filter_size = 11
  with pytest.raises(ValueError, match="ssim_filter_size"):
    sampling.validate_sampling_config(config, (128, 128))
  config.ssim_filter_size = 7
  with pytest.raises(ValueError, match="too small"):
    sampling.validate_sampling_config(config, (12, 64))
