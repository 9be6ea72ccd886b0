"""The device path of the clustering: the host path's steps as jitted JAX.

The same steps and settings as `_host` (steps in `cuts_jax.clustering`) with
random draws of its own (subsamples drawn with replacement, k-means++ seeding
of its own, at most `_KMEANS_ITERATIONS` Lloyd steps), so its labels agree
with the host path's in quality, not bit for bit. Point counts are rounded up
to a few sizes (`bucket_rows`; the padding rows are masked out), so a folder
of images of many sizes compiles a handful of times, not once per image.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from cuts_jax.clustering import _method

__all__ = ["BLOCK_ROWS", "bucket_rows", "kmeans", "padded", "spectral_coordinates"]

# The device path works on blocks of this many rows (its temporaries stay at
# a few MB) and on at least one block; smaller sets stay on the host.
BLOCK_ROWS = 4096
# Lloyd steps of the device k-means stop here if the centres still move.
_KMEANS_ITERATIONS = 100


def bucket_rows(count: int) -> int:
  """`count` rounded up to whole blocks, then to 4-7 x a power of two blocks (<= 25% more)."""
  blocks = -(-count // BLOCK_ROWS)
  if blocks > 4:
    step = 2 ** (math.floor(math.log2(blocks)) - 2)
    blocks = -(-blocks // step) * step
  return blocks * BLOCK_ROWS


def padded(points: np.ndarray) -> jax.Array:
  """float32 (bucket_rows(N), D): the N points, then rows of zeros (masked out by the callers)."""
  rows = bucket_rows(len(points))
  return jnp.pad(jnp.asarray(points, jnp.float32), ((0, rows - len(points)), (0, 0)))


def _sample(key: jax.Array, points: jax.Array, count: jax.Array, size: int) -> jax.Array:
  """`size` rows drawn with replacement from the first `count` rows."""
  return points[jax.random.randint(key, (size,), 0, count)]


def _ranking_distances(points: jax.Array, centres: jax.Array) -> jax.Array:
  return jnp.sum(centres * centres, axis=1)[None, :] - 2.0 * points @ centres.T


def _in_blocks(function, *arrays):
  """`function` of blocks of `BLOCK_ROWS` rows of `arrays`, results joined again."""
  blocks = [a.reshape((-1, BLOCK_ROWS) + a.shape[1:]) for a in arrays]
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), lax.map(
      lambda block: function(*block), blocks))


def _summed_over_blocks(function, initial, *arrays):
  """The sum of `function` of each block of `BLOCK_ROWS` rows of `arrays`."""
  blocks = [a.reshape((-1, BLOCK_ROWS) + a.shape[1:]) for a in arrays]
  total, _ = lax.scan(lambda total, block: (total + function(*block), None), initial, blocks)
  return total


@functools.partial(jax.jit, static_argnames=("num_eigenvectors", "num_landmarks",
                                             "num_neighbors", "pca_dim"))
def spectral_coordinates(key: jax.Array, points: jax.Array, count: jax.Array, *,
                                 num_eigenvectors: int, num_landmarks: int, num_neighbors: int,
                                 pca_dim: Optional[int]) -> jax.Array:
  """(rows, num_eigenvectors) unit-length spectral coordinates of the first `count` rows.

  Steps 1-4 of the module docstring on padded rows; the padding rows get
  zero weights, so they add nothing to the graph, and come back as zeros.
  """
  rows = points.shape[0]
  valid = jnp.arange(rows) < count
  pca_key, landmark_key, start_key, median_key = jax.random.split(key, 4)
  if pca_dim is not None and points.shape[1] > pca_dim:
    sample = _sample(pca_key, points, count, _method.PCA_FIT_POINTS)
    mean = jnp.mean(sample, axis=0)
    centred = sample - mean
    _, vectors = jnp.linalg.eigh(centred.T @ centred)
    axes = vectors[:, -pca_dim:]
    points = points @ axes - mean @ axes

  m = num_landmarks
  sample = _sample(landmark_key, points, count, _method.POINTS_PER_LANDMARK * m)
  centres = sample[jax.random.permutation(start_key, len(sample))[:m]]

  def lloyd(centres, _):
    nearest = jnp.argmin(_ranking_distances(sample, centres), axis=1)
    sums = jax.ops.segment_sum(sample, nearest, m)
    sizes = jax.ops.segment_sum(jnp.ones(len(sample)), nearest, m)
    # An empty landmark keeps its place, as on the host.
    return jnp.where(sizes[:, None] > 0, sums / jnp.maximum(sizes, 1)[:, None], centres), None

  centres, _ = lax.scan(lloyd, centres, None, length=_method.LANDMARK_ITERATIONS)
  r = min(num_neighbors, m)

  def nearest_landmarks(block):
    negated, columns = lax.top_k(-_ranking_distances(block, centres), r)
    squared = jnp.maximum(jnp.sum(block * block, axis=1)[:, None] - negated, 0.0)
    return columns, squared

  columns, squared = _in_blocks(nearest_landmarks, points)
  # The bandwidth is the median over a subsample of rows: the same statistic.
  median_rows = jax.random.randint(median_key, (min(rows, 65_536),), 0, count)
  largest = jnp.max(jnp.where(valid[:, None], squared, 0.0))
  bandwidth_squared = _method.bandwidth_squared(jnp.median(squared[median_rows]), largest,
                                                xp=jnp)
  weights = jnp.exp(-(squared - squared[:, :1]) / (2.0 * bandwidth_squared))
  weights = jnp.where(valid[:, None], weights / jnp.sum(weights, axis=1, keepdims=True), 0.0)
  degrees = jax.ops.segment_sum(weights.reshape(-1), columns.reshape(-1), m)
  inverse_sqrt = jnp.where(degrees > 0, lax.rsqrt(jnp.maximum(degrees, 1e-30)), 0.0)

  def block_gram(block_columns, block_weights):
    # Z^T Z of the block, from each point's r x r products of its weights.
    pairs = (block_columns[:, :, None] * m + block_columns[:, None, :]).reshape(-1)
    products = (block_weights[:, :, None] * block_weights[:, None, :]).reshape(-1)
    return jax.ops.segment_sum(products, pairs, m * m)

  gram = _summed_over_blocks(block_gram, jnp.zeros(m * m), columns, weights).reshape(m, m)
  gram = gram * inverse_sqrt[:, None] * inverse_sqrt[None, :]
  values, vectors = jnp.linalg.eigh(gram)
  values = values[::-1][:num_eigenvectors]
  vectors = vectors[:, ::-1][:, :num_eigenvectors]
  keep = values > 1e-10 * values[0]
  scale = inverse_sqrt[:, None] * vectors * jnp.where(
      keep, jnp.sqrt(jnp.maximum(values, 0.0)), 0.0)[None, :]
  coordinates = jnp.einsum("nr,nrk->nk", weights, scale[columns])
  norms = jnp.linalg.norm(coordinates, axis=1, keepdims=True)
  return coordinates / jnp.maximum(norms, 1e-12)


@functools.partial(jax.jit, static_argnames=("num_clusters", "n_init", "max_fit_points"))
def kmeans(key: jax.Array, points: jax.Array, count: jax.Array, *, num_clusters: int,
                   n_init: int, max_fit_points: int) -> jax.Array:
  """k-means++ (`n_init` starts) fitted on a subsample, then every row's nearest centre."""
  rows = points.shape[0]
  sample_key, *start_keys = jax.random.split(key, n_init + 1)
  if rows <= max_fit_points:
    sample, sample_weights = points, (jnp.arange(rows) < count).astype(jnp.float32)
  else:
    sample = _sample(sample_key, points, count, max_fit_points)
    sample_weights = jnp.ones(max_fit_points)
  k = num_clusters
  total_weight = jnp.sum(sample_weights)
  mean = jnp.sum(sample_weights[:, None] * sample, axis=0) / total_weight
  variance = jnp.sum(sample_weights[:, None] * (sample - mean) ** 2) / total_weight
  # As scikit-learn: the summed squared centre shift against tol x the mean feature variance.
  tolerance = _method.KMEANS_TOL * variance / sample.shape[1]
  sample_norms = jnp.sum(sample * sample, axis=1)

  def squared_distances(centres):
    return jnp.maximum(sample_norms[:, None] + _ranking_distances(sample, centres), 0.0)

  def plus_plus(start_key):
    first_key, *pick_keys = jax.random.split(start_key, k)
    first = jax.random.choice(first_key, len(sample), p=sample_weights / total_weight)
    centres = jnp.zeros((k, sample.shape[1])).at[0].set(sample[first])
    closest = jnp.sum((sample - sample[first]) ** 2, axis=1)
    for index in range(1, k):
      chance = sample_weights * closest
      pick = jax.random.choice(pick_keys[index - 1], len(sample),
                               p=chance / jnp.maximum(jnp.sum(chance), 1e-30))
      centres = centres.at[index].set(sample[pick])
      closest = jnp.minimum(closest, jnp.sum((sample - sample[pick]) ** 2, axis=1))
    return centres

  def lloyd(centres):
    def step(carry):
      centres, _, iteration = carry
      nearest = jnp.argmin(_ranking_distances(sample, centres), axis=1)
      sums = jax.ops.segment_sum(sample * sample_weights[:, None], nearest, k)
      sizes = jax.ops.segment_sum(sample_weights, nearest, k)
      moved = jnp.where(sizes[:, None] > 0, sums / jnp.maximum(sizes, 1e-30)[:, None], centres)
      return moved, jnp.sum((moved - centres) ** 2), iteration + 1

    def going(carry):
      _, shift, iteration = carry
      return (shift > tolerance) & (iteration < _KMEANS_ITERATIONS)

    centres, _, _ = lax.while_loop(going, step, (centres, jnp.inf, 0))
    inertia = jnp.sum(sample_weights * jnp.min(squared_distances(centres), axis=1))
    return centres, inertia

  centres, inertia = jax.vmap(lambda start: lloyd(plus_plus(start)))(jnp.stack(start_keys))
  best = centres[jnp.argmin(inertia)]
  return _in_blocks(lambda block: jnp.argmin(_ranking_distances(block, best), axis=1)
                    .astype(jnp.int32), points)
