"""Multi-granular segments: a hierarchy from fine to coarse, and its levels under a click.

`segment_hierarchy` builds nested segmentations of one image:

1. the pixel features `segment` clusters (`features.image_features`);
2. their spectral coordinates on the landmark graph (`clustering.spectral_coordinates`,
   linear in the number of pixels) and k-means into `max_clusters` fine clusters;
3. the fine clusters cut into connected segments (tiny pieces fold into a neighbour);
4. Ward's agglomerative merging of the fine clusters (weighted by size) by their centres
   in the spectral coordinates beside their centres in the features, each part scaled to
   unit spread: the spectral part keeps together what the graph links, the feature part
   orders the merges of groups the graph holds apart (to the graph they are all equally
   far). Each merge makes a coarser level, in which adjacent segments of merged clusters
   join, so every coarse segment is a union of finer ones.

This plays the part of the diffusion condensation in the authors' later release
(points of the spectral embedding drift together and merge as the diffusion scale
grows; here clusters merge in order of Ward's cost), at the cost of one spectral
clustering. `cuts_jax.select(hierarchy, (row, col))` picks the level at which the
segment under the click survives the widest range of granularity.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
from scipy import sparse

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import pixels
from cuts_jax import regions
from cuts_jax import segmentation

__all__ = ["hierarchy_from_features", "segment_hierarchy", "ward_merges"]


def ward_merges(centres: np.ndarray, sizes: np.ndarray) -> tuple[list[tuple[int, int]],
                                                                  np.ndarray]:
  """Ward's agglomerative merging of weighted points, until one is left.

  Args:
    centres: float (n, d) cluster centres.
    sizes: (n,) positive weights (cluster sizes).

  Returns:
    (merges, heights): n - 1 pairs (a, b) of merged ids in order, the cluster
    made by merge t having id n + t (as in `scipy.cluster.hierarchy.linkage`),
    and float64 (n - 1,) heights, each the increase of the within-cluster sum
    of squares that merge causes, made non-decreasing.
  """
  centres = np.asarray(centres, np.float64)
  weights = np.asarray(sizes, np.float64)
  count = len(centres)
  ids = np.arange(count)
  alive = np.ones(count, bool)
  merges, heights = [], []
  for step in range(count - 1):
    difference = centres[:, None, :] - centres[None, :, :]
    cost = (weights[:, None] * weights[None, :] / (weights[:, None] + weights[None, :])
            * np.einsum("ijk,ijk->ij", difference, difference))
    cost[~(alive[:, None] & alive[None, :])] = np.inf
    np.fill_diagonal(cost, np.inf)
    a, b = np.unravel_index(int(np.argmin(cost)), cost.shape)
    heights.append(cost[a, b])
    merges.append((int(ids[a]), int(ids[b])))
    total = weights[a] + weights[b]
    centres[a] = (weights[a] * centres[a] + weights[b] * centres[b]) / total
    weights[a] = total
    ids[a] = count + step
    alive[b] = False
  return merges, np.maximum.accumulate(np.asarray(heights, np.float64))


def _unit_total_variance(sums: np.ndarray, sizes: np.ndarray) -> np.ndarray:
  """Cluster centres (from per-cluster sums) scaled so their size-weighted spread is 1."""
  centres = sums / sizes[:, None]
  mean = np.average(centres, axis=0, weights=sizes)
  spread = np.sqrt(np.average(np.sum((centres - mean) ** 2, axis=1), weights=sizes))
  return centres / spread if spread > 0 else centres


def _dominant_cluster(segments: np.ndarray, clusters: np.ndarray, num_clusters: int) -> np.ndarray:
  """The cluster holding most pixels of each segment (folded-in pieces belong elsewhere)."""
  count = int(segments.max()) + 1
  table = sparse.coo_matrix((np.ones(segments.size), (segments.ravel(), clusters.ravel())),
                            shape=(count, num_clusters)).toarray()
  return table.argmax(axis=1)


def hierarchy_from_features(features: np.ndarray, *, max_clusters: int = 24, seed: int = 0,
                            min_segment_size: int = 1) -> regions.Hierarchy:
  """Nested segmentations of an (H, W, D) feature map, from `max_clusters` clusters down to 2.

  Steps 2-4 of the module docstring: spectral coordinates, fine k-means,
  connected fine segments, Ward merges of the fine clusters.

  Args:
    features: float (H, W, D) per-pixel features.
    max_clusters: clusters of the finest level (at least 2).
    seed: seeds the clustering; the same seed gives the same hierarchy.
    min_segment_size: fine pieces with fewer pixels join a neighbour.

  Returns:
    A `Hierarchy` of max_clusters - 1 levels (fewer when the features hold
    fewer distinct vectors).
  """
  _validation.check_positive_integers(max_clusters=max_clusters,
                                      min_segment_size=min_segment_size)
  if max_clusters < 2:
    raise ValueError(f"max_clusters is {max_clusters}; a hierarchy needs at least 2.")
  features = np.asarray(features)
  if features.ndim != 3:
    raise ValueError(f"features must be (H, W, D); got shape {features.shape}.")
  size = features.shape[:2]
  coordinates = clustering.spectral_coordinates(features.reshape(-1, features.shape[-1]),
                                                num_eigenvectors=max_clusters, seed=seed)
  fine = clustering.cluster_embeddings(coordinates, num_clusters=max_clusters,
                                       method="kmeans", seed=seed)
  num_fine = int(fine.max()) + 1
  fine = fine.reshape(size)
  segments = regions.connected_segments(fine, min_size=min_segment_size)
  cluster_sizes = np.bincount(fine.ravel(), minlength=num_fine).astype(np.float64)
  membership = sparse.coo_matrix((np.ones(fine.size), (fine.ravel(), np.arange(fine.size))),
                                 shape=(num_fine, fine.size)).tocsr()
  points = features.reshape(-1, features.shape[-1]).astype(np.float64)
  centres = np.concatenate([_unit_total_variance(membership @ coordinates, cluster_sizes),
                            _unit_total_variance(membership @ points, cluster_sizes)], axis=1)
  merges, merge_heights = ward_merges(centres, cluster_sizes)
  num_levels = max(num_fine - 1, 1)
  levels = regions.nested_levels(segments, _dominant_cluster(segments, fine, num_fine),
                                 merges, num_levels=num_levels)
  num_clusters = num_fine - np.arange(num_levels)
  return regions.Hierarchy(
      labels=levels, num_clusters=num_clusters, scales=np.log(num_fine / num_clusters),
      heights=np.concatenate([[0.0], merge_heights[:num_levels - 1]]))


def segment_hierarchy(params: segmentation.SegmentationParams, image: Any, *,
                      settings: Optional[segmentation.SegmentSettings] = None,
                      **overrides: Any) -> regions.Hierarchy:
  """Nested segmentations of one image, from `max_clusters` clusters down to 2.

  Args:
    params: a `SegmentationParams` (from `load`).
    image: (H, W) or (H, W, C) image, as `segment` takes it.
    settings, **overrides: as in `segment`. `max_clusters` (default 24) is
      the finest level's clusters; level l merges them into
      max_clusters - l clusters (each level's segments are connected pieces
      of its clusters); `seed` seeds the clustering (the same seed gives the
      same hierarchy); the size, `space`, `image_weight`, `image_sigma` and
      `min_segment_fraction` work as in `segment`.

  Returns:
    A `Hierarchy` of max_clusters - 1 levels at the image's own size
    (fewer when the image holds fewer distinct feature vectors).

  Example:
    hierarchy = cuts_jax.segment_hierarchy(params, image)
    mask = cuts_jax.select(hierarchy, (row, col))              # the persistent level
    finer = cuts_jax.select(hierarchy, (row, col), level=2)
  """
  settings = segmentation.resolve_settings(params, settings=settings, **overrides)
  features = segmentation.image_features(params, image, settings=settings)
  pixel_count = features.shape[0] * features.shape[1]
  result = hierarchy_from_features(
      features, max_clusters=settings.max_clusters, seed=settings.seed,
      min_segment_size=max(1, round(settings.min_segment_fraction * pixel_count)))
  height, width = np.shape(image)[:2]
  if result.labels.shape[1:] == (height, width):
    return result
  levels = np.stack([regions.renumber(pixels.resize_labels(level, (height, width)))
                     for level in result.labels])
  return dataclasses.replace(result, labels=levels.astype(np.int32))
