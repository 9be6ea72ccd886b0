"""Label maps as regions: connected segments, small pieces folded into neighbours.

Clusters of pixel features are not regions: one cluster can hold pixels on
both sides of an image. `connected_segments` cuts every cluster into its
face-connected pieces (4-connected in 2-D, 6-connected in 3-D) and folds tiny
pieces into a neighbour, so that the segment under a click is one coherent
region; with voxel sizes, borders are measured in area.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy import sparse
from scipy.sparse import csgraph

from cuts_jax import _labels
from cuts_jax import _validation

__all__ = ["connected_segments", "fold_small_pieces", "kept_apart", "pieces_and_segments",
           "renumber"]

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


def _neighbour_pairs(labels: np.ndarray, spacing=None):
  """(a, b): the labels on the two sides of every face between pixels (voxels) of different labels.

  With `spacing` (one size per axis), also the area of each face: the
  product of the sizes of the other axes (1 for a face of a 2-D pixel grid
  without spacing).
  """
  firsts, seconds, areas = [], [], []
  for axis in range(labels.ndim):
    ahead = [slice(None)] * labels.ndim
    behind = [slice(None)] * labels.ndim
    ahead[axis], behind[axis] = slice(None, -1), slice(1, None)
    first, second = labels[tuple(ahead)].ravel(), labels[tuple(behind)].ravel()
    differ = first != second
    firsts.append(first[differ])
    seconds.append(second[differ])
    if spacing is not None:
      area = float(np.prod(np.delete(np.asarray(spacing, np.float64), axis)))
      areas.append(np.full(int(differ.sum()), area))
  first, second = np.concatenate(firsts), np.concatenate(seconds)
  if spacing is None:
    return first, second
  return first, second, np.concatenate(areas)


def _split_components(labels: np.ndarray) -> np.ndarray:
  """Every label's face-connected components (4 in 2-D, 6 in 3-D), each a label of its own."""
  structure = ndimage.generate_binary_structure(labels.ndim, 1)
  pieces = np.zeros(labels.shape, np.int64)
  offset = 0
  for value in np.unique(labels):
    components, count = ndimage.label(labels == value, structure=structure)
    inside = components > 0
    pieces[inside] = components[inside] - 1 + offset
    offset += count
  return pieces


def fold_small_pieces(pieces: np.ndarray, min_size: int, *,
                      spacing=None) -> tuple[np.ndarray, np.ndarray]:
  """Pieces below `min_size` pixels join the neighbour they share the longest border with.

  Args:
    pieces: int (H, W) or (D0, D1, D2) labels 0 .. P - 1, each a connected piece.
    min_size: pieces with fewer pixels (voxels) are folded.
    spacing: sizes per axis; borders are then measured in area (a thin
      slice's faces across the slices count more than along them). None: 1.

  Returns:
    (folded, parent): folded int64 labels of the input's shape (each segment
    labelled by the smallest piece id in it), and int64 (P,) the fold trees:
    the piece each piece's segment was folded into (itself for a root). The
    pieces whose parent chain passes through piece p are those folded into
    p (`kept_apart`).
  """
  count = int(pieces.max()) + 1 if pieces.size else 0
  parent = np.arange(count)
  root_of = np.arange(count)  # Segment label (its smallest piece id) -> its root piece.
  folded = pieces
  for _ in range(_MERGE_ROUNDS):
    sizes = np.bincount(folded.ravel(), minlength=count)
    small = (sizes < min_size) & (sizes > 0)
    if np.count_nonzero(sizes) == 1 or not small.any():
      break
    first, second, area = _neighbour_pairs(folded, np.ones(pieces.ndim) if spacing is None
                                           else spacing)
    sources = np.concatenate([first, second])
    targets = np.concatenate([second, first])
    areas = np.concatenate([area, area])
    # A small piece prefers a large neighbour, so that folding cannot go round in a circle.
    into_large = small[sources] & ~small[targets]
    into_any = small[sources]
    chosen = np.where(np.isin(sources, np.unique(sources[into_large])), into_large, into_any)
    if not chosen.any():
      break
    sources, targets, areas = sources[chosen], targets[chosen], areas[chosen]
    border, inverse = np.unique(sources * count + targets, return_inverse=True)
    length = np.bincount(inverse.ravel(), weights=areas)
    border_source, border_target = border // count, border % count
    order = np.lexsort((-length, border_source))
    border_source, border_target = border_source[order], border_target[order]
    longest = np.r_[True, border_source[1:] != border_source[:-1]]
    step = np.arange(count)
    step[border_source[longest]] = border_target[longest]
    # Small pieces that chose each other form chains; union-find flattens them.
    graph = sparse.coo_matrix((np.ones(count), (np.arange(count), step)), shape=(count, count))
    groups, component = csgraph.connected_components(graph, directed=False)
    step = _break_cycles(step, component)
    movers = border_source[longest]
    parent[root_of[movers]] = root_of[step[movers]]
    # Each new segment takes the smallest label in it (the numbering's order is
    # then the one a compact renumbering would give) and the root of its tree.
    present = np.flatnonzero(sizes)
    smallest = np.full(groups, count)
    np.minimum.at(smallest, component[present], present)
    relabel = smallest[component]
    root_of[relabel[present]] = root_of[_roots(step)[present]]
    folded = relabel[folded]
  return folded, parent


def _break_cycles(step: np.ndarray, component: np.ndarray) -> np.ndarray:
  """`step` (each node's chosen node) with one node of each cycle made a root."""
  reach = step.copy()
  for _ in range(max(1, int(np.ceil(np.log2(max(len(step), 2)))) + 1)):
    reach = reach[reach]  # After these doublings every node has reached its cycle (or root).
  on_cycle = reach[step[reach] != reach]
  if len(on_cycle):
    # One node per cycle, the smallest id of its component on the cycle, becomes a root.
    order = np.lexsort((on_cycle, component[on_cycle]))
    first = on_cycle[order][np.r_[True, np.diff(component[on_cycle][order]) != 0]]
    step = step.copy()
    step[first] = first
  return step


def _roots(parent: np.ndarray) -> np.ndarray:
  roots = parent.copy()
  while True:
    following = roots[roots]
    if np.array_equal(following, roots):
      return roots
    roots = following


def kept_apart(parent: np.ndarray, piece: int) -> np.ndarray:
  """Bool (P,): `piece` and the pieces folded into it (directly or through others)."""
  inside = np.zeros(len(parent), bool)
  inside[piece] = True
  current = np.arange(len(parent))
  # Walk every piece up its fold tree; those that pass `piece` belong to it.
  while True:
    current = parent[current]
    inside |= current == piece
    if np.array_equal(parent[current], current):
      return inside


def connected_segments(labels: np.ndarray, *, min_size: int = 1, spacing=None,
                       keep=(), min_kept: int = 1) -> np.ndarray:
  """Cuts every segment of a label map or volume into connected pieces; folds tiny pieces away.

  Args:
    labels: int (H, W) label map or (D0, D1, D2) label volume, e.g. clusters
      of pixel features.
    min_size: pieces with fewer pixels (voxels) join the neighbouring piece
      they share the longest border with (1: keep every piece).
    spacing: pixel (voxel) sizes per axis, one number or one per axis; the
      border a piece shares is measured in area with them. None: 1 per axis.
    keep: pixels (voxels) whose pieces are not folded into another (e.g.
      clicks): a clicked piece stays itself, with the pieces folded into it
      (unless it is smaller than `min_kept`).
    min_kept: a piece under `keep` with fewer pixels (voxels) than this
      folds like any other, and the click takes the segment it joins: a
      piece of a few voxels is a speck at the grid's resolution, not a
      structure (1: every clicked piece stays).

  Returns:
    int32 label map of the input's shape whose segments are each connected
    through faces (4-connected in 2-D, 6-connected in 3-D; pieces that were
    folded in excepted: they touch the piece they joined), numbered 0, 1, ...
    in raster order of first appearance.

  Example:
    >>> connected_segments(np.array([[0, 1, 0], [0, 1, 0]]))
    array([[0, 1, 2],
           [0, 1, 2]], dtype=int32)
  """
  return pieces_and_segments(labels, min_size=min_size, spacing=spacing, keep=keep,
                             min_kept=min_kept)[1]


def pieces_and_segments(labels: np.ndarray, *, min_size: int = 1, spacing=None,
                        keep=(), min_kept: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """Every segment's connected pieces, before and after tiny pieces are folded away.

  Args:
    labels: int (H, W) label map or (D0, D1, D2) label volume.
    min_size, spacing, keep, min_kept: as in `connected_segments`.

  Returns:
    (pieces, segments): int32 maps numbered in raster order; `pieces` keeps
    every piece, `segments` is `connected_segments(labels, ...)`. A click on
    a piece smaller than `min_size` can so still be answered with that piece
    (`cuts_jax.scales`).
  """
  labels = _validation.check_label_map(labels, ndim=3 if np.ndim(labels) == 3 else 2)
  _validation.check_positive_integers(min_size=min_size, min_kept=min_kept)
  if spacing is not None:
    spacing = _validation.check_spacing(spacing, ndim=labels.ndim)
  pieces = _split_components(labels)
  folded = pieces
  if min_size > 1:
    folded, parent = fold_small_pieces(pieces, min_size, spacing=spacing)
    table = np.empty(len(parent), np.int64)
    table[pieces.ravel()] = folded.ravel()
    sizes = np.bincount(pieces.ravel()) if len(keep) and min_kept > 1 else None
    for number, index in enumerate(keep):
      index = _validation.check_pixel(index, shape=labels.shape, ndim=labels.ndim)
      piece = int(pieces[index])
      if sizes is not None and sizes[piece] < min_kept:
        continue  # A speck: it stays folded, and the click means the segment it joined.
      if parent[piece] != piece:  # It was folded away: take it and its tree back apart.
        table[kept_apart(parent, piece)] = len(parent) + number
    folded = table[pieces]
  pieces = _labels.renumber_by_first_appearance(pieces)
  return pieces, (pieces if folded is pieces else _labels.renumber_by_first_appearance(folded))
