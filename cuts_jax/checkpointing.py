"""Orbax checkpoints of the training state, and the config saved beside them."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Optional

import ml_collections
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


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


def restore(manager: ocp.CheckpointManager, abstract_state: Any,
            step: Optional[int] = None) -> Any:
  """Restores `step` (default: the latest complete one) into `abstract_state`'s structure."""
  step = manager.latest_step() if step is None else step
  return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))


def write_config(workdir: str | pathlib.Path, config: ml_collections.ConfigDict) -> None:
  path = pathlib.Path(workdir) / CONFIG_FILE
  temporary = path.with_suffix(".json.tmp")
  temporary.write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  temporary.replace(path)  # Atomic: a kill never leaves half a config.


def read_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  path = pathlib.Path(workdir).expanduser() / CONFIG_FILE
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found: {workdir} is not a cuts_jax training workdir "
                            "(train first with python -m cuts_jax.main --workdir=...).")
  return ml_collections.ConfigDict(json.loads(path.read_text()))
