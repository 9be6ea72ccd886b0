"""Reading a trained model back from a training workdir: `load`.

Kept apart from `segmentation` because it needs orbax, which segmenting does not.
"""

from __future__ import annotations

import pathlib
from typing import Optional

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from cuts_jax import segmentation
from cuts_jax.runs import checkpointing

__all__ = ["load"]


def load(workdir: str | pathlib.Path, *,
         step: Optional[int] = None) -> segmentation.SegmentationParams:
  """Restores what `segment` needs from a training workdir.

  Args:
    workdir: the --workdir of a training run (holds config.json and checkpoints/).
    step: the checkpoint to load; the latest complete one by default.

  Raises:
    FileNotFoundError: when the workdir has no config.json or no checkpoint.
    ValueError: when config.json is damaged, the checkpoint cannot be read,
      or its weights do not fit the model config.json describes.
  """
  workdir = pathlib.Path(workdir).expanduser()
  config = checkpointing.read_config(workdir)
  if not (workdir / checkpointing.CHECKPOINT_DIR).is_dir():
    raise FileNotFoundError(f"{workdir} has no {checkpointing.CHECKPOINT_DIR}/ folder; train "
                            "first (python -m cuts_jax.main --workdir=...).")
  manager = checkpointing.checkpoint_manager(workdir, read_only=True)
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{workdir} holds no complete checkpoint yet; train longer "
                              "or wait for the first save (config.training.checkpoint_every).")
    if step not in manager.all_steps():
      raise FileNotFoundError(f"{workdir} has no checkpoint of step {step}; it has "
                              f"{sorted(manager.all_steps())}.")
    try:
      restored = manager.restore(step, args=ocp.args.StandardRestore())
      variables = jax.tree.map(jnp.asarray, {"params": restored["params"],
                                             "batch_stats": restored["batch_stats"]})
    except Exception as error:  # Orbax reports damaged files in many ways.
      raise ValueError(
          f"the checkpoint of step {step} in {workdir} cannot be read ({type(error).__name__}: "
          f"{error}); it is damaged or incomplete. Load another one with step= (this workdir "
          f"has {sorted(manager.all_steps())}).") from error
  finally:
    manager.close()
  return segmentation.SegmentationParams.from_variables(variables, config)
