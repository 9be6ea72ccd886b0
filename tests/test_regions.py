"""Label maps as regions: connected segments (tiny pieces folded away) and renumbering."""

import numpy as np
import pytest

from cuts_jax import regions


def test_connected_segments_cut_clusters_into_pieces_and_fold_tiny_ones():
  labels = np.zeros((10, 10), np.int64)
  labels[:, 4:6] = 1          # A wall that splits cluster 0 into two pieces.
  labels[0, 0] = 2            # A one-pixel piece.
  segments = regions.connected_segments(labels, min_size=2)
  assert segments.dtype == np.int32
  np.testing.assert_array_equal(np.unique(segments), [0, 1, 2])
  assert segments[5, 0] != segments[5, 9]       # The two halves of cluster 0.
  assert segments[0, 0] == segments[0, 1]       # The tiny piece joined its neighbour.
  np.testing.assert_array_equal(regions.connected_segments(labels)[0, :3], [0, 1, 1])


def test_renumber_closes_gaps_in_raster_order_in_2d_and_3d():
  labels = np.array([[7, 7, 3], [9, 3, 3]])
  renumbered = regions.renumber(labels)
  assert renumbered.dtype == np.int32
  np.testing.assert_array_equal(renumbered, [[0, 0, 1], [2, 1, 1]])
  volume = np.stack([labels, labels[::-1]])
  np.testing.assert_array_equal(regions.renumber(volume),
                                [[[0, 0, 1], [2, 1, 1]], [[2, 1, 1], [0, 0, 1]]])
  with pytest.raises(ValueError):
    regions.renumber(np.zeros((2, 2, 2, 2), np.int32))
