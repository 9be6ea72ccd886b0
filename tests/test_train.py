"""The resumable training run: checkpoints, metrics, reports, resuming, stopping, failing early."""

import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import tiny
from conftest import REPO_ROOT
from conftest import SUBPROCESS_XLA_FLAGS
from conftest import copy_workdir
from cuts_jax import train
from cuts_jax import trained
from cuts_jax.evaluation import report
from cuts_jax.io import datasets as data
from cuts_jax.runs import checkpointing
from cuts_jax.runs import periodic


def test_periodic_is_due():
  due = [s for s in range(1, 11) if periodic.is_due(s, 4, last_step=10)]
  assert due == [4, 8, 10]
  assert [s for s in range(1, 4) if periodic.is_due(s, 0, last_step=3)] == [3]


def _checkpoint_steps(workdir):
  return sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_training_run_writes_and_resumes(trained_run, tmp_path):
  # The session's run: configs/tiny.py trained for 4 steps as the command line does.
  assert int(trained_run.state.step) == 4
  workdir = copy_workdir(trained_run.workdir, tmp_path / "run")
  assert _checkpoint_steps(workdir) == ["2", "4"]
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4]
  assert {"loss", "contrastive_loss", "reconstruction_loss", "valid_anchor_fraction",
          "steps_per_s", "learning_rate"} <= set(lines[0])
  saved = checkpointing.read_config(workdir)
  assert saved.training.num_steps == 4 and tuple(saved.model.kernel_sizes) == (5, 3)

  # A longer run in the same workdir continues from step 4; its report draws the segments.
  config = tiny.get_config()
  config.training.num_steps = 6
  config.training.num_figure_images = 2
  resumed = train.train_and_evaluate(config, workdir,
                                     report=report.segment_report(config, workdir))
  assert int(resumed.step) == 6
  assert (workdir / "segments.png").stat().st_size > 5_000
  assert _checkpoint_steps(workdir) == ["4", "6"]  # keep_checkpoints = 2.
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4, 6]


def test_images_handed_in_train_with_progress_that_can_stop_the_run_with_a_checkpoint(
    tmp_path):
  config = tiny.get_config()
  config.data.kind = "arrays"
  config.training.checkpoint_every = 10  # No periodic save before the stop.
  rng = np.random.default_rng(0)
  # Four gray images: the data set test_medical.py trains on has the same shape, so the two
  # share one compiled step (conftest's compilation cache).
  images = [rng.integers(0, 256, (32, 32), dtype=np.uint8) for _ in range(4)]
  calls = []

  def progress(*, step, num_steps, steps_per_s):
    calls.append((step, num_steps, steps_per_s))
    return step == 3

  state = train.train_and_evaluate(config, tmp_path, dataset=data.from_arrays(images),
                                   progress=progress)
  assert [c[:2] for c in calls] == [(1, 4), (2, 4), (3, 4)]
  assert calls[0][2] == 0.0 and all(rate > 0 for _, _, rate in calls[1:])
  assert int(state.step) == 3
  manager = checkpointing.checkpoint_manager(tmp_path, read_only=True)
  assert manager.all_steps() == [3]
  manager.close()
  params = trained.load(tmp_path)
  assert params.channels == 1 and params.image_size == (32, 32)  # Gray images, one channel.
  assert checkpointing.read_config(tmp_path).data.kind == "arrays"


def test_resuming_with_a_different_model_is_refused(trained_run, tmp_path):
  workdir = copy_workdir(trained_run.workdir, tmp_path / "copy")
  config = tiny.get_config()
  config.training.num_steps = 6
  config.model.features = (8, 32)
  with pytest.raises(ValueError, match="different config.model.features"):
    train.train_and_evaluate(config, workdir)
  assert _checkpoint_steps(workdir) == ["2", "4"]  # Refused before training.


def test_non_finite_loss_stops_the_run(tmp_path):
  config = tiny.get_config()
  config.optim.learning_rate = float("nan")
  with pytest.raises(train.NonFiniteLossError, match="non-finite at step 2"):
    train.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "checkpoints" / "2").exists()


def test_unwritable_workdir_fails_at_start(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(OSError, match="cannot write to the workdir"):
    train.train_and_evaluate(tiny.get_config(), blocker / "workdir")


def _cli(workdir, *overrides):
  command = [sys.executable, "-m", "cuts_jax.main", "--config=configs/tiny.py",
             f"--workdir={workdir}", *overrides]
  environment = {**os.environ, "XLA_FLAGS": SUBPROCESS_XLA_FLAGS, "PYTHONUNBUFFERED": "1"}
  return subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def test_cli_reports_a_missing_data_set(tmp_path):
  process = _cli(tmp_path, "--config.data.kind=retina",
                 f"--config.data.root={tmp_path / 'absent'}")
  output = process.communicate(timeout=120)[0]
  assert process.returncode != 0
  assert "retina GA data set not found" in output and "--config.data.root" in output
