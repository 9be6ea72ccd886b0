"""Pixels apart from data sets: scaling to [0, 1], channels, and the resizers."""

import numpy as np
import pytest

from cuts_jax import pixels


def test_to_unit_range_by_dtype():
  np.testing.assert_allclose(pixels.to_unit_range(np.array([0, 255], np.uint8)), [0.0, 1.0])
  np.testing.assert_allclose(pixels.to_unit_range(np.array([100, 300, 500], np.uint16)),
                             [0.0, 0.5, 1.0])
  np.testing.assert_allclose(pixels.to_unit_range(np.array([0.2, 0.7])), [0.2, 0.7])
  np.testing.assert_allclose(pixels.to_unit_range(np.array([-1.0, 3.0])), [0.0, 1.0])
  np.testing.assert_array_equal(pixels.to_unit_range(np.full((2, 2), 7, np.int16)), 0.0)
  assert pixels.to_unit_range(np.array([1, 2], np.int64)).dtype == np.float32
  with pytest.raises(pixels.DataError, match="NaN"):
    pixels.to_unit_range(np.array([0.0, np.nan]))


def test_match_channels_converts_only_without_loss():
  gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
  assert pixels.match_channels(gray, 3).shape == (3, 4, 3)
  assert pixels.match_channels(np.stack([gray] * 3, -1), 1).shape == (3, 4, 1)
  colour = np.stack([gray, gray, gray + 1], -1)
  with pytest.raises(pixels.DataError, match="^scan.png: .*3 channels of different content"):
    pixels.match_channels(colour, 1, source="scan.png")


def test_resize_labels_takes_the_nearest_centre_and_keeps_the_dtype():
  labels = np.array([[0, 1], [2, 3]], np.uint16)
  up = pixels.resize_labels(labels, (4, 4))
  assert up.dtype == np.uint16
  np.testing.assert_array_equal(up, np.repeat(np.repeat(labels, 2, 0), 2, 1))
  np.testing.assert_array_equal(pixels.resize_labels(up, (2, 2)), labels)


def test_resize_image_keeps_unit_range_and_its_own_size():
  image = np.random.default_rng(0).random((6, 8, 3))
  same = pixels.resize_image(image, (6, 8))
  assert same.dtype == np.float32 and np.allclose(same, image)
  small = pixels.resize_image(image, (3, 4))
  assert small.shape == (3, 4, 3) and 0 <= small.min() and small.max() <= 1
