"""BSDS500 region benchmarks (Arbelaez et al., 2011): a predicted partition against humans'.

`probabilistic_rand_index`, `variation_of_information` (in bits) and
`segmentation_covering`, each the mean over the human segmentations, with
`upsample_labels` to bring a prediction to the humans' resolution. Label maps
are integer (H, W) arrays whose values are segment ids (any values, not
necessarily 0..K-1).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from cuts_jax import _validation
from cuts_jax import pixels

__all__ = ["HumanSegmentations", "probabilistic_rand_index", "segmentation_covering",
           "upsample_labels", "variation_of_information"]

HumanSegmentations = Union[np.ndarray, Sequence[np.ndarray]]

# The BSDS500 benchmarks' name for the package's one label resizer: a prediction is
# brought to the humans' resolution with it.
upsample_labels = pixels.resize_labels


def _human_list(labels: np.ndarray, human_segmentations: HumanSegmentations,
                ) -> list[np.ndarray]:
  if isinstance(human_segmentations, np.ndarray) and human_segmentations.ndim == 2:
    human_segmentations = [human_segmentations]
  humans = [_validation.check_label_map(h, what="each human segmentation")
             for h in human_segmentations]
  if not humans:
    raise ValueError("human_segmentations is empty; pass at least one label map.")
  for human in humans:
    _validation.check_same_shape(
        labels.shape, human.shape, names=("labels", "a human segmentation"),
        hint=" Resample the prediction with upsample_labels(labels, shape).")
  if labels.size < 2:
    raise ValueError("the label maps need at least 2 pixels (the measures count pixel pairs).")
  return humans


def _mean_over_humans(measure, labels: np.ndarray,
                      human_segmentations: HumanSegmentations) -> float:
  """The mean of `measure(labels, human)` over the checked human segmentations."""
  labels = _validation.check_label_map(labels)
  return float(np.mean([measure(labels, human)
                        for human in _human_list(labels, human_segmentations)]))


def _segment_ids(label_map: np.ndarray) -> np.ndarray:
  """int64 (N,) ids 0..K-1 of the segments; small non-negative labels are kept as they are.

  Label maps are usually small non-negative integers already (k-means ids,
  BSDS's 1..K), and skipping the sort of np.unique makes the BSDS measures
  several times faster. Unused ids give empty segments, which every measure
  here ignores.
  """
  flat = label_map.ravel()
  if flat.size and flat.min() >= 0 and flat.max() < 4 * flat.size:
    return flat.astype(np.int64)
  return np.unique(flat, return_inverse=True)[1].ravel().astype(np.int64)


def _contingency(first: np.ndarray, second: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Sparse contingency table of two label maps of the same shape.

  Returns:
    rows, cols: int (K,) segment indices of the K nonzero entries.
    counts: int (K,) pixels in both segments.
    first_sizes, second_sizes: int pixels per segment of each map.
  """
  a, b = _segment_ids(first), _segment_ids(second)
  num_a, num_b = int(a.max()) + 1, int(b.max()) + 1
  joint = a * num_b + b
  if num_a * num_b <= max(4 * a.size, 1 << 16):
    table = np.bincount(joint, minlength=num_a * num_b)  # O(N + table size).
    entries = np.flatnonzero(table)
    counts = table[entries]
  else:
    # Many segments on both sides: keep only the pairs of ids that occur.
    entries, counts = np.unique(joint, return_counts=True)
  return (entries // num_b, entries % num_b, counts,
          np.bincount(a, minlength=num_a), np.bincount(b, minlength=num_b))


def _rand_index(labels: np.ndarray, human: np.ndarray) -> float:
  _, _, counts, sizes, human_sizes = _contingency(labels, human)
  num = float(labels.size)
  num_pairs = num * (num - 1.0) / 2.0
  # Pairs split by exactly one of the two maps:
  # (sum a^2 + sum b^2) / 2 - sum n^2 = C(a) + C(b) - 2 C(n), C(x) = sum x(x-1)/2.
  disagreements = (0.5 * np.sum(sizes.astype(np.float64)**2)
                   + 0.5 * np.sum(human_sizes.astype(np.float64)**2)
                   - np.sum(counts.astype(np.float64)**2))
  return 1.0 - disagreements / num_pairs


def _entropy(counts: np.ndarray, total: float) -> float:
  """Entropy in bits (log2) of the distribution `counts / total`."""
  p = counts[counts > 0] / total
  return float(-np.sum(p * np.log2(p)))


def _variation_of_information(labels: np.ndarray, human: np.ndarray) -> float:
  _, _, counts, sizes, human_sizes = _contingency(labels, human)
  num = float(labels.size)
  joint = _entropy(counts, num)
  # H(A|B) + H(B|A) = 2 H(A, B) - H(A) - H(B); rounding can leave -1e-16.
  return max(0.0, 2.0 * joint - _entropy(sizes, num) - _entropy(human_sizes, num))


def _covering(labels: np.ndarray, human: np.ndarray) -> float:
  rows, cols, counts, sizes, human_sizes = _contingency(labels, human)
  overlap = counts / (sizes[rows] + human_sizes[cols] - counts)  # intersection / union
  best = np.zeros(human_sizes.size)
  np.maximum.at(best, cols, overlap)  # Segments that miss a human region overlap it by 0.
  return float(np.sum(human_sizes * best) / labels.size)


def probabilistic_rand_index(labels: np.ndarray,
                             human_segmentations: HumanSegmentations) -> float:
  """Probabilistic Rand Index (Unnikrishnan et al., 2007) as BSDS500 reports it.

  For each human map, the Rand index is the fraction of the N (N - 1) / 2
  pixel pairs on which the prediction and the human agree (same segment in
  both, or different segments in both); PRI is its mean over the humans,
  which equals the pairwise-probability form of the definition. Computed
  from a contingency table, never by enumerating pixel pairs:
  RI = 1 - ((sum_i a_i^2 + sum_j b_j^2) / 2 - sum_ij n_ij^2) / (N (N - 1) / 2),
  as the BSDS500 benchmark code does. Every label value is a segment (there
  is no ignored label).

  Args:
    labels: integer (H, W) predicted label map, at the humans' resolution
      (see `upsample_labels`).
    human_segmentations: integer (H, W) human label maps (a sequence, or a
      single 2-D array for one human).

  Returns:
    PRI in [0, 1]; higher is better.

  Raises:
    ValueError: on shape mismatches, no humans or fewer than 2 pixels.
  """
  return _mean_over_humans(_rand_index, labels, human_segmentations)


def variation_of_information(labels: np.ndarray,
                             human_segmentations: HumanSegmentations) -> float:
  """Variation of Information (Meila, 2005), averaged over the humans.

  VoI(A, B) = H(A | B) + H(B | A) = H(A) + H(B) - 2 I(A; B), with entropies of
  the pixel-count distributions in bits (log2, as the BSDS500 benchmark code
  and the VoI figures published with it, e.g. gPb-owt-ucm 1.69). Lower is
  better; 0 means identical partitions. A value in nats is this x ln 2.

  Args and raises as `probabilistic_rand_index`.

  Returns:
    The mean VoI over the humans, in bits.
  """
  return _mean_over_humans(_variation_of_information, labels, human_segmentations)


def segmentation_covering(labels: np.ndarray,
                          human_segmentations: HumanSegmentations) -> float:
  """Covering of the human segmentations by the prediction, as BSDS500 reports it.

  Direction: each human region R is matched with its best predicted region,
  C(human <- prediction) = (1/N) sum_{R in human} |R| max_{R' in prediction}
  |R & R'| / |R | R'|, and the result is the mean over the humans. This is
  the benchmark code's 'cntR / sumR' (human regions of all humans pooled,
  weighted by area, which is the same mean since all humans have N pixels);
  the reverse direction (predicted regions matched to human regions) is not
  what the benchmark tabulates. Every label value is a segment.

  Args and raises as `probabilistic_rand_index`.

  Returns:
    Covering in [0, 1]; higher is better.
  """
  return _mean_over_humans(_covering, labels, human_segmentations)
