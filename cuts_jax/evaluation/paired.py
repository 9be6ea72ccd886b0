"""Paired differences between methods on the same images, with a bootstrap interval over images.

Every method of an evaluation is scored on the same images with the same clicks, so the
question "is CUTS better than this control?" is a paired one: for each image, the reference
method's score minus the other method's, averaged over the runs that scored both (training
seeds x clustering seeds). The interval resamples images (with replacement), the unit the
claim is about; runs are averaged within each image first.

    records = [dict(run="s0c1", image="image3", method="cuts", dice=0.81), ...]
    table = paired.paired_differences(records, metric="dice")
    print(paired.markdown(table, metric="dice"))
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping, Optional

import numpy as np

__all__ = ["PairedDifference", "markdown", "paired_differences"]


@dataclasses.dataclass(frozen=True)
class PairedDifference:
  """One method against the reference on the images both were scored on.

  Attributes:
    method: the compared method.
    reference_mean: the reference's mean over those images (runs averaged per image).
    method_mean: the method's mean over the same images.
    difference: reference minus method, the mean over images of the per-image difference.
    low: the 2.5th percentile of the bootstrap distribution of `difference`.
    high: its 97.5th percentile.
    num_images: images with a score of both methods.
    num_runs: runs (e.g. training x clustering seeds) that contributed.
  """

  method: str
  reference_mean: float
  method_mean: float
  difference: float
  low: float
  high: float
  num_images: int
  num_runs: int


def paired_differences(records: Iterable[Mapping], *, metric: str, reference: str = "cuts",
                       methods: Optional[Iterable[str]] = None, num_resamples: int = 10_000,
                       seed: int = 0) -> dict[str, PairedDifference]:
  """Reference-minus-method differences per image, with a 95% bootstrap interval over images.

  Args:
    records: one mapping per (run, image, method) with keys "run", "image",
      "method" and `metric` (a number; NaN, None or "" counts as missing).
    metric: the score compared, e.g. "dice".
    reference: the method every other is compared with.
    methods: the methods to compare (default: every method but the reference).
    num_resamples: bootstrap resamples of the images.
    seed: seeds the resampling.

  Returns:
    method -> `PairedDifference`; positive differences favour the reference
    (for a higher-is-better metric). Methods with no image in common are left out.

  Raises:
    ValueError: when no record holds the reference, or `num_resamples` < 1.
  """
  if num_resamples < 1:
    raise ValueError(f"num_resamples must be >= 1; got {num_resamples}.")
  scores: dict[tuple[str, str, str], float] = {}
  for record in records:
    value = record.get(metric)
    if value is None or value == "":
      continue
    value = float(value)
    if math.isfinite(value):
      scores[(str(record["method"]), str(record["run"]), str(record["image"]))] = value
  if not any(key[0] == reference for key in scores):
    raise ValueError(f"no record scores the reference method {reference!r} on {metric!r}.")
  every = list(dict.fromkeys(key[0] for key in scores))
  compared = [m for m in (every if methods is None else methods) if m != reference]
  rng = np.random.default_rng(seed)
  table = {}
  for method in compared:
    per_image: dict[str, list[tuple[float, float]]] = {}
    runs = set()
    for (name, run, image), value in scores.items():
      if name != method or (reference, run, image) not in scores:
        continue
      per_image.setdefault(image, []).append((scores[(reference, run, image)], value))
      runs.add(run)
    if not per_image:
      continue
    pairs = np.array([np.mean(v, axis=0) for v in per_image.values()])  # (images, 2)
    differences = pairs[:, 0] - pairs[:, 1]
    resampled = rng.integers(0, len(differences), size=(num_resamples, len(differences)))
    means = differences[resampled].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    table[method] = PairedDifference(
        method=method, reference_mean=float(pairs[:, 0].mean()),
        method_mean=float(pairs[:, 1].mean()), difference=float(differences.mean()),
        low=float(low), high=float(high), num_images=len(differences), num_runs=len(runs))
  return table


def markdown(table: Mapping[str, PairedDifference], *, metric: str,
             reference: str = "cuts") -> str:
  """The table as Markdown: one row per method, with the difference and its interval."""
  lines = [f"| method | {reference} {metric} | method {metric} | {reference} - method "
           "[95% interval over images] | images | runs |",
           "| --- | --- | --- | --- | --- | --- |"]
  for row in table.values():
    lines.append(f"| {row.method} | {row.reference_mean:.3f} | {row.method_mean:.3f} | "
                 f"{row.difference:+.3f} [{row.low:+.3f}, {row.high:+.3f}] | "
                 f"{row.num_images} | {row.num_runs} |")
  return "\n".join(lines) + "\n"
