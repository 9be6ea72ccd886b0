"""Label maps as regions: connected segments, nested levels, and the choice of a level.

Clusters of pixel features are not regions: one cluster can hold pixels on
both sides of an image. `connected_segments` cuts every cluster into its
4-connected pieces and folds tiny pieces into a neighbour, so that the
segment under a click is one coherent region.

A `Hierarchy` holds label maps from fine to coarse in which every segment of
a coarser level is a union of segments of the level below. `select_level`
picks, for one clicked pixel, the level whose segment survives the widest
range of granularity (the "persistent" one), or a level by index or by the
size of the clicked segment.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

import numpy as np
from scipy import ndimage
from scipy import sparse
from scipy.sparse import csgraph

from cuts_jax import _labels
from cuts_jax import _validation

__all__ = ["Hierarchy", "connected_segments", "nested_levels", "persistent_level",
           "renumber", "select_level"]

# The 4-neighbourhood: pixels that share an edge belong to one region.
_EDGE_NEIGHBOURS = ndimage.generate_binary_structure(2, 1)
# Folding small pieces into neighbours can expose new small pieces (two tiny
# neighbours merged into each other); a few rounds settle every real image.
_MERGE_ROUNDS = 8


def renumber(labels: np.ndarray) -> np.ndarray:
  """The same partition numbered 0, 1, ... in raster order of first appearance (int32).

  Resizing a label map (2-D) or a label volume's slices (3-D) can drop
  segments; renumbering closes the gaps.
  """
  ndim = 3 if np.ndim(labels) == 3 else 2
  return _labels.renumber_by_first_appearance(_validation.check_label_map(labels, ndim=ndim))


def _neighbour_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(a, b): the labels on the two sides of every edge between pixels of different labels."""
  first = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
  second = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
  differ = first != second
  return first[differ], second[differ]


def _split_components(labels: np.ndarray) -> np.ndarray:
  """Every label's 4-connected components, each a label of its own."""
  pieces = np.zeros(labels.shape, np.int64)
  offset = 0
  for value in np.unique(labels):
    components, count = ndimage.label(labels == value, structure=_EDGE_NEIGHBOURS)
    inside = components > 0
    pieces[inside] = components[inside] - 1 + offset
    offset += count
  return pieces


def _fold_small_pieces(pieces: np.ndarray, min_size: int) -> np.ndarray:
  """Pieces below `min_size` pixels join the neighbour they share the longest border with."""
  for _ in range(_MERGE_ROUNDS):
    count = int(pieces.max()) + 1
    sizes = np.bincount(pieces.ravel(), minlength=count)
    small = sizes < min_size
    if count == 1 or not small.any():
      break
    first, second = _neighbour_pairs(pieces)
    sources = np.concatenate([first, second])
    targets = np.concatenate([second, first])
    # A small piece prefers a large neighbour, so that folding cannot go round in a circle.
    into_large = small[sources] & ~small[targets]
    into_any = small[sources]
    chosen = np.where(np.isin(sources, np.unique(sources[into_large])), into_large, into_any)
    if not chosen.any():
      break
    sources, targets = sources[chosen], targets[chosen]
    border, length = np.unique(sources * count + targets, return_counts=True)
    border_source, border_target = border // count, border % count
    order = np.lexsort((-length, border_source))
    border_source, border_target = border_source[order], border_target[order]
    longest = np.r_[True, border_source[1:] != border_source[:-1]]
    parent = np.arange(count)
    parent[border_source[longest]] = border_target[longest]
    # Small pieces that chose each other form chains; union-find flattens them.
    graph = sparse.coo_matrix((np.ones(count), (np.arange(count), parent)),
                              shape=(count, count))
    _, component = csgraph.connected_components(graph, directed=False)
    pieces = component[pieces]
  return pieces


def connected_segments(labels: np.ndarray, *, min_size: int = 1) -> np.ndarray:
  """Cuts every segment of a label map into 4-connected pieces; folds tiny pieces away.

  Args:
    labels: int (H, W) label map, e.g. clusters of pixel features.
    min_size: pieces with fewer pixels join the neighbouring piece they share
      the longest border with (1: keep every piece).

  Returns:
    int32 (H, W) label map whose segments are each 4-connected (pieces that
    were folded in excepted: they touch the piece they joined), numbered
    0, 1, ... in raster order of first appearance.

  Example:
    >>> connected_segments(np.array([[0, 1, 0], [0, 1, 0]]))
    array([[0, 1, 2],
           [0, 1, 2]], dtype=int32)
  """
  labels = _validation.check_label_map(labels)
  _validation.check_positive_integers(min_size=min_size)
  pieces = _split_components(labels)
  if min_size > 1:
    pieces = _fold_small_pieces(pieces, min_size)
  return _labels.renumber_by_first_appearance(pieces)


@dataclasses.dataclass(frozen=True)
class Hierarchy:
  """Nested segmentations of one image, from fine to coarse.

  Attributes:
    labels: int32 (L, H, W); level 0 is the finest. Every segment of level
      l + 1 is a union of segments of level l.
    num_clusters: int (L,): the clusters each level's segments are connected
      pieces of (decreasing).
    scales: float (L,): each level's granularity, log(num_clusters[0] /
      num_clusters[l]): 0 at the finest level, growing as segments merge.
    heights: float (L,): the merge height (Ward's increase of the within-cluster
      sum of squares in the spectral coordinates) of the last merge that made
      each level; 0 at the finest.
  """

  labels: np.ndarray
  num_clusters: np.ndarray
  scales: np.ndarray
  heights: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)

  def __array__(self, dtype=None, copy=None):
    return self.labels if dtype is None else self.labels.astype(dtype)


def nested_levels(segments: np.ndarray, segment_cluster: np.ndarray,
                  merges: Sequence[tuple[int, int]], *, num_levels: int) -> np.ndarray:
  """Label maps of the first `num_levels` levels of an agglomerative merge of clusters.

  Level 0 is `segments` itself. Level t + 1 applies `merges[t]`: the two
  clusters become one, and adjacent segments whose clusters are now the same
  join into one segment. Segments of one cluster that do not touch stay
  apart, so every level's segments are connected and each is a union of the
  level below's.

  Args:
    segments: int (H, W) fine segments, labels 0 .. S - 1.
    segment_cluster: int (S,) the cluster (0 .. n - 1) each segment belongs to.
    merges: the n - 1 merges that join n clusters into one: (a, b) pairs of
      cluster ids in merge order, the cluster made by merge t getting id
      n + t, as in `scipy.cluster.hierarchy.linkage`.
    num_levels: levels to return, at most len(merges) + 1.

  Returns:
    int32 (num_levels, H, W), each level numbered in raster order.
  """
  segments = _validation.check_label_map(segments)
  segment_cluster = np.asarray(segment_cluster)
  count = int(segments.max()) + 1
  num_leaves = len(merges) + 1
  first, second = _neighbour_pairs(segments)
  current = segment_cluster.copy()
  levels = np.empty((num_levels,) + segments.shape, np.int32)
  for level in range(num_levels):
    if level:
      a, b = merges[level - 1]
      current[(current == a) | (current == b)] = num_leaves + level - 1
    same = current[first] == current[second]
    graph = sparse.coo_matrix((np.ones(int(same.sum())), (first[same], second[same])),
                              shape=(count, count))
    _, component = csgraph.connected_components(graph, directed=False)
    levels[level] = _labels.renumber_by_first_appearance(component[segments])
  return levels


def _clicked_sizes(hierarchy: Hierarchy, row: int, col: int) -> np.ndarray:
  clicked = hierarchy.labels[:, row, col]
  return np.array([np.count_nonzero(level == value)
                   for level, value in zip(hierarchy.labels, clicked)])


def persistent_level(hierarchy: Hierarchy, pixel: Sequence[int], *,
                     max_fraction: float = 0.5) -> int:
  """The level at which the segment under `pixel` survives the widest range of granularity.

  Levels are nested, so the clicked segment only grows from fine to coarse;
  it is the same segment over a run of consecutive levels. A run over levels
  with K_fine down to K_coarse clusters spans log((K_fine + 1) / K_coarse) of
  log-granularity (a level with K clusters covers [log K, log (K + 1))). The
  finest level of the longest run is returned; segments larger than
  `max_fraction` of the image (background halves) are passed over unless
  nothing smaller exists.

  Args:
    hierarchy: from `segment_hierarchy`.
    pixel: (row, col).
    max_fraction: the largest share of the image a chosen segment may cover.

  Returns:
    The index of the chosen level.
  """
  row, col = _validation.check_pixel(pixel, shape=hierarchy.labels.shape[1:])
  sizes = _clicked_sizes(hierarchy, row, col)
  clusters = np.asarray(hierarchy.num_clusters, np.float64)
  runs = []  # (persistence, first level of the run)
  start = 0
  for level in range(1, len(sizes) + 1):
    if level == len(sizes) or sizes[level] != sizes[start]:
      persistence = np.log((clusters[start] + 1.0) / clusters[level - 1])
      runs.append((persistence, -start))
      start = level
  area = hierarchy.labels[0].size
  small_enough = [run for run in runs if sizes[-run[1]] <= max_fraction * area]
  return -max(small_enough or runs)[1]


def select_level(hierarchy: Hierarchy, pixel: Sequence[int], *,
                 level: Union[str, int] = "persistent",
                 target_size: int | None = None) -> np.ndarray:
  """The clicked segment at a level of a hierarchy.

  Args:
    hierarchy: from `segment_hierarchy`.
    pixel: (row, col), 0-based.
    level: "persistent" (see `persistent_level`) or a level index (negative
      counts from the coarsest).
    target_size: instead of `level`, the level whose clicked segment has the
      number of pixels closest to this.

  Returns:
    bool (H, W) mask of the segment under `pixel`.
  """
  row, col = _validation.check_pixel(pixel, shape=hierarchy.labels.shape[1:])
  if target_size is not None:
    _validation.check_positive_integers(target_size=target_size)
    index = int(np.argmin(np.abs(_clicked_sizes(hierarchy, row, col) - target_size)))
  elif isinstance(level, str):
    _validation.check_one_of(level, ("persistent",), what="level")
    index = persistent_level(hierarchy, (row, col))
  else:
    count = len(hierarchy)
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or \
        not -count <= level < count:
      raise ValueError(f"level is {level!r}; expected 'persistent' or an integer in "
                       f"[{-count}, {count}) for this hierarchy of {count} levels.")
    index = int(level) % count
  labels = hierarchy.labels[index]
  return labels == labels[row, col]
