"""The host path of the clustering: numpy, SciPy and scikit-learn (steps in `cuts_jax.clustering`).

Memory and time grow linearly with the number of points for the landmark
graph; the exact k-nearest-neighbour graph costs O(N^2).
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
from scipy import linalg
from scipy import sparse
from sklearn import cluster as sk_cluster
from sklearn import manifold
from sklearn import neighbors

from cuts_jax.clustering import _method

__all__ = ["few_distinct_rows", "kmeans", "leading_eigenpairs", "spectral_coordinates"]

# Rows per block when distances to the landmarks are computed, so the
# temporary block (rows x landmarks float32) stays at a few MB.
_BLOCK_ROWS = 4096


def few_distinct_rows(points: np.ndarray, limit: int,
                       rng: np.random.Generator) -> Optional[np.ndarray]:
  """Labels by distinct row when there are at most `limit` of them, else None."""
  if len(points) > limit:
    # A subsample with more than `limit` distinct rows settles it cheaply;
    # only (nearly) degenerate data pay for the exact count over all rows.
    size = min(len(points), 64 * (limit + 1))
    sample = points[np.sort(rng.choice(len(points), size, replace=False))]
    if len(np.unique(sample, axis=0)) > limit:
      return None
  values, inverse = np.unique(points, axis=0, return_inverse=True)
  if len(values) > limit:
    return None
  return inverse.reshape(-1)


def spectral_coordinates(points: np.ndarray, count: int, *, graph: str, num_landmarks: int,
                         num_neighbors: int, pca_dim: Optional[int], seed: int,
                         rng: np.random.Generator) -> np.ndarray:
  """PCA, the graph's leading `count` scaled eigenvectors, rows normalised to unit length."""
  points = _pca(points, pca_dim, rng=rng)
  if graph == "knn":
    coordinates = _knn_spectral_coordinates(points, count, num_neighbors, seed=seed)
  else:
    coordinates = _landmark_spectral_coordinates(points, count, num_landmarks, num_neighbors,
                                                 rng=rng)
  coordinates /= np.maximum(np.linalg.norm(coordinates, axis=1, keepdims=True), 1e-12)
  return coordinates


def _subsample(points: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  if len(points) <= size:
    return points
  return points[np.sort(rng.choice(len(points), size, replace=False))]


def kmeans(points: np.ndarray, num_clusters: int, *, seed: int, n_init: int,
            max_fit_points: int, rng: np.random.Generator) -> np.ndarray:
  """k-means++ (sklearn), fitted on a subsample and applied to every point."""
  sample = _subsample(points, max_fit_points, rng)
  # The subsample may hold fewer distinct rows than the data, and k-means
  # cannot place more centres than that.
  few = few_distinct_rows(sample, num_clusters, rng)
  clusters = num_clusters if few is None else int(few.max()) + 1
  model = sk_cluster.KMeans(n_clusters=clusters, n_init=n_init, tol=_method.KMEANS_TOL,
                            random_state=seed)
  model.fit(sample)
  return model.predict(points)


def _pca(points: np.ndarray, pca_dim: Optional[int], *,
         rng: np.random.Generator) -> np.ndarray:
  """Projects on the leading `pca_dim` principal axes (float32), fitted on a subsample."""
  if pca_dim is None or points.shape[1] <= pca_dim:
    return points
  sample = _subsample(points, _method.PCA_FIT_POINTS, rng)
  mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
  centred = sample - mean
  _, axes = linalg.eigh(centred.T @ centred,
                        subset_by_index=[points.shape[1] - pca_dim, points.shape[1] - 1])
  axes = axes.astype(np.float32)
  # X W - mu W avoids a centred N x D copy of the embeddings.
  return points @ axes - mean @ axes


def _ranking_distances(points: np.ndarray, centres: np.ndarray,
                       centre_norms: np.ndarray) -> np.ndarray:
  """|c|^2 - 2 x.c: the squared distances less each row's |x|^2, which ranks alike."""
  distances = points @ (-2.0 * centres.T)
  distances += centre_norms[None, :]
  return distances


def _landmarks(points: np.ndarray, num_landmarks: int,
               rng: np.random.Generator) -> np.ndarray:
  """(m, d) landmarks: Lloyd's k-means on a subsample, from random distinct points."""
  sample = _subsample(points, _method.POINTS_PER_LANDMARK * num_landmarks, rng)
  distinct = np.unique(sample, axis=0)
  count = min(num_landmarks, len(distinct))
  centres = distinct[np.sort(rng.choice(len(distinct), count, replace=False))]
  positions = np.arange(len(sample))
  for _ in range(_method.LANDMARK_ITERATIONS):
    norms = np.einsum("ij,ij->i", centres, centres)
    nearest = np.argmin(_ranking_distances(sample, centres, norms), axis=1)
    sizes = np.bincount(nearest, minlength=count)
    members = sparse.csr_matrix((np.ones(len(sample), np.float32), (nearest, positions)),
                                shape=(count, len(sample)))
    sums = members @ sample
    # An empty landmark keeps its place rather than collapsing onto another.
    occupied = sizes > 0
    centres[occupied] = sums[occupied] / sizes[occupied, None]
  return centres


def _nearest_landmarks(points: np.ndarray, landmarks: np.ndarray,
                       count: int) -> tuple[np.ndarray, np.ndarray]:
  """int64 (N, count) indices of each point's nearest landmarks and float32 squared distances."""
  norms = np.einsum("ij,ij->i", landmarks, landmarks)
  columns = np.empty((len(points), count), np.int64)
  squared = np.empty((len(points), count), np.float32)
  for start in range(0, len(points), _BLOCK_ROWS):
    block = points[start:start + _BLOCK_ROWS]
    distances = _ranking_distances(block, landmarks, norms)
    rows = np.arange(len(block))
    # `count` argmin passes beat np.argpartition several times over for the
    # handful of neighbours wanted here.
    for j in range(count):
      nearest = np.argmin(distances, axis=1)
      columns[start + rows, j] = nearest
      squared[start + rows, j] = distances[rows, nearest]
      distances[rows, nearest] = np.inf
    squared[start:start + len(block)] += np.einsum("ij,ij->i", block, block)[:, None]
  # Rounding can leave tiny negatives where a point sits on a landmark.
  return columns, np.maximum(squared, 0.0, out=squared)


def _bandwidth_squared(squared: np.ndarray) -> float:
  """The kernel's sigma^2 from all the graph's squared edge lengths (a Python float)."""
  return float(_method.bandwidth_squared(float(np.median(squared)), float(squared.max())))


def _landmark_affinity(points: np.ndarray, landmarks: np.ndarray,
                       num_neighbors: int) -> sparse.csr_matrix:
  """Z (N, m): each row the Gaussian weights of a point's nearest landmarks, summing to 1."""
  count, neighbours = len(points), min(num_neighbors, len(landmarks))
  columns, squared = _nearest_landmarks(points, landmarks, neighbours)
  bandwidth_squared = _bandwidth_squared(squared)
  # Subtracting each row's smallest distance changes nothing after the row
  # normalisation, but keeps far-off points from underflowing to all zeros.
  weights = np.exp(-(squared - squared[:, :1]) / (2.0 * bandwidth_squared))
  weights /= weights.sum(axis=1, keepdims=True)
  indptr = np.arange(0, count * neighbours + 1, neighbours)
  return sparse.csr_matrix((weights.reshape(-1), columns.reshape(-1), indptr),
                           shape=(count, len(landmarks)))


def leading_eigenpairs(matrix: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
  """The `count` largest eigenvalues (ascending) of a symmetric matrix and their vectors."""
  size = len(matrix)
  try:
    values, vectors = linalg.eigh(matrix, subset_by_index=[size - count, size - 1])
  except linalg.LinAlgError:
    values = np.empty(0)
  if len(values) < count:
    # LAPACK's index-range solver (syevr) can fail, or silently return no
    # eigenvalues, when many are equal: a graph of many disconnected parts,
    # each with eigenvalue 1 (seen on an edge slice of the brain MRI volume).
    # The full decomposition has no such trouble.
    values, vectors = linalg.eigh(matrix)
    values, vectors = values[size - count:], vectors[:, size - count:]
  return values, vectors


def _landmark_spectral_coordinates(points: np.ndarray, num_clusters: int, num_landmarks: int,
                                   num_neighbors: int, *,
                                   rng: np.random.Generator) -> np.ndarray:
  """(N, <= k) leading eigenvectors of W = Z D^{-1} Z^T times their eigenvalues."""
  landmarks = _landmarks(points, min(num_landmarks, len(points)), rng)
  affinity = _landmark_affinity(points, landmarks, num_neighbors)
  degrees = np.asarray(affinity.sum(axis=0), np.float64).reshape(-1)
  # Landmarks no point chose have no edges; a zero weight drops them.
  inverse_sqrt = np.divide(1.0, np.sqrt(degrees), out=np.zeros_like(degrees),
                           where=degrees > 0)
  gram = (affinity.T @ affinity).toarray().astype(np.float64)
  gram *= inverse_sqrt[:, None]
  gram *= inverse_sqrt[None, :]
  size = len(gram)
  count = min(num_clusters, size)
  values, vectors = leading_eigenpairs(gram, count)
  values, vectors = values[::-1], vectors[:, ::-1]
  # Directions with no variance (duplicate or unused landmarks) carry no
  # information and would divide by zero.
  keep = values > 1e-10 * values[0]
  # U = B V S^{-1}, scaled by the eigenvalues S^2: one step of the diffusion
  # that W defines. When k exceeds the number of well-separated groups, the
  # extra eigenvectors describe variation within groups; unscaled, they made
  # k-means merge the outskirts of two far-apart groups into one cluster.
  scale = inverse_sqrt[:, None] * vectors[:, keep] * np.sqrt(values[keep])[None, :]
  return np.asarray(affinity @ scale)


def _knn_spectral_coordinates(points: np.ndarray, num_clusters: int, num_neighbors: int, *,
                              seed: int) -> np.ndarray:
  """(N, k) spectral embedding of the exact symmetric kNN graph (Gaussian weights)."""
  neighbours = min(num_neighbors, len(points) - 1)
  graph = neighbors.kneighbors_graph(points, neighbours, mode="distance",
                                     include_self=False)
  squared = graph.data.astype(np.float64) ** 2
  bandwidth_squared = _bandwidth_squared(squared)
  graph.data = np.exp(-squared / (2.0 * bandwidth_squared))
  graph = 0.5 * (graph + graph.T)
  with warnings.catch_warnings():
    # A disconnected graph is what well-separated clusters give: each part
    # then spans its own zero-eigenvalue direction, which is what we want.
    warnings.filterwarnings("ignore", message="Graph is not fully connected")
    return manifold.spectral_embedding(graph, n_components=min(num_clusters, len(points) - 1),
                                       drop_first=False, random_state=seed)
