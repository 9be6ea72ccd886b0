"""The benchmark script runs, and its figures agree with one another (no timing assertions)."""

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from conftest import SUBPROCESS_XLA_FLAGS


def _benchmark_module():
  sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
  import run  # pylint: disable=import-outside-toplevel
  return run


@pytest.mark.slow
def test_quick_benchmark_prints_consistent_headline_figures():
  command = [sys.executable, "benchmarks/run.py", "--quick", "--json"]
  result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "XLA_FLAGS": SUBPROCESS_XLA_FLAGS})
  assert result.returncode == 0, result.stderr[-3000:]
  headline = json.loads(result.stdout.strip().splitlines()[-1])
  assert {"train_step_s", "images_per_s", "gflop_per_s", "segment_64_s", "segment_64_peak_mb",
          "segment_volume_s", "segment_volume_peak_mb", "segment_volume_stack_edit_s",
          "pairs_fraction_of_step"} <= set(headline)
  assert all(math.isfinite(v) and v > 0 for v in headline.values()), headline
  # --quick: batch 2 of 32 x 32 images through the (5, 3) / (8, 16) encoder. The rates are
  # those of the step time, and the GFLOP/s those of the encoder's analytic count.
  step_s = headline["train_step_s"]
  assert headline["images_per_s"] == pytest.approx(2 / step_s, rel=1e-9)
  from configs import default  # pylint: disable=import-outside-toplevel
  model = default.get_config().model
  model.kernel_sizes, model.features, model.embedding_dim = (5, 3), (8, 16), 16
  flops = _benchmark_module().encoder_step_flops(model, batch=2, height=32, width=32,
                                                 channels=3)
  assert headline["gflop_per_s"] == pytest.approx(flops / step_s / 1e9, rel=1e-9)
  # Peak memory in MB (a process with JAX loaded holds well over 50 MB; kB or bytes would
  # be far off).
  for key in ("segment_64_peak_mb", "segment_volume_peak_mb"):
    assert 50 < headline[key] < 64_000, (key, headline[key])
  # The table printed before it shows the same step time.
  assert "| train step, default (batch 2" in result.stdout
  assert f"train_step[default]: {step_s:.3f} s/step" in result.stdout


def test_analytic_flops_of_the_paper_encoder():
  run = _benchmark_module()
  from configs import default  # pylint: disable=import-outside-toplevel
  flops = run.encoder_step_flops(default.get_config().model, batch=1, height=1, width=1,
                                 channels=3)
  # Per pixel: forward 2 * (15*15*3*32 + 11*11*32*64 + 7*7*64*128 + 128*128) = 1,374,400;
  # backward: weight gradients of all four layers plus input gradients of all but the first.
  forward = 2 * (21600 + 247808 + 401408 + 16384)
  backward = 2 * (21600 + 2 * 247808 + 2 * 401408 + 2 * 16384)
  assert flops == forward + backward
