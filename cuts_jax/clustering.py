"""Clustering of pixel embeddings into segments (host side: numpy, SciPy, scikit-learn).

The paper segments an image by spectral k-means (k = 10) of its pixel
embeddings. An exact k-nearest-neighbour graph costs O(N^2 D) time, which is
fine for a 128x128 image but hours for a 512x512 one, so the default
`method="spectral"` uses landmark-based spectral clustering (LSC-K: Cai and
Chen, "Large scale spectral clustering via landmark-based sparse
representation", IEEE Trans. Cybernetics 2015). Time and memory grow
linearly with the number of points N:

1. PCA of the embeddings to `pca_dim` dimensions (fitted on a subsample).
   Distances are all the graph needs, and a learned embedding's variance
   sits in few directions, so this costs little accuracy and saves most of
   the distance arithmetic.
2. `num_landmarks` landmarks: a few Lloyd iterations of k-means on a
   subsample, started from random distinct points.
3. Every point links to its `num_neighbors` nearest landmarks with Gaussian
   weights exp(-d^2 / 2 sigma^2), sigma the median point-to-landmark
   distance; rows normalised to sum to 1. This is Z, a sparse N x m matrix.
4. B = Z D^{-1/2} with D the column sums of Z. The point affinity
   W = B B^T = Z D^{-1} Z^T is never formed: its leading eigenvectors are
   U = B V S^{-1}, where V S^2 V^T is the eigendecomposition of the m x m
   matrix B^T B. The first `num_clusters` columns of U are kept, each
   multiplied by its eigenvalue (one diffusion step), so that the directions
   separating groups (eigenvalues near 1) outweigh those within a group.
5. k-means (k-means++, `n_init` starts, `random_state=seed`) on the rows of
   these coordinates scaled to unit length (Ng, Jordan and Weiss's
   normalisation), fitted on at most `max_fit_points` rows and applied to all.

Defaults: m = 256 landmarks, r = 5 per point, PCA to 32 dimensions, three
k-means++ starts, one thread (their measured time, memory and quality:
benchmarks/notes.md).

`graph="knn"` builds the exact symmetric k-nearest-neighbour graph instead
(`sklearn.neighbors.kneighbors_graph` with the same Gaussian weights, then
`sklearn.manifold.spectral_embedding` of its normalised Laplacian): O(N^2)
time, for small N and for checking the landmark graph against it. On real
images it tends to split off small tight groups of pixels (e.g. identical
background pixels, whose nearest neighbours are all each other) as clusters
of their own; points linked through shared landmarks do not.

`method="kmeans"` is plain k-means of the embeddings themselves (no PCA),
fitted on at most `max_fit_points` points and applied to all.

`on_device=True` runs the landmark spectral clustering (and plain k-means)
as jitted JAX on the default device instead of numpy, SciPy and
scikit-learn: the same steps and settings with its own random draws
(subsamples drawn with replacement, k-means++ seeding of its own, at most
`_DEVICE_KMEANS_ITERATIONS` Lloyd steps), so its labels agree with the host
path's in quality, not bit for bit. Point counts are rounded up to a few
sizes (the padding rows are masked out), so a folder of images of many sizes
compiles a handful of times, not once per image. `on_device="auto"` (the
default) takes each stage's device path where it was measured to be faster
(`device_clustering_is_faster`: on CPU the k-means up to 512 x 512 points).

Labels are renumbered in order of first appearance (raster order for an
image), so equal partitions give equal label arrays. When the data have no
more distinct points than `num_clusters`, each distinct point is a cluster of
its own and fewer labels come back.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from typing import Optional, Union

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
from scipy import linalg
from scipy import sparse
import threadpoolctl
from sklearn import cluster as sk_cluster
from sklearn import manifold
from sklearn import neighbors

from cuts_jax import _validation

__all__ = ["GRAPHS", "METHODS", "cluster_embeddings", "cluster_image",
           "device_clustering_is_faster", "spectral_coordinates"]

METHODS = ("spectral", "kmeans")
GRAPHS = ("landmark", "knn")

# Lloyd iterations that place the landmarks. Landmarks only need to cover the
# data; more iterations barely change the clusters but cost time.
_LANDMARK_ITERATIONS = 8
# Points per landmark in the subsample that places the landmarks.
_POINTS_PER_LANDMARK = 16
# Points the PCA is fitted on: ample for the covariance of a few hundred dimensions.
_PCA_FIT_POINTS = 8192
# Rows per block when distances to the landmarks are computed, so the
# temporary block (rows x landmarks float32) stays at a few MB.
_BLOCK_ROWS = 4096
# k-means stops when the centres move less than this (relative to the data's
# variance); 10x sklearn's default saves a third of the time on data without
# clear clusters and changed the inertia by under 0.01%.
_KMEANS_TOL = 1e-3
# The exact graph needs O(N^2) time: refuse it beyond a 256x256 image.
_MAX_KNN_POINTS = 65_536
# The device path works on blocks of this many rows (its temporaries stay at
# a few MB) and on at least one block; smaller sets stay on the host.
_DEVICE_BLOCK_ROWS = 4096
# Lloyd steps of the device k-means stop here if the centres still move.
_DEVICE_KMEANS_ITERATIONS = 100
# Where `on_device="auto"` runs each stage on the device: backend -> the most
# points for which it does (see device_clustering_is_faster). On this
# project's CPU the jitted k-means took a fifth to four fifths of
# scikit-learn's time up to 512x512 points and three times as long at
# 2048x2048 (scikit-learn's prediction is faster there), while the jitted
# graph was slower than numpy's at every size (XLA's CPU top-k is slow).
_ACCELERATORS = ("gpu", "cuda", "rocm", "tpu")
_DEVICE_FASTER_UP_TO = {
    "coordinates": {backend: math.inf for backend in _ACCELERATORS},
    "kmeans": {"cpu": 512 * 512, **{backend: math.inf for backend in _ACCELERATORS}},
}


def cluster_embeddings(embeddings: np.ndarray, *, num_clusters: int = 10,
                       method: str = "spectral", seed: int = 0, graph: str = "landmark",
                       num_landmarks: int = 256, num_neighbors: int = 5,
                       pca_dim: Optional[int] = 32, n_init: int = 3,
                       max_fit_points: int = 32_768,
                       num_threads: Optional[int] = 1,
                       on_device: Union[bool, str] = "auto") -> np.ndarray:
  """Clusters N embedding vectors into at most `num_clusters` groups.

  Args:
    embeddings: float (N, D) array, finite; any real dtype (computed in float32).
    num_clusters: k, the most clusters returned (the paper uses 10).
    method: "spectral" (spectral k-means, the paper's) or "kmeans" (k-means
      of the embeddings themselves).
    seed: seeds every random choice; the same seed gives the same labels.
    graph: for "spectral": "landmark" (linear in N, the default) or "knn"
      (exact k-nearest-neighbour graph, O(N^2) time, at most 65,536 points).
    num_landmarks: for the landmark graph: m, the landmarks (at most N).
    num_neighbors: for "spectral": the edges per point, i.e. its nearest
      landmarks ("landmark") or nearest points ("knn").
    pca_dim: for "spectral": embeddings with more dimensions are first
      projected on this many principal components; None keeps them all.
    n_init: k-means++ restarts of the final k-means (the one with the least
      inertia is kept).
    max_fit_points: the final k-means is fitted on a random subsample of at
      most this many points, then applied to all of them.
    num_threads: BLAS and OpenMP threads for the call; None keeps the
      libraries' settings. One by default: the work per call is small, and
      on a CPU shared with other processes more threads slow it down.
    on_device: True runs the landmark spectral clustering or plain k-means
      as jitted JAX on the default device (see the module docstring); False
      on the host; "auto" on the device where `device_clustering_is_faster`.
      Sets of fewer than 4096 points and the exact graph stay on the host.
      The result is a different draw of the same method on each path.

  Returns:
    int32 (N,) labels in [0, num_clusters), numbered by first appearance.

  Raises:
    ValueError: for embeddings that are not a finite 2-D array with at least
      one row, an unknown method or graph, or a count that is not positive.
  """
  points = _check_embeddings(embeddings)
  _check_options(len(points), num_clusters=num_clusters, method=method, graph=graph,
                 num_landmarks=num_landmarks, num_neighbors=num_neighbors, pca_dim=pca_dim,
                 n_init=n_init, max_fit_points=max_fit_points, num_threads=num_threads)
  _check_on_device(on_device)
  rng = np.random.default_rng(seed)
  coordinates_key, kmeans_key = jax.random.split(jax.random.key(seed))
  with _thread_limit(num_threads):
    few = _few_distinct_rows(points, num_clusters, rng)
    if few is not None:
      return _renumber(few)
    if method == "kmeans":
      coordinates = points
    elif _use_device(on_device, "coordinates", len(points), graph=graph):
      landmarks = min(num_landmarks, len(points))
      coordinates = _device_spectral_coordinates(
          coordinates_key, _pad_rows(points, _bucket_rows(len(points))), len(points),
          num_eigenvectors=min(num_clusters, landmarks), num_landmarks=landmarks,
          num_neighbors=num_neighbors, pca_dim=pca_dim)
    else:
      coordinates = _spectral_coordinates(points, num_clusters, graph=graph,
                                          num_landmarks=num_landmarks,
                                          num_neighbors=num_neighbors, pca_dim=pca_dim,
                                          seed=seed, rng=rng)
    if _use_device(on_device, "kmeans", len(points), graph=graph):
      if not isinstance(coordinates, jax.Array):
        coordinates = _pad_rows(coordinates, _bucket_rows(len(points)))
      labels = np.asarray(_device_kmeans(kmeans_key, coordinates, len(points),
                                         num_clusters=num_clusters, n_init=n_init,
                                         max_fit_points=max_fit_points))[:len(points)]
    else:
      labels = _kmeans(np.asarray(coordinates)[:len(points)], num_clusters, seed=seed,
                       n_init=n_init, max_fit_points=max_fit_points, rng=rng)
  return _renumber(labels)


def _thread_limit(num_threads: Optional[int]):
  return (contextlib.nullcontext() if num_threads is None
          else threadpoolctl.threadpool_limits(limits=num_threads))


def spectral_coordinates(embeddings: np.ndarray, *, num_eigenvectors: int = 10, seed: int = 0,
                         graph: str = "landmark", num_landmarks: int = 256,
                         num_neighbors: int = 5, pca_dim: Optional[int] = 32,
                         num_threads: Optional[int] = 1,
                         on_device: Union[bool, str] = "auto") -> np.ndarray:
  """The coordinates spectral k-means clusters: each point's place in the graph's spectrum.

  The leading `num_eigenvectors` eigenvectors of the normalised affinity of
  the landmark (or exact k-nearest-neighbour) graph, each scaled by its
  eigenvalue, rows scaled to unit length (steps 1-4 of the module docstring).
  `cluster_embeddings(..., method="spectral")` is k-means of these rows; the
  segment hierarchy merges clusters by their distances here.

  Args:
    embeddings: float (N, D) array, finite.
    num_eigenvectors: q, the eigenvectors kept (at most; fewer when the graph
      has fewer directions with variance).
    seed, graph, num_landmarks, num_neighbors, pca_dim, num_threads, on_device: as in
      `cluster_embeddings`.

  Returns:
    float32 (N, q') coordinates with q' <= num_eigenvectors, rows of unit
    length. Data with at most `num_eigenvectors` distinct rows get one
    orthogonal unit vector per distinct row.
  """
  points = _check_embeddings(embeddings)
  _check_options(len(points), num_clusters=num_eigenvectors, method="spectral", graph=graph,
                 num_landmarks=num_landmarks, num_neighbors=num_neighbors, pca_dim=pca_dim,
                 n_init=1, max_fit_points=1, num_threads=num_threads)
  _check_on_device(on_device)
  device = _use_device(on_device, "coordinates", len(points), graph=graph)
  rng = np.random.default_rng(seed)
  with _thread_limit(num_threads):
    few = _few_distinct_rows(points, num_eigenvectors, rng)
    if few is not None:
      return np.eye(int(few.max()) + 1, dtype=np.float32)[few]
    if device:
      rows = _bucket_rows(len(points))
      coordinates = _device_spectral_coordinates(
          jax.random.key(seed), _pad_rows(points, rows), len(points),
          num_eigenvectors=min(num_eigenvectors, num_landmarks, len(points)),
          num_landmarks=min(num_landmarks, len(points)), num_neighbors=num_neighbors,
          pca_dim=pca_dim)
      return np.asarray(coordinates)[:len(points)]
    return _spectral_coordinates(points, num_eigenvectors, graph=graph,
                                 num_landmarks=num_landmarks, num_neighbors=num_neighbors,
                                 pca_dim=pca_dim, seed=seed, rng=rng).astype(np.float32)


def _spectral_coordinates(points: np.ndarray, count: int, *, graph: str, num_landmarks: int,
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


def cluster_image(embeddings: np.ndarray, **kwargs) -> np.ndarray:
  """Clusters the pixel embeddings of one image into a label map.

  Args:
    embeddings: float (H, W, D) pixel embeddings.
    **kwargs: keyword arguments of `cluster_embeddings` (num_clusters,
      method, seed, ...).

  Returns:
    int32 (H, W) labels in [0, num_clusters), numbered by first appearance
    in raster order.
  """
  array = np.asarray(embeddings)
  if array.ndim != 3:
    raise ValueError(f"cluster_image expects embeddings of shape (H, W, D); got shape "
                     f"{array.shape}. For (N, D) vectors call cluster_embeddings.")
  height, width, depth = array.shape
  labels = cluster_embeddings(array.reshape(height * width, depth), **kwargs)
  return labels.reshape(height, width)


def _check_embeddings(embeddings) -> np.ndarray:
  array = np.asarray(embeddings)
  if array.ndim != 2:
    raise ValueError(f"expected embeddings of shape (N, D); got shape {array.shape}. For "
                     "an (H, W, D) image use cluster_image.")
  if array.shape[0] < 1 or array.shape[1] < 1:
    raise ValueError(f"embeddings of shape {array.shape} hold no points to cluster.")
  if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
          or array.dtype == bool):
    raise ValueError(f"embeddings have dtype {array.dtype}; expected real numbers.")
  # float32 halves the memory of float64 and is plenty for distances.
  array = np.ascontiguousarray(array, dtype=np.float32)
  # min/max propagate NaN and show Inf without allocating an N x D mask.
  low, high = array.min(), array.max()
  if not (np.isfinite(low) and np.isfinite(high)):
    raise ValueError("embeddings hold NaN or infinite values (or values beyond float32's "
                     "range); a diverged model gives these. Check the training loss.")
  return array


def _check_options(num_points: int, *, num_clusters, method, graph, num_landmarks,
                   num_neighbors, pca_dim, n_init, max_fit_points, num_threads) -> None:
  _validation.check_one_of(method, METHODS, what="clustering method")
  _validation.check_one_of(graph, GRAPHS, what="graph")
  optional = dict(pca_dim=pca_dim, num_threads=num_threads)  # None: not limited.
  _validation.check_positive_integers(
      num_clusters=num_clusters, num_landmarks=num_landmarks, num_neighbors=num_neighbors,
      n_init=n_init, max_fit_points=max_fit_points,
      **{name: value for name, value in optional.items() if value is not None})
  if method == "spectral" and graph == "knn" and num_points > _MAX_KNN_POINTS:
    raise ValueError(f"graph='knn' builds an exact graph in O(N^2) time; {num_points} points "
                     f"is more than {_MAX_KNN_POINTS}. Use graph='landmark'.")


def _renumber(labels: np.ndarray) -> np.ndarray:
  """Renumbers labels 0, 1, ... in the order in which they first appear."""
  values, first = np.unique(labels, return_index=True)
  mapping = np.empty(values.max() + 1, np.int32)
  mapping[values[np.argsort(first)]] = np.arange(len(values), dtype=np.int32)
  return mapping[labels]


def _few_distinct_rows(points: np.ndarray, limit: int,
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


def _subsample(points: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  if len(points) <= size:
    return points
  return points[np.sort(rng.choice(len(points), size, replace=False))]


def _kmeans(points: np.ndarray, num_clusters: int, *, seed: int, n_init: int,
            max_fit_points: int, rng: np.random.Generator) -> np.ndarray:
  """k-means++ (sklearn), fitted on a subsample and applied to every point."""
  sample = _subsample(points, max_fit_points, rng)
  # The subsample may hold fewer distinct rows than the data, and k-means
  # cannot place more centres than that.
  few = _few_distinct_rows(sample, num_clusters, rng)
  clusters = num_clusters if few is None else int(few.max()) + 1
  model = sk_cluster.KMeans(n_clusters=clusters, n_init=n_init, tol=_KMEANS_TOL,
                            random_state=seed)
  model.fit(sample)
  return model.predict(points)


def _pca(points: np.ndarray, pca_dim: Optional[int], *,
         rng: np.random.Generator) -> np.ndarray:
  """Projects on the leading `pca_dim` principal axes (float32), fitted on a subsample."""
  if pca_dim is None or points.shape[1] <= pca_dim:
    return points
  sample = _subsample(points, _PCA_FIT_POINTS, rng)
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
  sample = _subsample(points, _POINTS_PER_LANDMARK * num_landmarks, rng)
  distinct = np.unique(sample, axis=0)
  count = min(num_landmarks, len(distinct))
  centres = distinct[np.sort(rng.choice(len(distinct), count, replace=False))]
  positions = np.arange(len(sample))
  for _ in range(_LANDMARK_ITERATIONS):
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


def _landmark_affinity(points: np.ndarray, landmarks: np.ndarray,
                       num_neighbors: int) -> sparse.csr_matrix:
  """Z (N, m): each row the Gaussian weights of a point's nearest landmarks, summing to 1."""
  count, neighbours = len(points), min(num_neighbors, len(landmarks))
  columns, squared = _nearest_landmarks(points, landmarks, neighbours)
  # Bandwidth: the median point-to-landmark distance, so the kernel adapts to
  # the embedding's scale; a tiny floor keeps it positive for clumped data.
  bandwidth_squared = max(float(np.median(squared)), 1e-12 * float(squared.max()), 1e-30)
  # Subtracting each row's smallest distance changes nothing after the row
  # normalisation, but keeps far-off points from underflowing to all zeros.
  weights = np.exp(-(squared - squared[:, :1]) / (2.0 * bandwidth_squared))
  weights /= weights.sum(axis=1, keepdims=True)
  indptr = np.arange(0, count * neighbours + 1, neighbours)
  return sparse.csr_matrix((weights.reshape(-1), columns.reshape(-1), indptr),
                           shape=(count, len(landmarks)))


def _leading_eigenpairs(matrix: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
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
  values, vectors = _leading_eigenpairs(gram, count)
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
  bandwidth_squared = max(float(np.median(squared)), 1e-12 * float(squared.max()), 1e-30)
  graph.data = np.exp(-squared / (2.0 * bandwidth_squared))
  graph = 0.5 * (graph + graph.T)
  with warnings.catch_warnings():
    # A disconnected graph is what well-separated clusters give: each part
    # then spans its own zero-eigenvalue direction, which is what we want.
    warnings.filterwarnings("ignore", message="Graph is not fully connected")
    return manifold.spectral_embedding(graph, n_components=min(num_clusters, len(points) - 1),
                                       drop_first=False, random_state=seed)


# --- The device path: the same steps as jitted JAX. ---------------------------------------


def device_clustering_is_faster(stage: str, *, backend: Optional[str] = None,
                                num_points: int = 1) -> bool:
  """Whether `on_device="auto"` runs `stage` on the device of `backend` (default: JAX's).

  Args:
    stage: "coordinates" (PCA, landmarks, graph and its eigenvectors) or
      "kmeans" (the final k-means, or plain k-means).
    backend: a `jax.default_backend()` name.
    num_points: the points to cluster.

  Returns:
    True where the device path of that stage was measured at least as fast
    as the host path at equal quality (benchmarks/results.md, segment rows;
    experiments/results/clustering_on_device.md): on CPU the k-means of up to
    512 x 512 points; on GPUs and TPUs both stages (see the README's
    performance section for what was and was not measured there).
  """
  _validation.check_one_of(stage, tuple(_DEVICE_FASTER_UP_TO), what="clustering stage")
  limit = _DEVICE_FASTER_UP_TO[stage].get(backend or jax.default_backend(), 0)
  return num_points <= limit


def _check_on_device(on_device) -> None:
  if on_device is not True and on_device is not False and on_device != "auto":
    raise ValueError(f"on_device is {on_device!r}; expected True, False or 'auto'.")


def _use_device(on_device: Union[bool, str], stage: str, num_points: int, *,
                graph: str) -> bool:
  wanted = (device_clustering_is_faster(stage, num_points=num_points) if on_device == "auto"
            else on_device)
  # The exact kNN graph has no device version; its final k-means does.
  return (bool(wanted) and num_points >= _DEVICE_BLOCK_ROWS
          and (stage == "kmeans" or graph == "landmark"))


def _bucket_rows(count: int) -> int:
  """`count` rounded up to whole blocks, then to 4-7 x a power of two blocks (<= 25% more)."""
  blocks = -(-count // _DEVICE_BLOCK_ROWS)
  if blocks > 4:
    step = 2 ** (math.floor(math.log2(blocks)) - 2)
    blocks = -(-blocks // step) * step
  return blocks * _DEVICE_BLOCK_ROWS


def _pad_rows(points: np.ndarray, rows: int) -> jax.Array:
  return jnp.pad(jnp.asarray(points, jnp.float32), ((0, rows - len(points)), (0, 0)))


def _device_sample(key: jax.Array, points: jax.Array, count: jax.Array, size: int) -> jax.Array:
  """`size` rows drawn with replacement from the first `count` rows."""
  return points[jax.random.randint(key, (size,), 0, count)]


def _device_ranking_distances(points: jax.Array, centres: jax.Array) -> jax.Array:
  return jnp.sum(centres * centres, axis=1)[None, :] - 2.0 * points @ centres.T


def _in_blocks(function, *arrays):
  """`function` of blocks of `_DEVICE_BLOCK_ROWS` rows of `arrays`, results joined again."""
  blocks = [a.reshape((-1, _DEVICE_BLOCK_ROWS) + a.shape[1:]) for a in arrays]
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), lax.map(
      lambda block: function(*block), blocks))


def _summed_over_blocks(function, initial, *arrays):
  """The sum of `function` of each block of `_DEVICE_BLOCK_ROWS` rows of `arrays`."""
  blocks = [a.reshape((-1, _DEVICE_BLOCK_ROWS) + a.shape[1:]) for a in arrays]
  total, _ = lax.scan(lambda total, block: (total + function(*block), None), initial, blocks)
  return total


@functools.partial(jax.jit, static_argnames=("num_eigenvectors", "num_landmarks",
                                             "num_neighbors", "pca_dim"))
def _device_spectral_coordinates(key: jax.Array, points: jax.Array, count: jax.Array, *,
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
    sample = _device_sample(pca_key, points, count, _PCA_FIT_POINTS)
    mean = jnp.mean(sample, axis=0)
    centred = sample - mean
    _, vectors = jnp.linalg.eigh(centred.T @ centred)
    axes = vectors[:, -pca_dim:]
    points = points @ axes - mean @ axes

  m = num_landmarks
  sample = _device_sample(landmark_key, points, count, _POINTS_PER_LANDMARK * m)
  centres = sample[jax.random.permutation(start_key, len(sample))[:m]]

  def lloyd(centres, _):
    nearest = jnp.argmin(_device_ranking_distances(sample, centres), axis=1)
    sums = jax.ops.segment_sum(sample, nearest, m)
    sizes = jax.ops.segment_sum(jnp.ones(len(sample)), nearest, m)
    # An empty landmark keeps its place, as on the host.
    return jnp.where(sizes[:, None] > 0, sums / jnp.maximum(sizes, 1)[:, None], centres), None

  centres, _ = lax.scan(lloyd, centres, None, length=_LANDMARK_ITERATIONS)
  r = min(num_neighbors, m)

  def nearest_landmarks(block):
    negated, columns = lax.top_k(-_device_ranking_distances(block, centres), r)
    squared = jnp.maximum(jnp.sum(block * block, axis=1)[:, None] - negated, 0.0)
    return columns, squared

  columns, squared = _in_blocks(nearest_landmarks, points)
  # The bandwidth is the median over a subsample of rows: the same statistic.
  median_rows = jax.random.randint(median_key, (min(rows, 65_536),), 0, count)
  largest = jnp.max(jnp.where(valid[:, None], squared, 0.0))
  bandwidth_squared = jnp.maximum(jnp.maximum(jnp.median(squared[median_rows]),
                                              1e-12 * largest), 1e-30)
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
def _device_kmeans(key: jax.Array, points: jax.Array, count: jax.Array, *, num_clusters: int,
                   n_init: int, max_fit_points: int) -> jax.Array:
  """k-means++ (`n_init` starts) fitted on a subsample, then every row's nearest centre."""
  rows = points.shape[0]
  sample_key, *start_keys = jax.random.split(key, n_init + 1)
  if rows <= max_fit_points:
    sample, sample_weights = points, (jnp.arange(rows) < count).astype(jnp.float32)
  else:
    sample = _device_sample(sample_key, points, count, max_fit_points)
    sample_weights = jnp.ones(max_fit_points)
  k = num_clusters
  total_weight = jnp.sum(sample_weights)
  mean = jnp.sum(sample_weights[:, None] * sample, axis=0) / total_weight
  variance = jnp.sum(sample_weights[:, None] * (sample - mean) ** 2) / total_weight
  # As scikit-learn: the summed squared centre shift against tol x the mean feature variance.
  tolerance = _KMEANS_TOL * variance / sample.shape[1]
  sample_norms = jnp.sum(sample * sample, axis=1)

  def squared_distances(centres):
    return jnp.maximum(sample_norms[:, None] + _device_ranking_distances(sample, centres), 0.0)

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
      nearest = jnp.argmin(_device_ranking_distances(sample, centres), axis=1)
      sums = jax.ops.segment_sum(sample * sample_weights[:, None], nearest, k)
      sizes = jax.ops.segment_sum(sample_weights, nearest, k)
      moved = jnp.where(sizes[:, None] > 0, sums / jnp.maximum(sizes, 1e-30)[:, None], centres)
      return moved, jnp.sum((moved - centres) ** 2), iteration + 1

    def going(carry):
      _, shift, iteration = carry
      return (shift > tolerance) & (iteration < _DEVICE_KMEANS_ITERATIONS)

    centres, _, _ = lax.while_loop(going, step, (centres, jnp.inf, 0))
    inertia = jnp.sum(sample_weights * jnp.min(squared_distances(centres), axis=1))
    return centres, inertia

  centres, inertia = jax.vmap(lambda start: lloyd(plus_plus(start)))(jnp.stack(start_keys))
  best = centres[jnp.argmin(inertia)]
  return _in_blocks(lambda block: jnp.argmin(_device_ranking_distances(block, best), axis=1)
                    .astype(jnp.int32), points)
