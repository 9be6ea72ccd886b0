"""The evaluation run: every method, every metric, tables and figures."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from configs import tiny
from conftest import REPO_ROOT, copy_workdir, shared_data
from cuts_jax.evaluation import evaluate


@pytest.fixture(scope="module")
def tiny_workdir(trained_run, tmp_path_factory):
  """A copy of the session's tiny run: evaluation writes into its workdir/evaluation/."""
  return copy_workdir(trained_run.workdir, tmp_path_factory.mktemp("evaluate") / "workdir")


def test_evaluation_on_retina_writes_tables_and_figures(tiny_workdir):
  config = tiny.get_config()
  config.data.kind = "retina"
  config.data.root = str(shared_data("retina_ga"))
  config.data.image_size = (64, 64)
  config.data.limit = 3
  config.evaluation.patch_pixels = 40
  config.evaluation.num_figure_images = 2
  config.evaluation.cuts_rows = (*config.evaluation.cuts_rows, *evaluate.CLICK_ROWS[1:])
  config.evaluation.oracle_num_clusters = (4, 10)
  outcome = evaluate.evaluate(config, tiny_workdir)
  directory = outcome["directory"]
  table = outcome["table"]
  label_map_rows = {"cuts", "cuts_reconstruction_clusters", "cuts_raw_embedding", "cuts_cosine",
                    "random", "otsu", "otsu_watershed", "felzenszwalb", "slic", "kmeans_pixels",
                    "kmeans_smoothed", "colour_segments", "kmeans_smoothed_k_oracle",
                    "cuts_untrained", "patch_segments"}
  level_rows = set(evaluate.CLICK_ROWS) - label_map_rows
  # Among connected segments the clicked one can beat the one holding most expert pixels.
  connected_rows = {"cuts", "colour_segments", "cuts_untrained", "patch_segments"}
  assert set(table) == label_map_rows | level_rows
  for method, row in table.items():
    mean, std, count = row["dice"]
    assert 0.0 <= mean <= 1.0 and count == 3, method
    if method in label_map_rows - connected_rows:
      assert row["dice_majority"][0] >= mean - 1e-9, method  # Majority is optimistic.
    assert np.isfinite(row["ssim_within"][0]) and np.isfinite(row["rmse_within"][0])
  markdown = (directory / "results.md").read_text()
  assert "| cuts |" in markdown and "one-pixel" in markdown and "M=40" in markdown
  assert "_oracle" in markdown and "not label-free" in markdown
  with (directory / "per_image.csv").open() as stream:
    rows = list(csv.DictReader(stream))
  assert len(rows) == 3 * len(table)
  assert {"image", "method", "dice", "hd95", "ssim_within"} <= set(rows[0])
  # An oracle picks among choices that include the label-free row's own: never below it.
  dice = {(r["image"], r["method"]): float(r["dice"]) for r in rows}
  # (A scale rule's consensus need not be any one level, so only the colour oracle is paired.)
  for oracle, plain in [("kmeans_smoothed_k_oracle", "kmeans_smoothed")]:
    for image in {r["image"] for r in rows}:
      assert dice[(image, oracle)] >= dice[(image, plain)] - 1e-9, (oracle, image)
  assert (directory / "results.csv").exists() and (directory / "timing.json").exists()
  for figure in ("cuts.png", "methods.png", "scales.png"):
    assert (directory / figure).stat().st_size > 10_000


def test_evaluation_without_ground_truth_scores_patch_similarity(tiny_workdir):
  config = tiny.get_config()
  config.evaluation.patch_pixels = 30
  outcome = evaluate.evaluate(config, tiny_workdir, methods=["cuts", "random"], figures=False)
  assert set(outcome["table"]) == {"cuts", "random"}
  assert "dice" not in outcome["table"]["cuts"]
  # Even a barely trained encoder groups alike patches better than random labels.
  cuts, random = (outcome["table"][m]["ssim_within"][0] for m in ("cuts", "random"))
  assert cuts > random


def test_cuts_rows_segment_with_the_evaluation_settings_not_the_runs_own(tiny_workdir):
  # A fold threshold of a whole 32 x 32 image, set for the evaluation only (the run's
  # config.json keeps 30 px): every piece joins one segment, in `cuts`, its untrained twin and
  # the raw-patch control.
  config = tiny.get_config()
  config.evaluation.min_segment_pixels = 32 * 32
  rows = ["cuts", "cuts_untrained", "patch_segments"]
  outcome = evaluate.evaluate(config, tiny_workdir, methods=rows, figures=False)
  for method in rows:
    assert outcome["table"][method]["num_segments"][0] == 1, method
  default = evaluate.evaluate(tiny.get_config(), tiny_workdir, methods=["cuts"], figures=False)
  assert default["table"]["cuts"]["num_segments"][0] > 1


def test_unknown_method_is_refused(tiny_workdir):
  with pytest.raises(ValueError, match="unknown methods"):
    evaluate.evaluate(tiny.get_config(), tiny_workdir, methods=["cuts", "magic"])


def test_evaluate_cli_uses_the_workdirs_config(tiny_workdir):
  command = [sys.executable, "-m", "cuts_jax.apps.evaluate", f"--workdir={tiny_workdir}"]
  result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "[4/4]" in result.stderr and "| cuts |" in result.stderr
