"""`segment` (features -> clusters -> connected segments) and `select` (one click)."""

import numpy as np
import pytest

import cuts_jax
from conftest import shared_data


def test_segment_any_size_and_dtype(trained_run):
  params = trained_run.params
  rng = np.random.default_rng(0)
  for image in [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8),
                rng.random((33, 47, 3)),
                (rng.random((36, 36, 4)) * 65535).astype(np.uint16)]:
    labels = cuts_jax.segment(params, image, num_clusters=4)
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32
    np.testing.assert_array_equal(np.unique(labels), np.arange(labels.max() + 1))
    clusters = cuts_jax.segment(params, image, num_clusters=4, connected=False)
    assert 1 <= len(np.unique(clusters)) <= 4 and clusters.min() >= 0
  again = cuts_jax.segment(params, image, num_clusters=4)
  np.testing.assert_array_equal(labels, again)


def test_segment_resize_to_segments_at_that_size_and_returns_the_input_size(trained_run):
  params = trained_run.params
  image = np.random.default_rng(1).random((64, 80, 3))
  # Not snapped: the noise image's superpixels at 16 x 20 are one region.
  labels = cuts_jax.segment(params, image, num_clusters=3, resize_to=(16, 20), snap_scale=0)
  assert labels.shape == (64, 80)
  # Segmented at 16 x 20, then scaled up by 4: every 4 x 4 block is one label. At the
  # training size (32 x 32, the default) or the image's own size it would not be.
  coarse = labels[::4, ::4]
  np.testing.assert_array_equal(labels, np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1))
  assert len(np.unique(coarse)) > 1
  default = cuts_jax.segment(params, image, num_clusters=3, snap_scale=0)
  assert not np.array_equal(default, np.repeat(np.repeat(default[::4, ::4], 4, 0), 4, 1))


@pytest.mark.parametrize("image, message", [
    (np.zeros(10), "shape"),
    (np.zeros((2, 8, 8, 3)), "shape"),
    (np.zeros((8, 8, 1)), "3-channel"),
    (np.full((8, 8, 3), np.nan), "NaN"),
    (np.zeros((1, 8, 3)), "too small"),
])
def test_segment_rejects_bad_images_clearly(trained_run, image, message):
  with pytest.raises(ValueError, match=message):
    cuts_jax.segment(trained_run.params, image)


def test_select_returns_the_segment_under_the_pixel():
  labels = np.array([[0, 0, 1], [2, 1, 1]])
  np.testing.assert_array_equal(cuts_jax.select(labels, (1, 2)),
                                [[False, False, True], [False, True, True]])
  with pytest.raises(ValueError, match="outside"):
    cuts_jax.select(labels, (2, 0))
  with pytest.raises(ValueError, match="3 indices per voxel"):
    cuts_jax.select(labels[None], (0, 0))


def test_segment_a_real_retina_image(trained_run):
  root = shared_data("retina_ga")
  from skimage import io  # pylint: disable=import-outside-toplevel
  image = io.imread(root / "image_with_GA" / "image9.png")
  # The tiny model was trained at 32x32; segmenting the 128x128 photograph works all the same.
  params = trained_run.params
  labels = cuts_jax.segment(params, image, snap_scale=0)
  assert labels.shape == image.shape[:2] and labels.dtype == np.int32
  assert len(np.unique(labels)) >= 10
  assert len(np.unique(cuts_jax.segment(params, image, connected=False))) == 10
  # Snapped (the default), the segments are made of whole superpixels of the image as it was
  # segmented (32 x 32 here).
  snapped = cuts_jax.segment(params, image, resize_to=(32, 32))
  prepared = cuts_jax.features.image_to_segment(params, image, resize_to=(32, 32))
  superpixels = cuts_jax.scales.image_superpixels(prepared, params.settings.snap_scale)
  vectors = cuts_jax.segmentation.segment_features(params, prepared)
  small = cuts_jax.segmentation.segments_from_features(params, vectors, superpixels=superpixels)
  # (Felzenszwalb's superpixels may hold pixels joined only diagonally, which the face-connected
  # segments can part: most, not all, are whole.)
  whole = [len(np.unique(small[superpixels == n])) == 1 for n in np.unique(superpixels)]
  assert np.mean(whole) >= 0.7
  unsnapped = cuts_jax.segmentation.segments_from_features(params, vectors)
  assert np.mean([len(np.unique(unsnapped[superpixels == n])) == 1
                  for n in np.unique(superpixels)]) < np.mean(whole)
  assert snapped.shape == image.shape[:2] and len(np.unique(snapped)) > 1
