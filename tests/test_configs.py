"""Every shipped config loads, validates, and documents how to run it."""

import importlib
import pathlib

import pytest

from conftest import REPO_ROOT
from cuts_jax import model as model_lib
from cuts_jax import sampling

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
