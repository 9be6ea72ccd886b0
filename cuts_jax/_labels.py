"""Label maps numbered by first appearance: one numbering for clusters and regions alike.

Equal partitions then give equal label arrays, whichever step made them
(`clustering` for clusters of points, `regions` for connected segments and
the levels of a hierarchy).
"""

from __future__ import annotations

import numpy as np

__all__ = ["renumber_by_first_appearance"]


def renumber_by_first_appearance(labels: np.ndarray) -> np.ndarray:
  """The same partition numbered 0, 1, ... in the order the labels first appear.

  Args:
    labels: integer array of any shape and values (read in C order: raster
      order for an image).

  Returns:
    int32 array of the same shape.
  """
  values, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
  rank = np.empty(len(values), np.int32)
  rank[np.argsort(first)] = np.arange(len(values), dtype=np.int32)
  return rank[inverse].reshape(np.shape(labels))
