"""Test set-up: two CPU devices (for the data-parallel tests) before JAX is imported; Qt offscreen.

Shared fixtures (use these rather than training another model):

- `trained_run` (session): configs/tiny.py trained as `python -m cuts_jax.main`
  trains it (`train.train_and_evaluate` with the segment report, 4 steps,
  checkpoints 2 and 4), then read back with `cuts_jax.load`. A `TrainedRun`
  with `.workdir`, `.config`, `.params` (`SegmentationParams`) and `.state`
  (the final `TrainState`). Read-only: a test that writes into the workdir
  (evaluation/, config.json, checkpoints) copies it first, e.g. with
  `copy_workdir(trained_run.workdir, tmp_path / "copy")`.
- `tiny_workdir` (session): `trained_run.workdir`, for tests that need only the folder.
- `untrained_workdir` (session): a workdir as training leaves one (config.json,
  checkpoints 2 and 4, metrics.jsonl) holding untrained weights, step 4's
  shifted by 1 from step 2's; built without compiling a training step. Read-only too.

Tests marked `slow` (the determinism module's CLI runs with kill -9 and a full
disk, the two-process multi-host run, the quick benchmark, the notebook and the
run_cuts experiment) are left out by `python -m pytest -q -n auto -m "not slow"`; mark a
new test `slow` when it takes a minute or more.

The session, and the command-line programs its tests start, share one
persistent XLA compilation cache (a fresh folder per session): a test that
must train its own tiny model compiles nothing when its train step is one
already compiled (configs/tiny.py's, with its 4 steps, 3 channels, 32 x 32).
"""

import atexit
import dataclasses
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Any

# The backend's optimisation level 0: the tests' programs are tiny, so compiling them is most of
# their cost, and level 0 compiles a tiny train step about 3x faster (12.8 s -> 3.8 s on two busy
# cores) while running it no slower. Every program in a session, and in the command-line
# programs its tests start (with SUBPROCESS_XLA_FLAGS: one device, as a user runs them), is
# compiled the same way, so the tests' comparisons are unchanged.
SUBPROCESS_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=2 " +
                           SUBPROCESS_XLA_FLAGS).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The napari tests draw nothing on a screen; OpenGL comes from the X display pytest-xvfb starts.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Figures are only saved: with a Qt binding installed and pytest-xvfb's DISPLAY set,
# matplotlib in a subprocess could otherwise pick its Qt backend and fail to open the display.
os.environ.setdefault("MPLBACKEND", "Agg")
# One persistent XLA compilation cache per session, in a fresh folder removed at exit, shared
# with the command-line programs the tests start (they inherit the environment): each tiny
# training after the first loads its compiled step rather than compiling it again (~40 s on two
# busy cores, ~5x the rest of the run). A cached executable is the same program: no result
# changes. Only compilations over JAX's default second are cached.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _CACHE_DIR = tempfile.mkdtemp(prefix="cuts_jax_tests_xla_cache_")
  atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE_DIR

import pytest  # pylint: disable=g-import-not-at-top

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The configs/ folder is imported as a package, as `python -m cuts_jax.main` does from the root.
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import numpy as np

import cuts_jax
from configs import tiny
from cuts_jax import segmentation
from cuts_jax import step as step_lib
from cuts_jax import train
from cuts_jax.evaluation import report
from cuts_jax.runs import checkpointing
# pylint: enable=g-import-not-at-top,wrong-import-position

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data(relative: str) -> pathlib.Path:
  """A path under ../shared/data, or skip the test with the reason."""
  path = SHARED_DATA / relative
  if not path.exists():
    pytest.skip(f"{path} is not present (the shared test data lives beside the repo).")
  return path


def copy_workdir(workdir: pathlib.Path, destination: pathlib.Path) -> pathlib.Path:
  """A copy of a shared workdir at `destination`, for a test that writes into it."""
  shutil.copytree(workdir, destination)
  return destination


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """The session's tiny trained model (see `trained_run`)."""

  workdir: pathlib.Path
  config: Any
  params: segmentation.SegmentationParams
  state: step_lib.TrainState


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
  """configs/tiny.py trained for its 4 steps as the training CLI does, then loaded."""
  config = tiny.get_config()
  workdir = tmp_path_factory.mktemp("trained_run")
  state = train.train_and_evaluate(config, workdir,
                                   report=report.segment_report(config, workdir))
  return TrainedRun(workdir=workdir, config=config, params=cuts_jax.load(workdir), state=state)


@pytest.fixture(scope="session")
def tiny_workdir(trained_run) -> pathlib.Path:
  """The workdir of `trained_run` (read-only: copy it before writing into it)."""
  return trained_run.workdir


def write_untrained_workdir(workdir, *, config=None, channels=3) -> pathlib.Path:
  """A workdir as training leaves one (config.json, checkpoints 2 and 4, metrics.jsonl).

  Nothing is trained: the weights are the initial ones, those of step 4 shifted
  by 1 so that the two checkpoints differ. The tests that use it need the
  files, not a good model, and should not wait for a compilation.
  """
  workdir = pathlib.Path(workdir)
  config = config or tiny.get_config()
  state = step_lib.create_train_state(jax.random.key(config.seed), config,
                                      image_shape=(32, 32, channels))
  manager = checkpointing.checkpoint_manager(workdir,
                                             max_to_keep=config.training.keep_checkpoints)
  for step in (2, 4):
    saved = state.replace(step=np.asarray(step, np.int32),
                          params=jax.tree.map(lambda x, s=step: x + (s == 4), state.params))
    # The payload train.py saves, so these checkpoints are exactly a run's.
    payload = train._checkpoint_payload(saved)  # pylint: disable=protected-access
    checkpointing.save(manager, step, payload)
  manager.wait_until_finished()
  manager.close()
  checkpointing.write_config(workdir, config)
  (workdir / "metrics.jsonl").write_text('{"step": 2, "loss": 1.0}\n{"step": 4, "loss": 0.9}\n')
  return workdir


@pytest.fixture(scope="session")
def untrained_workdir(tmp_path_factory) -> pathlib.Path:
  """One `write_untrained_workdir` per session (read-only: copy it before writing into it)."""
  return write_untrained_workdir(tmp_path_factory.mktemp("untrained"))


def pytest_configure(config):
  """With `-n auto` (pytest-xdist), tests are handed to the workers two at a time as they free
  up, rather than in blocks of an eighth of the suite: the `slow` tests, collected first, then
  go to different workers instead of all to the first one."""
  if getattr(config.option, "maxschedchunk", False) is None:
    config.option.maxschedchunk = 1


def pytest_collection_modifyitems(items):
  """The `slow` tests first: they start at once rather than last, when one minute-long test
  would keep the other workers idle."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
