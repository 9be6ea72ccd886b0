"""What the host and device paths of the clustering share: the method's fixed settings and its
Gaussian kernel's bandwidth.

Both paths run the same steps with these values (the module docstring of
`cuts_jax.clustering`); only how they draw random numbers and where they run
differs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KMEANS_TOL", "LANDMARK_ITERATIONS", "PCA_FIT_POINTS", "POINTS_PER_LANDMARK",
           "bandwidth_squared"]

# Lloyd iterations that place the landmarks. Landmarks only need to cover the
# data; more iterations barely change the clusters but cost time.
LANDMARK_ITERATIONS = 8
# Points per landmark in the subsample that places the landmarks.
POINTS_PER_LANDMARK = 16
# Points the PCA is fitted on: ample for the covariance of a few hundred dimensions.
PCA_FIT_POINTS = 8192
# k-means stops when the centres move less than this (relative to the data's
# variance); 10x sklearn's default saves a third of the time on data without
# clear clusters and changed the inertia by under 0.01%.
KMEANS_TOL = 1e-3
# The bandwidth's floors: relative to the largest squared distance, and absolute.
_RELATIVE_FLOOR = 1e-12
_ABSOLUTE_FLOOR = 1e-30


def bandwidth_squared(median_squared: Any, largest_squared: Any, *, xp: Any = np) -> Any:
  """sigma^2 of the graph's Gaussian weights exp(-d^2 / 2 sigma^2).

  The median squared distance of the graph's edges, so that the kernel adapts
  to the embedding's scale; a tiny floor keeps it positive for clumped data
  (many points on one spot).

  Args:
    median_squared: the median squared edge length (scalar).
    largest_squared: the largest squared edge length (scalar).
    xp: the array module the scalars belong to: numpy (host) or jax.numpy
      (inside the device path's `jit`).

  Returns:
    A scalar of `xp` (a numpy float64 for Python floats).
  """
  return xp.maximum(xp.maximum(median_squared, _RELATIVE_FLOOR * largest_squared),
                    _ABSOLUTE_FLOOR)
