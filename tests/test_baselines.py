"""Classical baselines: label maps of the right form, and sensible segments."""

import numpy as np
import pytest

from conftest import shared_data
from cuts_jax.evaluation import baselines
from cuts_jax.io import datasets as data


def two_squares(channels=3, bright=True):
  """float32 (64, 64, C): two squares of different sizes on a plain background."""
  background, square = (0.1, 0.9) if bright else (0.9, 0.1)
  image = np.full((64, 64, channels), background, np.float32)
  image[6:22, 6:22] = square
  image[30:60, 30:60] = square
  return image


def majority(labels, region):
  values, counts = np.unique(labels[region], return_counts=True)
  return values[np.argmax(counts)], counts.max() / counts.sum()


SMALL = (slice(6, 22), slice(6, 22))
LARGE = (slice(30, 60), slice(30, 60))
BACKGROUND = (slice(0, 4), slice(0, 64))


@pytest.mark.parametrize("name", list(baselines.BASELINES))
@pytest.mark.parametrize("shape", [(40, 56, 3), (40, 56, 1), (40, 56)])
def test_every_baseline_gives_an_int32_label_map(name, shape):
  image = np.random.default_rng(0).random(shape).astype(np.float32)
  labels = baselines.run_baseline(name, image)
  assert labels.shape == (40, 56) and labels.dtype == np.int32
  assert labels.min() >= 0 and 1 <= len(np.unique(labels)) <= 40 * 56


@pytest.mark.parametrize("channels", [3, 1])
def test_otsu_watershed_separates_the_squares(channels):
  labels = baselines.otsu_watershed(two_squares(channels))
  assert set(np.unique(labels)) == {0, 1, 2}
  assert np.all(labels[BACKGROUND] == 0)
  small, large = labels[SMALL], labels[LARGE]
  assert len(np.unique(small)) == 1 and len(np.unique(large)) == 1
  assert small[0, 0] != large[0, 0] and 0 not in (small[0, 0], large[0, 0])


def test_otsu_watershed_dark_foreground_and_flat_image():
  dark = baselines.otsu_watershed(two_squares(bright=False), dark_foreground=True)
  assert len(np.unique(dark)) == 3 and np.all(dark[BACKGROUND] == 0)
  # Bright foreground on that image: the background is the one region.
  inverted = baselines.otsu_watershed(two_squares(bright=False))
  assert np.all(inverted[SMALL] == 0) and np.all(inverted[LARGE] == 0)
  flat = baselines.otsu_watershed(np.full((16, 16, 3), 0.5, np.float32))
  assert flat.shape == (16, 16) and not flat.any()


def test_a_blob_touching_a_neighbour_is_split_at_the_neck():
  # Two overlapping discs: one foreground component, two distance peaks.
  rows, cols = np.mgrid[:64, :80]
  discs = ((rows - 32) ** 2 + (cols - 24) ** 2 < 18 ** 2) | \
      ((rows - 32) ** 2 + (cols - 56) ** 2 < 18 ** 2)
  labels = baselines.otsu_watershed(np.where(discs, 0.9, 0.1)[..., None].astype(np.float32),
                                    threshold_rel=0.5)
  assert labels[32, 24] != labels[32, 56] and 0 not in (labels[32, 24], labels[32, 56])


@pytest.mark.parametrize("channels", [3, 1])
def test_felzenszwalb_separates_squares_from_background(channels):
  # Unblurred, the three flat regions are exactly the three segments.
  labels = baselines.felzenszwalb(two_squares(channels), sigma=0.0)
  assert len(np.unique(labels)) == 3
  small, large, background = labels[6, 6], labels[30, 30], labels[0, 0]
  assert np.all(labels[SMALL] == small) and np.all(labels[LARGE] == large)
  assert len({small, large, background}) == 3
  # The default blur adds thin segments along the edges; the cores stay whole.
  blurred = baselines.felzenszwalb(two_squares(channels))
  assert majority(blurred, SMALL)[1] > 0.5 and majority(blurred, LARGE)[1] > 0.5
  assert len({majority(blurred, region)[0] for region in (SMALL, LARGE, BACKGROUND)}) == 3


@pytest.mark.parametrize("channels", [3, 1])
def test_slic_gives_about_num_segments(channels):
  rng = np.random.default_rng(1)
  image = np.clip(two_squares(channels) + 0.02 * rng.normal(size=(64, 64, channels)), 0, 1)
  for wanted in (4, 10, 25):
    count = len(np.unique(baselines.slic(image.astype(np.float32), num_segments=wanted)))
    assert wanted / 3 <= count <= wanted * 2, (wanted, count)


def test_random_labels_are_uniform_and_seeded():
  image = np.zeros((100, 100, 3), np.float32)
  labels = baselines.random_labels(image, num_segments=4, seed=3)
  counts = np.bincount(labels.ravel(), minlength=4)
  assert len(counts) == 4 and counts.min() > 2300 and counts.max() < 2700
  np.testing.assert_array_equal(labels, baselines.random_labels(image, num_segments=4, seed=3))
  assert not np.array_equal(labels, baselines.random_labels(image, num_segments=4, seed=4))


def test_kmeans_pixels_finds_the_colours():
  image = two_squares()
  image[:, :32, 2] = 0.5  # Left half bluer: four colours in all.
  labels = baselines.kmeans_pixels(image, num_clusters=4)
  colours = np.unique(image.reshape(-1, 3), axis=0, return_inverse=True)[1].reshape(64, 64)
  assert len(np.unique(labels)) == 4
  for colour in range(4):
    assert len(np.unique(labels[colours == colour])) == 1
  # Fewer colours than clusters: one label per colour.
  assert len(np.unique(baselines.kmeans_pixels(two_squares(), num_clusters=10))) == 2
  smoothed = baselines.kmeans_pixels(image, num_clusters=4, smoothing_sigma=2.0)
  assert smoothed.shape == (64, 64) and len(np.unique(smoothed)) == 4


def test_kmeans_pixels_on_a_retina_image():
  dataset = data.load_retina(shared_data("retina_ga"), (128, 128), limit=1)
  labels = baselines.kmeans_pixels(dataset.images[0])
  assert labels.shape == (128, 128) and labels.dtype == np.int32
  assert 2 <= len(np.unique(labels)) <= 10 and labels.max() < 10


def test_bad_names_images_and_parameters_are_refused():
  image = two_squares()
  with pytest.raises(ValueError, match="unknown baseline"):
    baselines.run_baseline("watershed", image)
  with pytest.raises(TypeError):
    baselines.run_baseline("slic", image, n_segments=10)
  with pytest.raises(ValueError, match="shape"):
    baselines.slic(np.zeros((2, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match="to_unit_range"):
    baselines.felzenszwalb((image * 255).astype(np.uint8))
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    baselines.felzenszwalb(image * 2)
  with pytest.raises(ValueError, match="NaN"):
    baselines.otsu_watershed(np.full((8, 8, 3), np.nan, np.float32))
  with pytest.raises(ValueError, match="num_segments"):
    baselines.random_labels(image, num_segments=0)
  with pytest.raises(ValueError, match="threshold_rel"):
    baselines.otsu_watershed(image, threshold_rel=1.5)
  with pytest.raises(ValueError, match="smoothing_sigma"):
    baselines.kmeans_pixels(image, smoothing_sigma=-1.0)


def test_otsu_splits_dark_from_bright():
  image = np.full((20, 20), 0.2)
  image[5:10, 5:10] = 0.9
  labels = baselines.otsu(image)
  assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1}
  assert labels[5:10, 5:10].all() and labels.sum() == 25
  np.testing.assert_array_equal(baselines.otsu(np.full((4, 4, 3), 0.5)), 0)
  assert "otsu" in baselines.BASELINES
