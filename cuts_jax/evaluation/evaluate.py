"""Evaluation run: segment every image with CUTS and every baseline, then score them.

    outcome = evaluate.evaluate(config, workdir)   # or: python -m cuts_jax.apps.evaluate

Writes to `workdir/evaluation/`: `results.md` and `results.csv` (mean +- std over images,
one row per method), `per_image.csv`, and figures (`cuts.png`, `methods.png`, like the
paper's Figs. 2, 3 and 5, and `scales.png`, the levels of CUTS's scale stack with the
clicked segment at each and the region the scale rule chooses).

Rows: `cuts` is `segment` with the model's defaults; `cuts_reconstruction_clusters`,
`cuts_raw_embedding` and `cuts_cosine` are the plain spectral k-means clusters of the
embeddings measured in the reconstruction space, as they are (the paper's literal choice) and
scaled to unit length; `cuts_scale`, `colour_scale` and `felzenszwalb_scale` are the region the
label-free scale rule (`cuts_jax.scales`) chooses under the click in each pipeline's stack of
scales (CUTS's and the colours' at k = 2..15, Felzenszwalb's at 14 scale parameters).
Controls (`cuts_jax.evaluation.controls`), with the model's own k, seed, smoothed image and
connected segments: `cuts_untrained` is the same network at its random initialisation through
the full pipeline; `patch_segments` puts the principal components of raw 7x7 patches where the
embedding would be; the `colour_segments` baseline, marked `match_cuts`, takes its k, smoothing
and folding from the evaluation config. They say what training and the network add.
Rows ending in `_oracle` choose per image, with the expert mask, the best number of clusters
or the best level: they show what a label-free choice of granularity leaves on the table and
are not results a user can get.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import math
import pathlib
import time
from typing import Any, Optional

from absl import logging
import ml_collections
import numpy as np

from cuts_jax import scales
from cuts_jax import segmentation
from cuts_jax import trained
from cuts_jax.evaluation import baselines
from cuts_jax.evaluation import controls
from cuts_jax.evaluation import metrics
from cuts_jax.evaluation import viz
from cuts_jax.io import datasets
from cuts_jax.runs import checkpointing

__all__ = ["CLICK_ROWS", "CONTROL_ROWS", "CUTS", "CUTS_VARIANTS", "EVALUATION_DIR", "ImageResult",
           "click_stack", "evaluate"]

EVALUATION_DIR = "evaluation"
CUTS = "cuts"
# CUTS rows that are one `segment` call each: options laid over the model's defaults.
_CLUSTERS_ONLY = {"image_weight": 0.0, "connected": False}
CUTS_VARIANTS = {
    CUTS: {},
    "cuts_reconstruction_clusters": {"space": "reconstruction", **_CLUSTERS_ONLY},
    "cuts_raw_embedding": {"space": "embedding", **_CLUSTERS_ONLY},
    "cuts_cosine": {"space": "cosine", **_CLUSTERS_ONLY},
}
# Rows that need the click (and so an expert mask): the scale rule on each pipeline's stack
# of k = 2..15 (cuts_jax.scales; colour and Felzenszwalb given the same rule) and the oracles.
CUTS_SCALE = "cuts_scale"
CUTS_ORACLE_K = "cuts_k_oracle"
COLOUR_ORACLE_K = "kmeans_smoothed_k_oracle"
COLOUR_SCALE = "colour_scale"
COLOUR_SCALE_ORACLE = "colour_k_oracle"
FELZENSZWALB_SCALE = "felzenszwalb_scale"
FELZENSZWALB_SCALE_ORACLE = "felzenszwalb_scale_oracle"
CLICK_ROWS = (CUTS_SCALE, CUTS_ORACLE_K, COLOUR_ORACLE_K, COLOUR_SCALE, COLOUR_SCALE_ORACLE,
              FELZENSZWALB_SCALE, FELZENSZWALB_SCALE_ORACLE)
# Controls with the model's own settings (see cuts_jax.evaluation.controls).
CUTS_UNTRAINED = "cuts_untrained"
PATCH_SEGMENTS = "patch_segments"
CONTROL_ROWS = (CUTS_UNTRAINED, PATCH_SEGMENTS)


@dataclasses.dataclass
class ImageResult:
  """One method's segmentation of one image and its scores."""

  method: str
  image_name: str
  labels: np.ndarray
  scores: dict[str, float]
  selected: Optional[np.ndarray] = None
  pixel: Optional[tuple[int, int]] = None


def _baseline_call(name: str, params: ml_collections.ConfigDict,
                   seed: int, evaluation: Optional[ml_collections.ConfigDict] = None,
                   ) -> tuple[str, dict]:
  """(baseline function name, keyword arguments) of a configured method.

  A baseline that draws random numbers (random labels, k-means) gets the
  evaluation's seed unless its configuration fixes one. One marked
  `match_cuts` (a `kmeans_pixels` control) takes CUTS's k, clustering method,
  smoothing, connected segments, folding and snapping from `evaluation`.
  """
  params = params.to_dict() if hasattr(params, "to_dict") else dict(params)
  function = params.pop("baseline", name)
  if params.pop("match_cuts", False) and evaluation is not None:
    params.update(num_clusters=evaluation.num_clusters, method=evaluation.clustering,
                  smoothing_sigma=evaluation.image_sigma,
                  connected=evaluation.connected_segments,
                  min_segment_fraction=evaluation.min_segment_fraction,
                  min_segment_pixels=int(evaluation.get("min_segment_pixels", 0) or 0),
                  snap_scale=float(evaluation.get("snap_scale", 0) or 0) or None)
  known = baselines.BASELINES.get(function)  # An unknown name fails in run_baseline.
  if known is not None and "seed" in inspect.signature(known).parameters:
    params.setdefault("seed", seed)
  return function, params


def _score(image: np.ndarray, labels: np.ndarray, *, target: Optional[np.ndarray],
           humans: Optional[list[np.ndarray]], evaluation: ml_collections.ConfigDict,
           selected: Optional[np.ndarray] = None,
           ) -> tuple[dict[str, float], Optional[np.ndarray], Optional[tuple[int, int]]]:
  """All the metrics of one label map; returns (scores, selected mask, clicked pixel).

  `selected` replaces the one-pixel selection for rows that choose the
  clicked region themselves (a scale rule); the majority Dice, which
  is about the label map, is then left out.
  """
  scores: dict[str, float] = {}
  pixel = None
  if target is not None and target.any():
    percentile = evaluation.click_percentile
    pixel = metrics.centre_pixel(target, percentile=percentile)
    if selected is None:
      selected = metrics.one_pixel_selection(labels, target, percentile=percentile)
      scores["dice_majority"] = metrics.dice_majority(labels, target)
    scores["dice"] = metrics.dice(selected, target)
    scores["hd95"] = metrics.hd95(selected, target)
  similarity = metrics.segment_patch_similarity(
      image, labels, num_pixels=evaluation.patch_pixels, patch_size=evaluation.patch_size,
      seed=evaluation.seed, ergas_epsilon=evaluation.ergas_floor)
  for measure in ("ssim", "ergas", "rmse"):
    scores[f"{measure}_within"] = similarity[f"{measure}_within"]
    scores[f"{measure}_between"] = similarity[f"{measure}_between"]
  if humans:
    full = metrics.upsample_labels(labels, humans[0].shape)
    scores["pri"] = metrics.probabilistic_rand_index(full, humans)
    scores["voi"] = metrics.variation_of_information(full, humans)
    scores["covering"] = metrics.segmentation_covering(full, humans)
  scores["num_segments"] = float(len(np.unique(labels)))
  return scores, selected, pixel


def _best_by_dice(label_maps, target: np.ndarray, percentile: float) -> np.ndarray:
  """The label map whose one-pixel selection has the highest Dice (an oracle's choice)."""
  return max(label_maps, key=lambda labels: metrics.dice_one_pixel(labels, target,
                                                                   percentile=percentile))


def click_stack(method: str, params, image: np.ndarray, evaluation: ml_collections.ConfigDict,
                *, size=None) -> scales.ScaleStack:
  """The scale stack a click row chooses in: CUTS's, the colours' or Felzenszwalb's.

  CUTS's follows the evaluation section's settings (`SegmentSettings.from_config`);
  the colours' are clustered at `size` (the size CUTS segments at) with the same k,
  seed, fold threshold, snapping to superpixels and rule.
  """
  settings = segmentation.SegmentSettings.from_config(evaluation)
  if method in (CUTS_SCALE, CUTS_ORACLE_K):
    return scales.scale_stack(params, image, settings=settings)
  if method in (COLOUR_SCALE, COLOUR_SCALE_ORACLE):
    stack = baselines.colour_stack(image, num_clusters=settings.scale_num_clusters,
                                   smoothing_sigma=evaluation.oracle_smoothing_sigma,
                                   min_size=settings.fold_threshold(int(np.prod(size))),
                                   size=size, seed=evaluation.seed, snap=settings.snap_scale)
  else:
    stack = baselines.felzenszwalb_stack(image)
  return dataclasses.replace(stack, rule=settings.scale_rule,
                             max_fraction=settings.scale_max_fraction,
                             fixed_clusters=settings.num_clusters)


def _click_rows(method: str, params, image: np.ndarray, target: np.ndarray,
                evaluation: ml_collections.ConfigDict, cache: dict, size
                ) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """(labels, selected or None) of a row that uses the click or the expert mask."""
  percentile = evaluation.click_percentile
  pixel = metrics.centre_pixel(target, percentile=percentile)
  if method == COLOUR_ORACLE_K:
    return _best_by_dice((baselines.kmeans_pixels(
        image, num_clusters=k, smoothing_sigma=evaluation.oracle_smoothing_sigma,
        seed=evaluation.seed) for k in evaluation.oracle_num_clusters), target, percentile), None
  pipeline = method.split("_")[0]
  if pipeline not in cache:
    cache[pipeline] = click_stack(method, params, image, evaluation, size=size)
  stack = cache[pipeline]
  if method in (CUTS_SCALE, COLOUR_SCALE, FELZENSZWALB_SCALE):
    index, selected = stack.level_of(stack.fixed_clusters), segmentation.select(stack, pixel)
  else:
    masks = [segmentation.select(stack, pixel, level=level) for level in range(len(stack))]
    index = max(range(len(stack)), key=lambda level: metrics.dice(masks[level], target))
    selected = masks[index]
  return stack.labels[index], selected


def _summarise(results: list[ImageResult]) -> tuple[list[str], dict[str, dict[str, tuple]]]:
  """Per method and metric: (mean, std, count) over images, ignoring NaN."""
  methods = list(dict.fromkeys(r.method for r in results))
  names = list(dict.fromkeys(k for r in results for k in r.scores))
  table = {}
  for method in methods:
    table[method] = {}
    for name in names:
      values = np.array([r.scores.get(name, np.nan) for r in results if r.method == method])
      values = values[np.isfinite(values)]
      table[method][name] = ((float(values.mean()), float(values.std()), len(values))
                             if len(values) else (math.nan, math.nan, 0))
  return methods, table


_HIGHER_IS_BETTER = {"dice": True, "dice_majority": True, "ssim_within": True, "pri": True,
                     "covering": True, "ergas_within": False, "rmse_within": False,
                     "hd95": False, "voi": False}


def _format(mean: float, std: float, name: str) -> str:
  if not math.isfinite(mean):
    return "-"
  digits = 1 if name.startswith("ergas") or name == "hd95" else 3
  return f"{mean:.{digits}f} +- {std:.{digits}f}"


def _write_tables(results: list[ImageResult], directory: pathlib.Path, *,
                 header: str) -> str:
  """Writes results.md, results.csv and per_image.csv; returns the Markdown table."""
  methods, table = _summarise(results)
  columns = [c for c in ("dice", "dice_majority", "hd95", "ssim_within", "ergas_within",
                         "rmse_within", "pri", "voi", "covering", "ssim_between",
                         "num_segments")
             if any(math.isfinite(table[m][c][0]) for m in methods if c in table[m])]
  best = {}
  for column in columns:
    if column in _HIGHER_IS_BETTER:
      values = {m: table[m][column][0] for m in methods}
      pick = max if _HIGHER_IS_BETTER[column] else min
      best[column] = pick(values, key=lambda m: values[m])
  lines = ["| method | " + " | ".join(columns) + " |",
           "| --- |" + " --- |" * len(columns)]
  for method in methods:
    cells = []
    for column in columns:
      text = _format(table[method][column][0], table[method][column][1], column)
      cells.append(f"**{text}**" if best.get(column) == method else text)
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  markdown = header + "\n\n" + "\n".join(lines) + "\n"
  (directory / "results.md").write_text(markdown)
  with (directory / "results.csv").open("w", newline="") as stream:
    writer = csv.writer(stream)
    writer.writerow(["method"] + [f"{c}_{s}" for c in columns for s in ("mean", "std")])
    for method in methods:
      writer.writerow([method] + [v for c in columns for v in table[method][c][:2]])
  names = list(dict.fromkeys(k for r in results for k in r.scores))
  with (directory / "per_image.csv").open("w", newline="") as stream:
    writer = csv.writer(stream)
    writer.writerow(["image", "method"] + names)
    for r in results:
      writer.writerow([r.image_name, r.method] + [r.scores.get(n, "") for n in names])
  return markdown


def _figures(dataset: datasets.Dataset, results: list[ImageResult], directory: pathlib.Path,
             count: int) -> list[pathlib.Path]:
  by_key = {(r.image_name, r.method): r for r in results}
  methods = [m for m in dict.fromkeys(r.method for r in results) if m not in CLICK_ROWS]
  indices = range(min(count, len(dataset)))
  rows = []
  for i in indices:
    result = by_key[(dataset.names[i], CUTS)]
    caption = (f"Dice {result.scores['dice']:.3f}" if "dice" in result.scores
               else "selected (red) vs expert (yellow)")
    rows.append(dict(image=dataset.images[i], labels=result.labels, name=dataset.names[i],
                     selected=result.selected, pixel=result.pixel, caption=caption,
                     expert=None if dataset.masks is None else dataset.masks[i]))
  written = [viz.save(viz.segmentation_figure(rows, title="CUTS"), directory / "cuts.png")]
  grid = [[(m, by_key[(dataset.names[i], m)]) for m in methods] for i in indices]
  figure = viz.methods_figure(
      [dataset.images[i] for i in indices],
      [[dict(method=m, labels=r.labels, selected=r.selected, pixel=r.pixel,
             dice=r.scores.get("dice")) for m, r in row] for row in grid],
      experts=None if dataset.masks is None else [dataset.masks[i] for i in indices])
  written.append(viz.save(figure, directory / "methods.png"))
  return written


def evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
             params: Optional[segmentation.SegmentationParams] = None,
             methods: Optional[list[str]] = None, figures: bool = True) -> dict[str, Any]:
  """Segments and scores the configured data set with CUTS and every baseline.

  Args:
    config: the run's config (its `data` and `evaluation` sections are used).
    workdir: the training workdir; results go to `workdir/evaluation/`.
    params: the model to evaluate; by default loaded from the workdir.
    methods: evaluate only these methods ("cuts" and/or baseline names).
    figures: draw the overlay figures (needs matplotlib).

  Returns:
    {"table": method -> metric -> (mean, std, count), "markdown": str,
      "directory": path}.

  Raises:
    ValueError: unknown methods, or a checkpoint that does not fit its config.
    FileNotFoundError: the workdir holds no trained model.
    OSError: `workdir/evaluation` cannot be written (checked first).
    datasets.DataError: the data set is missing or malformed.
  """
  evaluation = config.evaluation
  workdir = pathlib.Path(workdir).expanduser()
  cuts_methods = list(evaluation.cuts_rows)
  unknown_rows = sorted(set(cuts_methods) - set(CUTS_VARIANTS) - set(CLICK_ROWS)
                        - set(CONTROL_ROWS))
  if unknown_rows:
    raise ValueError(f"config.evaluation.cuts_rows names unknown rows {unknown_rows}; known "
                     f"are {sorted(CUTS_VARIANTS) + list(CLICK_ROWS) + list(CONTROL_ROWS)}.")
  configured = cuts_methods + list(evaluation.baselines.keys())
  methods = configured if methods is None else methods
  unknown = sorted(set(methods) - set(configured))
  if unknown:
    raise ValueError(f"unknown methods {unknown}; configured are {configured}.")
  # Everything that can fail without segmenting is checked before the long loop.
  if set(cuts_methods) & set(methods) and params is None:
    params = trained.load(workdir)
  directory = workdir / EVALUATION_DIR
  checkpointing.check_writable(directory, flag="--workdir")
  dataset = datasets.load_dataset(config.data)
  untrained = (controls.untrained_params(config, params, seed=config.seed)
               if CUTS_UNTRAINED in methods else None)
  # Every CUTS row and control segments as the evaluation section says (as `click_stack` does),
  # not as the run's config.json said when it was trained: a setting changed for the evaluation
  # (run_cuts --eval_set) reaches `cuts` and the controls it is paired with.
  cuts_settings = segmentation.SegmentSettings.from_config(config.evaluation)
  results: list[ImageResult] = []
  seconds = {m: 0.0 for m in methods}
  start = time.perf_counter()
  figure_rows = []
  for index, (image, name) in enumerate(zip(dataset.images, dataset.names)):
    target = None if dataset.masks is None else dataset.masks[index]
    humans = None if dataset.human_segmentations is None else \
        dataset.human_segmentations[index]
    cache: dict[str, Any] = {}
    for method in methods:
      if method in CLICK_ROWS and (target is None or not target.any()):
        continue  # No click without an expert region.
      tick = time.perf_counter()
      selected = None
      if method in CUTS_VARIANTS:
        labels = segmentation.segment(params, image, settings=cuts_settings,
                                      **CUTS_VARIANTS[method])
      elif method in CLICK_ROWS:
        labels, selected = _click_rows(method, params, image, target, evaluation, cache,
                                       tuple(config.data.image_size))
      elif method == CUTS_UNTRAINED:
        labels = segmentation.segment(untrained, image, settings=cuts_settings)
      elif method == PATCH_SEGMENTS:
        labels = controls.patch_segments(params, image, settings=cuts_settings)
      else:
        function, kwargs = _baseline_call(method, evaluation.baselines[method],
                                          evaluation.seed, evaluation)
        labels = baselines.run_baseline(function, image, **kwargs)
      seconds[method] += time.perf_counter() - tick
      scores, selected, pixel = _score(image, labels, target=target, humans=humans,
                                       evaluation=evaluation, selected=selected)
      results.append(ImageResult(method, name, labels, scores, selected, pixel))
    if "cuts" in cache and len(figure_rows) < evaluation.num_figure_images:
      figure_rows.append(dict(image=image, stack=cache["cuts"], expert=target,
                              pixel=metrics.centre_pixel(
                                  target, percentile=evaluation.click_percentile)))
    cuts_scores = next((r.scores for r in results[::-1] if r.method == CUTS), {})
    logging.info("[%d/%d] %s%s  (%.0f s elapsed)", index + 1, len(dataset), name,
                 f"  CUTS Dice {cuts_scores['dice']:.3f}" if "dice" in cuts_scores else "",
                 time.perf_counter() - start)
  header = (f"Evaluation of {workdir} on {len(dataset)} {config.data.kind} images "
            f"({config.data.root or 'built-in data'}), {evaluation.num_clusters} clusters "
            f"({evaluation.clustering}); rows ending in _oracle choose the granularity per "
            f"image with the expert mask (not label-free); patch similarity over M={evaluation.patch_pixels} "
            f"pixels with P={evaluation.patch_size} patches; Dice with the one-pixel "
            f"protocol (dice_majority: optimistic majority protocol). Mean +- std over "
            f"images; best in bold.")
  markdown = _write_tables(results, directory, header=header)
  timing = {m: s / max(len(dataset), 1) for m, s in seconds.items()}
  (directory / "timing.json").write_text(json.dumps({"seconds_per_image": timing}, indent=2))
  if figures and evaluation.num_figure_images:
    _figures(dataset, results, directory, evaluation.num_figure_images)
    if figure_rows:
      viz.save(viz.scales_figure(figure_rows), directory / "scales.png")
  logging.info("Results written to %s:\n%s", directory, markdown)
  return {"table": _summarise(results)[1], "markdown": markdown, "directory": directory,
          "results": results}
