"""The segment report a training run is handed: how segmentation is going, while it trains.

    report = report_lib.segment_report(config, workdir)
    train.train_and_evaluate(config, workdir, report=report)

`python -m cuts_jax.main` builds it this way; `train_and_evaluate` calls it
every `config.training.eval_every` steps and at the end, and knows nothing of
what it computes.
"""

from __future__ import annotations

import pathlib
import time

from absl import logging
import ml_collections
import numpy as np

from cuts_jax import segmentation
from cuts_jax import step as step_lib
from cuts_jax import train
from cuts_jax.evaluation import metrics
from cuts_jax.evaluation import viz
from cuts_jax.io import datasets
from cuts_jax.runs import metric_writers

__all__ = ["FIGURE_FILE", "segment_report"]

FIGURE_FILE = "segments.png"


def segment_report(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                   ) -> train.Report:
  """A report of Dice on data with masks and a figure of segments, for `train_and_evaluate`.

  Each call segments the images of the training data set with the state it is
  given (clustering as `config.evaluation` says). With masks, every image is
  segmented and the mean one-pixel Dice (`metrics.dice_one_pixel`) is logged
  and written as `eval_dice_one_pixel`; the masks are read only here, never by
  training. The first `config.training.num_figure_images` images are drawn in
  `workdir/segments.png` (and sent to TensorBoard) when matplotlib is
  installed.

  Args:
    config: the run's config.
    workdir: the run's workdir (the figure goes there).

  Returns:
    The callback, `report(state, step=..., dataset=..., writer=...)`.
  """
  workdir = pathlib.Path(workdir).expanduser().absolute()
  evaluation = config.evaluation

  def report(state: step_lib.TrainState, *, step: int, dataset: datasets.Dataset,
             writer: metric_writers.MetricWriter) -> None:
    tick = time.perf_counter()
    params = segmentation.SegmentationParams.from_train_state(state, config)
    num_figures = min(config.training.num_figure_images, len(dataset))
    count = len(dataset) if dataset.masks is not None else num_figures
    dice_scores, rows = [], []
    for index in range(count):
      image = dataset.images[index]
      labels = segmentation.segment(params, image, num_clusters=evaluation.num_clusters,
                                    method=evaluation.clustering, seed=evaluation.seed)
      mask = None if dataset.masks is None or not dataset.masks[index].any() else \
          dataset.masks[index]
      if mask is not None:
        dice_scores.append(metrics.dice_one_pixel(labels, mask,
                                                  percentile=evaluation.click_percentile))
      if index < num_figures:
        row = dict(image=image, labels=labels, name=dataset.names[index])
        if mask is not None:
          row.update(expert=mask, caption=f"Dice {dice_scores[-1]:.3f}",
                     selected=metrics.one_pixel_selection(
                         labels, mask, percentile=evaluation.click_percentile),
                     pixel=metrics.centre_pixel(mask, percentile=evaluation.click_percentile))
        rows.append(row)
    if dice_scores:
      dice = float(np.mean(dice_scores))
      writer.write_scalars(step, {"eval_dice_one_pixel": dice})
      logging.info("step %d: mean one-pixel Dice over %d images %.4f", step, len(dice_scores),
                   dice)
    if rows:
      try:
        path = viz.save(viz.segmentation_figure(rows, title=f"step {step}"),
                        workdir / FIGURE_FILE)
        writer.write_images(step, {f"segments/{row['name']}": viz.overlay_segments(
            row["image"], row["labels"]) for row in rows})
        logging.info("Segments of %d images drawn in %s.", len(rows), path)
      except ImportError:
        logging.info("matplotlib is not installed: no segment figure (pip install "
                     "'cuts_jax[viz]').")
    logging.info("Segment report took %.1f s.", time.perf_counter() - tick)

  return report
