"""Spectral and plain k-means of embeddings: planted clusters, determinism, edge cases."""

import tracemalloc

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
import threadpoolctl

from cuts_jax import _measured
from cuts_jax import clustering
from cuts_jax.clustering import _device
from cuts_jax.clustering import _host
from cuts_jax.clustering import _method


def planted_blobs(num_blobs=5, per_blob=200, dims=16, seed=0):
  """Well-separated Gaussian blobs, in shuffled order, with their true labels."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(scale=10.0, size=(num_blobs, dims))
  truth = rng.permutation(np.repeat(np.arange(num_blobs), per_blob))
  points = centres[truth] + rng.normal(size=(len(truth), dims))
  return points.astype(np.float32), truth


def planted_image(height=48, width=64, dims=24, seed=0):
  """(H, W, D) embeddings of four quadrants, each a tight blob of its own."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[:height, :width]
  truth = 2 * (rows >= height // 2) + (cols >= width // 2)
  centres = rng.normal(scale=5.0, size=(4, dims))
  embeddings = centres[truth] + 0.5 * rng.normal(size=(height, width, dims))
  return embeddings.astype(np.float32), truth


@pytest.mark.parametrize("options", [dict(method="spectral"),
                                     dict(method="spectral", graph="knn"),
                                     dict(method="kmeans")])
def test_recovers_planted_clusters(options):
  points, truth = planted_blobs()
  labels = clustering.cluster_embeddings(points, num_clusters=5, **options)
  assert labels.shape == truth.shape and labels.dtype == np.int32
  assert set(np.unique(labels)) == set(range(5))
  assert adjusted_rand_score(truth, labels) > 0.95


def test_landmark_graph_agrees_with_the_exact_knn_graph():
  # 128-d blobs: the PCA step is exercised too (pca_dim=32 < 128).
  points, truth = planted_blobs(num_blobs=6, per_blob=150, dims=128, seed=3)
  landmark = clustering.cluster_embeddings(points, num_clusters=6, graph="landmark")
  exact = clustering.cluster_embeddings(points, num_clusters=6, graph="knn")
  assert adjusted_rand_score(exact, landmark) > 0.95
  assert adjusted_rand_score(truth, landmark) > 0.95


@pytest.mark.parametrize("method", clustering.METHODS)
def test_cluster_image_recovers_quadrants_in_raster_order(method):
  embeddings, truth = planted_image()
  labels = clustering.cluster_image(embeddings, num_clusters=4, method=method)
  assert labels.shape == truth.shape and labels.dtype == np.int32
  # Numbered by first appearance in raster order, the quadrants come out as
  # top-left 0, top-right 1, bottom-left 2, bottom-right 3: exactly `truth`.
  np.testing.assert_array_equal(labels, truth)


def test_more_clusters_than_structure_still_gives_k_labels():
  embeddings, truth = planted_image()
  labels = clustering.cluster_image(embeddings, num_clusters=10)
  assert labels.max() < 10 and len(np.unique(labels)) == 10
  # Each found cluster lies within one quadrant.
  for label in np.unique(labels):
    assert len(np.unique(truth[labels == label])) == 1


@pytest.mark.parametrize("method", clustering.METHODS)
def test_same_seed_gives_same_labels(method):
  points = np.random.default_rng(1).normal(size=(3000, 20)).astype(np.float32)
  first = clustering.cluster_embeddings(points, method=method, seed=4)
  again = clustering.cluster_embeddings(points, method=method, seed=4)
  np.testing.assert_array_equal(first, again)


def test_labels_are_numbered_by_first_appearance():
  points = np.random.default_rng(2).normal(size=(2000, 8))
  labels = clustering.cluster_embeddings(points, num_clusters=7)
  firsts = [np.flatnonzero(labels == label)[0] for label in range(labels.max() + 1)]
  assert firsts == sorted(firsts) and labels[0] == 0
  assert set(np.unique(labels)) == set(range(7))


def test_equal_partitions_give_equal_arrays_whatever_the_seed():
  points, _ = planted_blobs()
  by_seed = [clustering.cluster_embeddings(points, num_clusters=5, seed=s) for s in range(3)]
  for labels in by_seed[1:]:
    np.testing.assert_array_equal(labels, by_seed[0])


@pytest.mark.parametrize("method", clustering.METHODS)
def test_fewer_distinct_points_than_clusters(method):
  three = np.array([[0.0, 1.0], [5.0, 5.0], [0.0, 1.0]])
  np.testing.assert_array_equal(
      clustering.cluster_embeddings(three, num_clusters=10, method=method), [0, 1, 0])
  np.testing.assert_array_equal(
      clustering.cluster_embeddings(np.ones((1, 4)), method=method), [0])
  # Many points, two distinct values: one label per value.
  two_values = np.repeat([[0.0] * 6, [1.0] * 6], [300, 200], axis=0)
  labels = clustering.cluster_embeddings(two_values[::-1], num_clusters=10, method=method)
  np.testing.assert_array_equal(labels, np.repeat([0, 1], [200, 300]))
  flat = clustering.cluster_image(np.zeros((20, 30, 5), np.float32), method=method)
  assert flat.shape == (20, 30) and not flat.any()


def test_a_few_more_points_than_clusters():
  points = np.random.default_rng(3).normal(size=(12, 40))
  for options in (dict(), dict(graph="knn"), dict(method="kmeans")):
    labels = clustering.cluster_embeddings(points, num_clusters=10, **options)
    assert labels.shape == (12,) and 1 <= len(np.unique(labels)) <= 10


def test_top_eigenpairs_of_a_nearly_degenerate_spectrum_are_all_there():
  # Many isolated landmarks give many eigenvalues within 1e-16 of 1 (as on a nearly empty
  # MRI slice); LAPACK's subset driver returned 2 of the 10 asked for this matrix.
  rng = np.random.default_rng(0)
  matrix = np.zeros((256, 256))
  matrix[:150, :150] = np.diag(1 + rng.uniform(-2e-16, 2e-16, 150))
  block = rng.normal(size=(106, 106))
  block = block @ block.T
  matrix[150:, 150:] = block / np.linalg.eigvalsh(block)[-1]
  order = rng.permutation(256)
  matrix = matrix[order][:, order]
  values, vectors = _host.leading_eigenpairs(matrix, 10)
  values, vectors = values[::-1], vectors[:, ::-1]
  assert values.shape == (10,) and vectors.shape == (256, 10)
  np.testing.assert_allclose(values, np.linalg.eigvalsh(matrix)[::-1][:10], atol=1e-12)
  np.testing.assert_allclose(matrix @ vectors, vectors * values, atol=1e-10)


def test_invalid_inputs_say_what_is_wrong():
  good = np.zeros((10, 3))
  with pytest.raises(ValueError, match=r"\(N, D\)"):
    clustering.cluster_embeddings(np.zeros(10))
  with pytest.raises(ValueError, match="cluster_image"):
    clustering.cluster_embeddings(np.zeros((4, 4, 3)))
  with pytest.raises(ValueError, match=r"\(H, W, D\)"):
    clustering.cluster_image(good)
  with pytest.raises(ValueError, match="no points"):
    clustering.cluster_embeddings(np.zeros((0, 3)))
  with pytest.raises(ValueError, match="NaN"):
    clustering.cluster_embeddings(np.array([[0.0, np.nan], [1.0, 2.0]]))
  with pytest.raises(ValueError, match="infinite"):
    clustering.cluster_embeddings(np.array([[0.0, np.inf], [1.0, 2.0]]))
  with pytest.raises(ValueError, match="dtype"):
    clustering.cluster_embeddings(np.array([["a", "b"]]))
  with pytest.raises(ValueError, match="num_clusters"):
    clustering.cluster_embeddings(good, num_clusters=0)
  with pytest.raises(ValueError, match="num_landmarks"):
    clustering.cluster_embeddings(good, num_landmarks=2.5)
  with pytest.raises(ValueError, match="method"):
    clustering.cluster_embeddings(good, method="dbscan")
  with pytest.raises(ValueError, match="graph"):
    clustering.cluster_embeddings(good, graph="full")
  with pytest.raises(ValueError, match="graph='landmark'"):
    clustering.cluster_embeddings(np.zeros((70_000, 1), np.float32), graph="knn")


def test_large_image_memory_grows_linearly():
  # 512x512 pixels: a dense N x N affinity would need 275 GB. Memory (not
  # time) is asserted: the peak allocation stays within a few input sizes.
  # tracemalloc sees numpy's memory, so this is the host path's.
  embeddings = np.random.default_rng(0).normal(size=(512, 512, 16)).astype(np.float32)
  tracemalloc.start()
  try:
    labels = clustering.cluster_image(embeddings, on_device=False)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert labels.shape == (512, 512) and labels.dtype == np.int32
  assert len(np.unique(labels)) == 10
  assert peak < 8 * embeddings.nbytes, f"peak {peak / 2**20:.0f} MB"


def test_threads_setting_limits_the_threads_and_leaves_the_result_unchanged(monkeypatch):
  points, _ = planted_blobs()
  limits = []
  real_limits = threadpoolctl.threadpool_limits

  def recorded(*args, **kwargs):
    limits.append(kwargs.get("limits"))
    return real_limits(*args, **kwargs)

  monkeypatch.setattr(threadpoolctl, "threadpool_limits", recorded)
  unlimited = clustering.cluster_embeddings(points, num_clusters=5, num_threads=None)
  assert not limits  # None keeps the process's threads.
  np.testing.assert_array_equal(
      unlimited, clustering.cluster_embeddings(points, num_clusters=5, num_threads=2))
  assert limits == [2]


def test_spectral_clustering_survives_lapack_returning_no_eigenvalues(monkeypatch):
  # LAPACK's syevr returned no eigenvalues (or raised "Internal Error") on a
  # landmark graph of many disconnected parts; the full decomposition takes over.
  points = np.concatenate([np.zeros((50, 3)), np.ones((50, 3))])
  points += 0.01 * np.random.default_rng(0).standard_normal(points.shape)
  expected = clustering.cluster_embeddings(points, num_clusters=2)
  eigh = _host.linalg.eigh

  def failing_subset_eigh(matrix, **kwargs):
    if "subset_by_index" in kwargs and len(matrix) > 3:
      return np.empty(0), np.empty((len(matrix), 0))
    return eigh(matrix, **kwargs)

  monkeypatch.setattr(_host.linalg, "eigh", failing_subset_eigh)
  np.testing.assert_array_equal(clustering.cluster_embeddings(points, num_clusters=2), expected)


# --- The device path. ---------------------------------------------------------------------


@pytest.mark.parametrize("method", clustering.METHODS)
def test_device_path_recovers_planted_clusters_like_the_host_path(method):
  points, truth = planted_blobs(num_blobs=6, per_blob=900, dims=40)  # 5400 rows: one bucket
  device = clustering.cluster_embeddings(points, num_clusters=6, method=method, on_device=True)
  host = clustering.cluster_embeddings(points, num_clusters=6, method=method, on_device=False)
  assert device.dtype == np.int32 and device.shape == truth.shape
  assert adjusted_rand_score(truth, device) > 0.95
  assert adjusted_rand_score(host, device) > 0.95
  again = clustering.cluster_embeddings(points, num_clusters=6, method=method, on_device=True)
  np.testing.assert_array_equal(device, again)


def test_device_spectral_coordinates_are_unit_rows_that_separate_the_blobs():
  points, truth = planted_blobs(num_blobs=4, per_blob=1200, dims=40)
  coordinates = clustering.spectral_coordinates(points, num_eigenvectors=4, on_device=True)
  assert coordinates.shape == (len(points), 4) and coordinates.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(coordinates, axis=1), 1.0, atol=1e-4)
  centres = np.stack([coordinates[truth == b].mean(axis=0) for b in range(4)])
  spread = max(np.linalg.norm(coordinates[truth == b] - centres[b], axis=1).max()
               for b in range(4))
  gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(4, 1)]
  assert gaps.min() > 2 * spread  # Each blob a tight group, far from the others.


def test_device_path_compiles_once_for_point_counts_in_one_bucket():
  assert _device.bucket_rows(4096) == 4096
  assert _device.bucket_rows(4097) == 8192
  assert _device.bucket_rows(5 * 4096 + 1) == 6 * 4096  # At most a quarter more.
  assert _device.bucket_rows(1000 * 4096) == 1024 * 4096
  rng = np.random.default_rng(0)
  before = _device.kmeans._cache_size()
  for count in (4500, 6000, 8000):
    clustering.cluster_embeddings(rng.normal(size=(count, 3)).astype(np.float32),
                                  num_clusters=3, method="kmeans", on_device=True)
  assert _device.kmeans._cache_size() - before <= 1


def test_small_sets_and_the_exact_graph_stay_on_the_host():
  points, _ = planted_blobs()  # 1000 rows: fewer than a device block
  np.testing.assert_array_equal(
      clustering.cluster_embeddings(points, num_clusters=5, on_device=True),
      clustering.cluster_embeddings(points, num_clusters=5, on_device=False))


def test_where_auto_clusters_and_bad_choices():
  assert clustering.device_clustering_is_faster("kmeans", backend="cpu", num_points=128 * 128)
  assert not clustering.device_clustering_is_faster("kmeans", backend="cpu",
                                                    num_points=2048 * 2048)
  assert not clustering.device_clustering_is_faster("coordinates", backend="cpu")
  assert clustering.device_clustering_is_faster("coordinates", backend="gpu",
                                                num_points=2048 * 2048)
  with pytest.raises(ValueError, match="clustering stage"):
    clustering.device_clustering_is_faster("graph")
  with pytest.raises(ValueError, match="on_device"):
    clustering.cluster_embeddings(np.zeros((10, 2)), on_device="yes")


def test_auto_reads_the_measured_table(monkeypatch):
  assert _measured.MACHINE and _measured.MEASURED_ON
  points, _ = planted_blobs(num_blobs=3, per_blob=1500, dims=4)
  table = {stage: dict(limits) for stage, limits in
           _measured.CLUSTERING_DEVICE_FASTER_UP_TO.items()}
  table["kmeans"]["cpu"] = 0  # As if the device k-means had been measured slower.
  monkeypatch.setattr(_measured, "CLUSTERING_DEVICE_FASTER_UP_TO", table)
  assert not clustering.device_clustering_is_faster("kmeans", backend="cpu", num_points=4500)
  np.testing.assert_array_equal(
      clustering.cluster_embeddings(points, num_clusters=3, method="kmeans", on_device="auto"),
      clustering.cluster_embeddings(points, num_clusters=3, method="kmeans", on_device=False))


def test_one_bandwidth_for_host_and_device():
  # The median squared edge length, floored at 1e-12 x the largest and at 1e-30.
  assert float(_method.bandwidth_squared(4.0, 9.0)) == 4.0
  assert float(_method.bandwidth_squared(0.0, 9.0)) == pytest.approx(9e-12)
  assert float(_method.bandwidth_squared(0.0, 0.0)) == 1e-30
  on_device = _method.bandwidth_squared(jnp.float32(0.0), jnp.float32(9.0), xp=jnp)
  assert float(on_device) == pytest.approx(9e-12)


def test_labels_are_numbered_by_first_appearance_as_regions_number_them():
  from cuts_jax import regions  # pylint: disable=g-import-not-at-top
  points = np.repeat(np.array([[5.0], [1.0], [3.0]]), [2, 3, 1], axis=0)[[4, 0, 5, 1, 2, 3]]
  labels = clustering.cluster_embeddings(points, num_clusters=3)
  np.testing.assert_array_equal(labels, [0, 1, 2, 1, 0, 0])
  np.testing.assert_array_equal(regions.renumber(np.array([[7, 3, 9], [3, 7, 7]])).ravel(), labels)
