"""The public API: load a trained workdir, embed, segment, select."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cuts_jax
from configs import tiny
from conftest import shared_data
from cuts_jax import embedding
from cuts_jax import segmentation
from cuts_jax import train
from cuts_jax.io import datasets as data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("trained")
  config = tiny.get_config()
  state = train.train_and_evaluate(config, workdir)
  return workdir, config, state


def test_public_api_names():
  assert {"segment", "embed", "load", "select", "train_and_evaluate",
          "SegmentationParams"} <= set(cuts_jax.__all__)
  for name in cuts_jax.__all__:
    assert getattr(cuts_jax, name).__doc__


def test_load_restores_the_trained_weights(trained):
  workdir, config, state = trained
  params = cuts_jax.load(workdir)
  assert params.channels == 3 and params.image_size == (32, 32)
  np.testing.assert_array_equal(params.params["conv0"]["kernel"],
                                state.params["encoder"]["conv0"]["kernel"])
  np.testing.assert_array_equal(params.batch_stats["batch_norm1"]["var"],
                                state.batch_stats["encoder"]["batch_norm1"]["var"])
  from_state = cuts_jax.SegmentationParams.from_train_state(state, config)
  images = jnp.asarray(data.load_demo((32, 32)).images[:2])
  np.testing.assert_allclose(cuts_jax.embed(params, images), cuts_jax.embed(from_state, images),
                             rtol=1e-6)


def test_load_of_an_empty_or_foreign_directory_says_why(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    cuts_jax.load(tmp_path)


def test_embed_is_pure_and_jittable(trained):
  params = cuts_jax.load(trained[0])
  images = jax.random.uniform(jax.random.key(0), (2, 24, 40, 3))
  eager = cuts_jax.embed(params, images)
  jitted = jax.jit(cuts_jax.embed)(params, images)
  assert eager.shape == (2, 24, 40, 16) and eager.dtype == jnp.float32
  np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-6)
  # Usable inside other JAX code, e.g. under grad.
  gradient = jax.grad(lambda x: jnp.sum(cuts_jax.embed(params, x) ** 2))(images)
  assert gradient.shape == images.shape and np.all(np.isfinite(gradient))


def test_tiled_embedding_equals_whole_image(trained, monkeypatch):
  params = cuts_jax.load(trained[0])
  image = np.asarray(jax.random.uniform(jax.random.key(1), (70, 90, 3)))
  whole = segmentation.embed_image(params, image)
  monkeypatch.setattr(embedding, "_TILE_SIDE", 32)
  tiled = segmentation.embed_image(params, image)
  np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-5)


def test_segment_any_size_and_dtype(trained):
  params = cuts_jax.load(trained[0])
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


def test_segment_resize_to_returns_the_input_size(trained):
  params = cuts_jax.load(trained[0])
  image = np.random.default_rng(1).random((64, 80, 3))
  labels = cuts_jax.segment(params, image, num_clusters=3, resize_to=params.image_size)
  assert labels.shape == (64, 80)


@pytest.mark.parametrize("image, message", [
    (np.zeros(10), "shape"),
    (np.zeros((2, 8, 8, 3)), "shape"),
    (np.zeros((8, 8, 1)), "3-channel"),
    (np.full((8, 8, 3), np.nan), "NaN"),
    (np.zeros((1, 8, 3)), "too small"),
])
def test_segment_rejects_bad_images_clearly(trained, image, message):
  params = cuts_jax.load(trained[0])
  with pytest.raises(ValueError, match=message):
    cuts_jax.segment(params, image)


def test_select_returns_the_segment_under_the_pixel():
  labels = np.array([[0, 0, 1], [2, 1, 1]])
  np.testing.assert_array_equal(cuts_jax.select(labels, (1, 2)),
                                [[False, False, True], [False, True, True]])
  with pytest.raises(ValueError, match="outside"):
    cuts_jax.select(labels, (2, 0))
  with pytest.raises(ValueError, match="2-D"):
    cuts_jax.select(labels[None], (0, 0))


def test_segment_a_real_retina_image(trained):
  root = shared_data("retina_ga")
  from skimage import io
  image = io.imread(root / "image_with_GA" / "image9.png")
  # The tiny model was trained at 32x32; segmenting the 128x128 photograph works all the same.
  params = cuts_jax.load(trained[0])
  labels = cuts_jax.segment(params, image)
  assert labels.shape == image.shape[:2] and labels.dtype == np.int32
  assert len(np.unique(labels)) >= 10
  assert len(np.unique(cuts_jax.segment(params, image, connected=False))) == 10


def test_reconstruction_space_measures_the_rebuilt_patches(trained):
  workdir, config, state = trained
  params = cuts_jax.load(workdir)
  assert params.cluster_space == "reconstruction"
  embeddings = np.asarray(jax.random.normal(jax.random.key(3), (5, 16)))
  features = segmentation.clustering_features(params, embeddings)
  kernel = np.asarray(state.params["reconstruction_head"]["kernel"])
  rebuilt = embeddings @ kernel
  distance = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)
  np.testing.assert_allclose(distance(features), distance(rebuilt), rtol=1e-4, atol=1e-5)
  raw = segmentation.clustering_features(params, embeddings, space="embedding")
  np.testing.assert_array_equal(raw, embeddings)
  with pytest.raises(ValueError, match="space"):
    segmentation.clustering_features(params, embeddings, space="pixels")
