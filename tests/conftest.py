"""Test set-up: two CPU devices (for the data-parallel tests) before JAX is imported; Qt offscreen."""

import os
import pathlib
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=2").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The napari tests draw nothing on a screen; OpenGL comes from the X display pytest-xvfb starts.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Figures are only saved: with a Qt binding installed and pytest-xvfb's DISPLAY set,
# matplotlib in a subprocess could otherwise pick its Qt backend and fail to open the display.
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # pylint: disable=g-import-not-at-top

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The configs/ folder is imported as a package, as `python -m cuts_jax.main` does from the root.
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))

from configs import tiny  # pylint: disable=g-import-not-at-top,wrong-import-position
from cuts_jax import train  # pylint: disable=g-import-not-at-top,wrong-import-position

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data(relative: str) -> pathlib.Path:
  """A path under ../shared/data, or skip the test with the reason."""
  path = SHARED_DATA / relative
  if not path.exists():
    pytest.skip(f"{path} is not present (the shared test data lives beside the repo).")
  return path


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory) -> pathlib.Path:
  """A workdir of configs/tiny.py trained for 2 steps, shared by the tests that only segment."""
  config = tiny.get_config()
  config.training.num_steps = 2
  workdir = tmp_path_factory.mktemp("tiny_workdir")
  train.train_and_evaluate(config, workdir)
  return workdir
