"""Label maps as regions: connected segments, small pieces folded into neighbours.

Clusters of pixel features are not regions: one cluster can hold pixels on
both sides of an image. `connected_segments` cuts every cluster into its
4-connected pieces and folds tiny pieces into a neighbour, so that the
segment under a click is one coherent region.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy import sparse
from scipy.sparse import csgraph

from cuts_jax import _labels
from cuts_jax import _validation

__all__ = ["connected_segments", "pieces_and_segments", "renumber"]

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
  return pieces_and_segments(labels, min_size=min_size)[1]


def pieces_and_segments(labels: np.ndarray, *,
                        min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """Every segment's 4-connected pieces, before and after tiny pieces are folded away.

  Args:
    labels: int (H, W) label map.
    min_size: as in `connected_segments`.

  Returns:
    (pieces, segments): int32 (H, W) maps numbered in raster order; `pieces`
    keeps every piece, `segments` is `connected_segments(labels,
    min_size=min_size)`. A click on a piece smaller than `min_size` can so
    still be answered with that piece (`cuts_jax.scales`).
  """
  labels = _validation.check_label_map(labels)
  _validation.check_positive_integers(min_size=min_size)
  pieces = _split_components(labels)
  folded = _fold_small_pieces(pieces, min_size) if min_size > 1 else pieces
  pieces = _labels.renumber_by_first_appearance(pieces)
  return pieces, (pieces if folded is pieces else _labels.renumber_by_first_appearance(folded))
