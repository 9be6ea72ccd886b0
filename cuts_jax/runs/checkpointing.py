"""Orbax checkpoints, the config saved beside them, and the write check of output folders.

Nothing here unpickles or executes what it reads: checkpoints go through
orbax, config.json through `json`. `check_writable` lets a run fail at start,
not hours later, when its output folder cannot be written.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Optional

import ml_collections
import orbax.checkpoint as ocp

from cuts_jax import _validation
from cuts_jax import defaults

__all__ = ["CHECKPOINT_DIR", "CONFIG_FILE", "check_writable", "checkpoint_manager", "read_config",
           "restore", "save", "write_config"]

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"

# The config.json sections that loading a model or resuming a run reads.
_REQUIRED_SECTIONS = ("data", "model", "sampling")

# Bytes written by `check_writable`: enough to catch a disk that is full or
# nearly so, small enough to cost nothing.
_PROBE_BYTES = 1024 * 1024


def checkpoint_manager(workdir: str | pathlib.Path, *, max_to_keep: int = 3,
                       save_interval_steps: int = 1,
                       read_only: bool = False) -> ocp.CheckpointManager:
  """A manager of `workdir/checkpoints`; saves are asynchronous."""
  directory = pathlib.Path(workdir).expanduser().absolute() / CHECKPOINT_DIR
  if read_only:
    # Not orbax's read_only mode, which warns on every load; this manager is
    # simply never asked to save or delete.
    options = ocp.CheckpointManagerOptions(create=False)
  else:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                           save_interval_steps=save_interval_steps)
  return ocp.CheckpointManager(directory, options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any, *, force: bool = False) -> bool:
  """Starts an asynchronous save of `state` (a pytree of host or device arrays)."""
  return manager.save(step, args=ocp.args.StandardSave(state), force=force)


def restore(manager: ocp.CheckpointManager, abstract_state: Any, *,
            step: Optional[int] = None) -> Any:
  """Restores `step` (default: the latest complete one) into `abstract_state`'s structure.

  Raises:
    ValueError: when an array in the checkpoint has another shape than in
      `abstract_state`: the checkpoint belongs to a model of images with
      another channel count, or of another config.
  """
  step = manager.latest_step() if step is None else step
  expected = _validation.tree_shapes(abstract_state)
  # Orbax either refuses a shape mismatch with a message that does not say
  # why, or hands the arrays over as saved; compare before and after.
  saved = _saved_shapes(manager, step)
  if saved is not None:
    common = set(saved) & set(expected)  # Any difference in structure is orbax's to report.
    _check_shapes(step, manager, found={k: saved[k] for k in common},
                  expected={k: expected[k] for k in common})
  restored = manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
  _check_shapes(step, manager, found=_validation.tree_shapes(restored), expected=expected)
  return restored


def _saved_shapes(manager: ocp.CheckpointManager, step: int) -> Optional[dict[str, tuple]]:
  """The array shapes in checkpoint `step` from its metadata; None when it cannot be read."""
  directory = manager.directory / str(step) / ocp.checkpoint_manager.DEFAULT_ITEM_NAME
  try:
    return _validation.tree_shapes(ocp.StandardCheckpointHandler().metadata(directory))
  except Exception:  # pylint: disable=broad-except
    return None  # The restore itself then reports the damage.


def _check_shapes(step: int, manager: ocp.CheckpointManager, *, found: dict[str, tuple],
                  expected: dict[str, tuple]) -> None:
  """Raises ValueError naming the first array whose shape differs."""
  mismatch = _validation.first_shape_mismatch(expected, found)
  if mismatch is not None:
    name, wanted, saved = mismatch
    raise ValueError(
        f"checkpoint {step} in {manager.directory} holds {name} of shape {saved}; this run's "
        f"model needs {wanted}. It was trained on images with another channel count or with "
        "another model config: use a new --workdir, or the data and config it was trained "
        "with.")


def check_writable(directory: str | pathlib.Path, *, flag: str,
                   what: str = "") -> pathlib.Path:
  """Creates `directory` if needed and writes (then deletes) a 1 MB probe file.

  Run at start, so that an unwritable folder or a full disk stops a run now,
  not when its first results are due.

  Args:
    directory: the folder outputs will go to.
    flag: the command-line flag that chose it, named in the error.
    what: what the folder is (e.g. "the workdir"), named in the error.

  Returns:
    The directory as an absolute path.

  Raises:
    OSError: saying which folder and why (permissions, read-only, no space).
  """
  directory = pathlib.Path(directory).expanduser().absolute()
  probe = directory / f".write_probe_{os.getpid()}"
  try:
    directory.mkdir(parents=True, exist_ok=True)
    try:
      with probe.open("wb") as stream:
        stream.write(b"\0" * _PROBE_BYTES)
        stream.flush()
        os.fsync(stream.fileno())  # Some file systems report a full disk only here.
    finally:
      probe.unlink(missing_ok=True)
  except OSError as error:
    raise OSError(f"cannot write to {what + ' ' if what else ''}{directory} "
                  f"({error.strerror or error}); choose a "
                  f"writable folder with free space ({flag}).") from error
  return directory


def write_config(workdir: str | pathlib.Path, config: ml_collections.ConfigDict) -> None:
  """Writes `config` to `workdir/config.json` (what `read_config` reads back)."""
  path = pathlib.Path(workdir) / CONFIG_FILE
  temporary = path.with_suffix(".json.tmp")
  temporary.write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  temporary.replace(path)  # Atomic: a kill never leaves half a config.


def read_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The config a run saved in `workdir/config.json` (read as JSON, never executed).

  The saved values are laid over `cuts_jax.defaults.get_config()`, so a field
  added to the defaults after the run was trained takes its default value;
  fields the defaults do not know are kept.

  Raises:
    FileNotFoundError: there is no config.json.
    ValueError: it is not JSON, lacks the data/model/sampling sections, or
      holds a value of another type than the default's.
  """
  path = pathlib.Path(workdir).expanduser() / CONFIG_FILE
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found: {workdir} is not a cuts_jax training workdir "
                            "(train first with python -m cuts_jax.main --workdir=...).")
  try:
    values = json.loads(path.read_text())
  except (UnicodeDecodeError, json.JSONDecodeError) as error:
    raise ValueError(f"{path} is not valid JSON ({error}); it is damaged or was edited by "
                     "hand. Restore it from a copy, or train again in a new workdir.") from error
  missing = [s for s in _REQUIRED_SECTIONS if not isinstance(values, dict) or s not in values]
  if missing:
    raise ValueError(f"{path} lacks the config section(s) {missing}; it was not written by "
                     "cuts_jax or was edited by hand. Restore the run's own config.json.")
  return _over_defaults(values, path)


def _over_defaults(values: dict, path: pathlib.Path) -> ml_collections.ConfigDict:
  """`values` laid over the default config, field by field within each section.

  A saved field replaces the default's value whole (the baselines table too),
  so nothing the run did not have is merged into what it had.
  """
  config = defaults.get_config()
  assignments = []
  for key, value in values.items():
    if isinstance(value, dict) and isinstance(config.get(key), ml_collections.ConfigDict):
      assignments += [(config[key], f"{key}.{field}", field, v) for field, v in value.items()]
    else:
      assignments.append((config, key, key, value))
  for section, name, field, value in assignments:
    try:
      section[field] = value
    except TypeError as error:
      raise ValueError(f"{path}: config.{name} is {value!r}, which the default config cannot "
                       f"hold ({error}); it was edited by hand. Restore the run's own "
                       "config.json.") from error
  return config
