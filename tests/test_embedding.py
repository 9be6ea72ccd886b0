"""The encoder as a function: `embed`, tiled `embed_image` and the clustering space."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cuts_jax
from cuts_jax import embedding


def test_embed_is_pure_and_jittable(trained_run):
  params = trained_run.params
  images = jax.random.uniform(jax.random.key(0), (2, 24, 40, 3))
  eager = cuts_jax.embed(params, images)
  jitted = jax.jit(cuts_jax.embed)(params, images)
  assert eager.shape == (2, 24, 40, 16) and eager.dtype == jnp.float32
  np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-6)
  # Usable inside other JAX code, e.g. under grad.
  gradient = jax.grad(lambda x: jnp.sum(cuts_jax.embed(params, x) ** 2))(images)
  assert gradient.shape == images.shape and np.all(np.isfinite(gradient))


def test_tiled_embedding_equals_whole_image(trained_run, monkeypatch):
  params = trained_run.params
  image = np.asarray(jax.random.uniform(jax.random.key(1), (70, 90, 3)))
  whole = embedding.embed_image(params, image)
  monkeypatch.setattr(embedding, "_TILE_SIDE", 32)
  tiled = embedding.embed_image(params, image)
  np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-5)


def test_reconstruction_space_measures_the_rebuilt_patches(trained_run):
  params = trained_run.params
  assert params.cluster_space == "reconstruction"
  embeddings = np.asarray(jax.random.normal(jax.random.key(3), (5, 16)))
  features = embedding.clustering_features(params, embeddings)
  kernel = np.asarray(trained_run.state.params["reconstruction_head"]["kernel"])
  rebuilt = embeddings @ kernel
  distance = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)
  np.testing.assert_allclose(distance(features), distance(rebuilt), rtol=1e-4, atol=1e-5)
  raw = embedding.clustering_features(params, embeddings, space="embedding")
  np.testing.assert_array_equal(raw, embeddings)
  with pytest.raises(ValueError, match="space"):
    embedding.clustering_features(params, embeddings, space="pixels")
