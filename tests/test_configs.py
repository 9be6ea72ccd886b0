"""Every shipped config loads, validates, and documents how to run it."""

import importlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from configs import tiny
from conftest import REPO_ROOT
from conftest import SUBPROCESS_XLA_FLAGS
from test_console import ABSL_PREFIX
from cuts_jax import defaults
from cuts_jax import model as model_lib
from cuts_jax import sampling
from cuts_jax.runs import checkpointing

CONFIG_NAMES = sorted(p.stem for p in (REPO_ROOT / "configs").glob("*.py")
                      if p.stem != "__init__")


def test_the_named_configs_exist():
  assert {"default", "berkeley", "retina", "brain_ventricles", "tiny", "demo"} <= set(
      CONFIG_NAMES)


@pytest.mark.parametrize("name", CONFIG_NAMES)
@pytest.mark.parametrize("preset", ["paper", "authors_code"])
def test_config_is_valid(name, preset):
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config(preset)
  model_lib.validate_model_config(config.model)
  sampling.validate_sampling_config(config.sampling, tuple(config.data.image_size))
  assert config.training.batch_size % 2 == 0  # Splits over 2 (and 1) devices.
  if name != "default":
    assert "python -m cuts_jax.main" in module.__doc__


def test_an_old_config_json_is_read_over_the_defaults(tmp_path):
  """Fields added since a run was saved take their defaults; saved values win, whole."""
  saved = json.loads(tiny.get_config().to_json())
  del saved["evaluation"]["ergas_floor"], saved["model"]["weight_gradient"], saved["distributed"]
  saved["evaluation"]["baselines"] = {"random": {"num_segments": 3}}
  (tmp_path / checkpointing.CONFIG_FILE).write_text(json.dumps(saved))
  config = checkpointing.read_config(tmp_path)
  assert config.evaluation.ergas_floor == defaults.get_config().evaluation.ergas_floor
  assert config.model.weight_gradient == "auto" and not config.distributed.initialize
  assert tuple(config.model.kernel_sizes) == (5, 3)  # The run's own model, not the default's.
  assert config.evaluation.baselines.to_dict() == {"random": {"num_segments": 3}}
  saved["data"]["image_size"] = "large"
  (tmp_path / checkpointing.CONFIG_FILE).write_text(json.dumps(saved))
  with pytest.raises(ValueError, match="config.data.image_size is 'large'"):
    checkpointing.read_config(tmp_path)


def test_a_config_file_runs_from_any_working_directory(tmp_path):
  """No `configs` on the path: the file imports cuts_jax.defaults. The console stays quiet."""
  command = [sys.executable, "-m", "cuts_jax.main", f"--config={REPO_ROOT / 'configs/retina.py'}",
             f"--workdir={tmp_path / 'run'}", f"--config.data.root={tmp_path / 'absent'}"]
  # Every backend is probed (JAX_PLATFORMS unset), as on a user's machine.
  environment = {**os.environ, "XLA_FLAGS": SUBPROCESS_XLA_FLAGS, "JAX_PLATFORMS": ""}
  result = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=180, check=False)
  lines = (result.stdout + result.stderr).splitlines()
  assert result.returncode == 1, lines
  assert lines[-1].startswith("cuts_jax.main: error: the retina GA data set not found"), lines
  assert not [line for line in lines if ABSL_PREFIX.match(line) or "backend" in line], lines
