"""The benchmark script runs (a smoke run: tiny sizes, no timing assertions)."""

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_quick_benchmark_prints_the_headline_json():
  command = [sys.executable, "benchmarks/run.py", "--quick", "--json"]
  result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "XLA_FLAGS": ""})
  assert result.returncode == 0, result.stderr[-3000:]
  headline = json.loads(result.stdout.strip().splitlines()[-1])
  for key in ("train_step_s", "images_per_s", "segment_64_s", "segment_64_peak_mb",
              "segment_volume_s", "segment_volume_peak_mb", "pairs_fraction_of_step"):
    assert headline[key] > 0, key
  assert "| train step, default (batch 2" in result.stdout


def test_analytic_flops_of_the_paper_encoder():
  sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
  import run
  from configs import default
  flops = run.encoder_step_flops(default.get_config().model, batch=1, height=1, width=1,
                                 channels=3)
  # Per pixel: forward 2 * (15*15*3*32 + 11*11*32*64 + 7*7*64*128 + 128*128) = 1,374,400;
  # backward: weight gradients of all four layers plus input gradients of all but the first.
  forward = 2 * (21600 + 247808 + 401408 + 16384)
  backward = 2 * (21600 + 2 * 247808 + 2 * 401408 + 2 * 16384)
  assert flops == forward + backward
