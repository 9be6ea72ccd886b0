"""Clustering of pixel embeddings into segments, on the host or as jitted JAX on the device.

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
100 Lloyd steps), so its labels agree with the host path's in quality, not
bit for bit. Point counts are rounded up to a few sizes (the padding rows
are masked out), so a folder of images of many sizes compiles a handful of
times, not once per image. `on_device="auto"` (the default) takes each
stage's device path where it was measured to be faster
(`device_clustering_is_faster`: on CPU the k-means up to 512 x 512 points;
the measured thresholds are in cuts_jax/_measured.py).

This package's `__init__` checks the inputs and sends each stage to the host
path (`_host`: numpy, SciPy, scikit-learn) or the device path (`_device`);
what both share, the fixed settings and the kernel's bandwidth, is in
`_method`.

Labels are renumbered in order of first appearance (raster order for an
image), so equal partitions give equal label arrays. When the data have no
more distinct points than `num_clusters`, each distinct point is a cluster of
its own and fewer labels come back.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Union

import jax
import numpy as np
import threadpoolctl

from cuts_jax import _labels
from cuts_jax import _measured
from cuts_jax import _validation
from cuts_jax.clustering import _device
from cuts_jax.clustering import _host

__all__ = ["GRAPHS", "METHODS", "cluster_embeddings", "cluster_image",
           "device_clustering_is_faster", "spectral_coordinates"]

METHODS = ("spectral", "kmeans")
GRAPHS = ("landmark", "knn")

# The exact graph needs O(N^2) time: refuse it beyond a 256x256 image.
_MAX_KNN_POINTS = 65_536


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
    few = _host.few_distinct_rows(points, num_clusters, rng)
    if few is not None:
      return _labels.renumber_by_first_appearance(few)
    if method == "kmeans":
      coordinates = points
    elif _use_device(on_device, "coordinates", len(points), graph=graph):
      landmarks = min(num_landmarks, len(points))
      coordinates = _device.spectral_coordinates(
          coordinates_key, _device.padded(points), len(points),
          num_eigenvectors=min(num_clusters, landmarks), num_landmarks=landmarks,
          num_neighbors=num_neighbors, pca_dim=pca_dim)
    else:
      coordinates = _host.spectral_coordinates(points, num_clusters, graph=graph,
                                               num_landmarks=num_landmarks,
                                               num_neighbors=num_neighbors, pca_dim=pca_dim,
                                               seed=seed, rng=rng)
    if _use_device(on_device, "kmeans", len(points), graph=graph):
      if not isinstance(coordinates, jax.Array):
        coordinates = _device.padded(coordinates)
      labels = np.asarray(_device.kmeans(kmeans_key, coordinates, len(points),
                                         num_clusters=num_clusters, n_init=n_init,
                                         max_fit_points=max_fit_points))[:len(points)]
    else:
      labels = _host.kmeans(np.asarray(coordinates)[:len(points)], num_clusters, seed=seed,
                            n_init=n_init, max_fit_points=max_fit_points, rng=rng)
  return _labels.renumber_by_first_appearance(labels)


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
    few = _host.few_distinct_rows(points, num_eigenvectors, rng)
    if few is not None:
      return np.eye(int(few.max()) + 1, dtype=np.float32)[few]
    if device:
      coordinates = _device.spectral_coordinates(
          jax.random.key(seed), _device.padded(points), len(points),
          num_eigenvectors=min(num_eigenvectors, num_landmarks, len(points)),
          num_landmarks=min(num_landmarks, len(points)), num_neighbors=num_neighbors,
          pca_dim=pca_dim)
      return np.asarray(coordinates)[:len(points)]
    return _host.spectral_coordinates(points, num_eigenvectors, graph=graph,
                                      num_landmarks=num_landmarks, num_neighbors=num_neighbors,
                                      pca_dim=pca_dim, seed=seed, rng=rng).astype(np.float32)


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
    512 x 512 points; on GPUs and TPUs both stages (not measured there; the
    table, with its machine and date, is cuts_jax/_measured.py).
  """
  limits = _measured.CLUSTERING_DEVICE_FASTER_UP_TO
  _validation.check_one_of(stage, tuple(limits), what="clustering stage")
  return num_points <= limits[stage].get(backend or jax.default_backend(), 0)


def _check_on_device(on_device) -> None:
  if on_device is not True and on_device is not False and on_device != "auto":
    raise ValueError(f"on_device is {on_device!r}; expected True, False or 'auto'.")


def _use_device(on_device: Union[bool, str], stage: str, num_points: int, *,
                graph: str) -> bool:
  wanted = (device_clustering_is_faster(stage, num_points=num_points) if on_device == "auto"
            else on_device)
  # The exact kNN graph has no device version; its final k-means does.
  return (bool(wanted) and num_points >= _device.BLOCK_ROWS
          and (stage == "kmeans" or graph == "landmark"))
