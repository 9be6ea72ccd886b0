"""Training: the resumable CUTS training run (checkpoints, metrics, reports, stopping).

The step it repeats is `cuts_jax.step` (pure, pmapped in one place); which
images make each batch is `cuts_jax.batches`. The run knows nothing of metrics
or pictures: whoever starts it may hand it a `Report` to call now and then
(`cuts_jax.evaluation.report.segment_report` is the one `python -m
cuts_jax.main` hands it), and a `Progress` to call after every step, which may
ask the run to stop (the napari widget's Cancel button).
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Optional, Protocol

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cuts_jax import batches
from cuts_jax import model as model_lib
from cuts_jax import step as step_lib
from cuts_jax.io import datasets
from cuts_jax.runs import checkpointing
from cuts_jax.runs import metric_writers
from cuts_jax.runs import periodic

__all__ = ["NonFiniteLossError", "Progress", "Report", "train_and_evaluate"]


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the run stops rather than save garbage."""


class Report(Protocol):
  """What `train_and_evaluate` calls every `config.training.eval_every` steps and at the end.

  It runs on process 0 only, with the state fetched to the host; its time is
  left out of the steps/s the run reports.
  """

  def __call__(self, state: step_lib.TrainState, *, step: int, dataset: datasets.Dataset,
               writer: metric_writers.MetricWriter) -> None:
    ...


class Progress(Protocol):
  """What `train_and_evaluate` calls after every step; returning True stops the run.

  On a stop the run saves a checkpoint of the step just done (unless it was
  just saved) and returns its state, so a later run resumes from there. The
  step's result is waited for before each call, so `steps_per_s` measures
  finished work; it is 0.0 until a second step of this run has finished
  (the first includes compilation). Every process of a multi-host run calls
  its own, and all must ask to stop at the same step.
  """

  def __call__(self, *, step: int, num_steps: int, steps_per_s: float) -> bool:
    ...


def _checkpoint_payload(state: step_lib.TrainState) -> dict[str, Any]:
  return {"step": state.step, "params": state.params, "batch_stats": state.batch_stats,
          "opt_state": state.opt_state}


def _restore_state(manager, state: step_lib.TrainState, *, step: Optional[int] = None) -> step_lib.TrainState:
  """`state` with the contents of checkpoint `step` (default: latest)."""
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)),
                          _checkpoint_payload(state))
  restored = checkpointing.restore(manager, abstract, step=step)
  return state.replace(**restored)


def _check_workdir(workdir: pathlib.Path) -> None:
  """Fails now, not hours from now, when the workdir cannot be written."""
  checkpointing.check_writable(workdir, flag="--workdir", what="the workdir")


def _check_compatible(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
  """Refuses to resume from checkpoints of a different model."""
  if not (workdir / checkpointing.CONFIG_FILE).exists():
    return
  saved = checkpointing.read_config(workdir)
  fields = [("model", name) for name in model_lib.ARCHITECTURE_FIELDS]
  fields.append(("sampling", "patch_size"))  # Sets the reconstruction head's shape.
  for section, field in fields:
    old, new = saved[section][field], config[section][field]
    as_json = lambda value: json.loads(json.dumps(value))  # Tuples and lists alike.
    if as_json(old) != as_json(new):
      raise ValueError(
          f"{workdir} holds a run with a different config.{section}.{field} ({old} there, "
          f"{new} now); its checkpoints cannot be resumed with this config. Use a new "
          "--workdir or the saved config.")


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  hours, rest = divmod(seconds, 3600)
  return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _check_finite(metrics: dict[str, float], step: int, last_saved: Optional[int]) -> None:
  if all(math.isfinite(v) for v in metrics.values()):
    return
  values = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
  resume = (f"the last checkpoint is step {last_saved}" if last_saved is not None
            else "no checkpoint was saved")
  raise NonFiniteLossError(
      f"the loss became non-finite at step {step} ({values}); the run stopped and {resume}. "
      "Lower config.optim.learning_rate or check the input images for NaN/Inf values.")


class _StepRate:
  """Steps per second over the steps since this run's first (which includes compiling)."""

  def __init__(self):
    self._first: Optional[tuple[int, float]] = None

  def after(self, step: int) -> float:
    now = time.perf_counter()
    if self._first is None:
      self._first = (step, now)
      return 0.0
    first_step, first_time = self._first
    return (step - first_step) / max(now - first_time, 1e-9)


def _maybe_initialize_distributed(config: ml_collections.ConfigDict) -> None:
  """Joins a multi-host run when config.distributed.initialize is set."""
  dist = config.distributed
  if not dist.initialize:
    return
  # CPU processes exchange gradients over TCP (gloo); accelerators use their
  # own links and ignore this.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = dict(heartbeat_timeout_seconds=dist.heartbeat_timeout_s)
  if dist.coordinator_address:
    kwargs.update(coordinator_address=dist.coordinator_address,
                  num_processes=dist.num_processes, process_id=dist.process_id)
  jax.distributed.initialize(**kwargs)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       report: Optional[Report] = None,
                       dataset: Optional[datasets.Dataset] = None,
                       progress: Optional[Progress] = None) -> step_lib.TrainState:
  """Trains CUTS as `config` says, checkpointing to and resuming from `workdir`.

  Writes `workdir/config.json`, `workdir/metrics.jsonl` (one JSON object per
  logged step; TensorBoard events too when tensorboardX is installed) and
  orbax checkpoints in `workdir/checkpoints`. A re-run with the same workdir
  resumes from the latest complete checkpoint.

  Args:
    config: the run's config (e.g. `configs/retina.py`'s `get_config()`).
    workdir: the run's folder, created when missing.
    report: called every `config.training.eval_every` steps and at the end
      (see `Report`); None: no report. For Dice and `workdir/segments.png`
      as the command line gives them, pass
      `cuts_jax.evaluation.report.segment_report(config, workdir)`.
    dataset: the images to train on (e.g. `datasets.from_arrays(images)`,
      with `config.data.kind = "arrays"`); None: load what `config.data`
      names. In a multi-host run, each process hands in its own share.
    progress: called after every step (see `Progress`); it may stop the run.

  Returns:
    The final training state, on the host (not replicated): that of the
    last step done when `progress` stopped the run.
  """
  workdir = pathlib.Path(workdir).expanduser().absolute()
  _check_workdir(workdir)
  _check_compatible(workdir, config)
  _maybe_initialize_distributed(config)

  num_devices = jax.local_device_count()
  global_batch = config.training.batch_size
  host_batch, remainder = divmod(global_batch, jax.process_count())
  if remainder or host_batch % num_devices:
    raise ValueError(f"config.training.batch_size ({global_batch}) must be a multiple of the "
                     f"number of devices ({jax.device_count()}).")
  settings = step_lib.StepSettings.from_config(config)  # Checked before any data is read.
  if dataset is None:
    dataset = datasets.load_dataset(config.data, shard_index=jax.process_index(),
                                    shard_count=jax.process_count())
  image_shape = dataset.images.shape[1:]
  crop = settings.crop_size
  trained_shape = tuple(min(crop, s) if crop else s for s in image_shape[:2])
  settings.sampling.check_image_size(trained_shape)
  settings.loss.check_image_size(trained_shape)
  logging.info("Loaded %d images of shape %s (%s); training on %d device(s) of %s.",
               len(dataset), image_shape, config.data.kind, jax.device_count(),
               jax.devices()[0].platform)

  base_key = jax.random.key(config.seed)
  init_key, train_key = jax.random.split(base_key)
  state = step_lib.create_train_state(init_key, config, image_shape=image_shape)
  manager = checkpointing.checkpoint_manager(
      workdir, max_to_keep=config.training.keep_checkpoints,
      save_interval_steps=1)
  start_step = 0
  if manager.latest_step() is not None:
    state = _restore_state(manager, state)
    start_step = int(state.step)
    logging.info("Resumed from the checkpoint of step %d in %s.", start_step, workdir)
  if jax.process_index() == 0:
    checkpointing.write_config(workdir, config)

  num_steps = config.training.num_steps
  data_on_device = config.training.data_on_device and batches.fits_on_devices(
      dataset.images.nbytes, [d.memory_stats() for d in jax.local_devices()])
  p_train_step = step_lib.parallel_train_step(settings, data_on_device=data_on_device)
  replicated = step_lib.replicate(state)
  step_inputs = batches.step_inputs(
      dataset.images, batch_size=host_batch, seed=config.seed * 1000003 + jax.process_index(),
      start_step=start_step, num_devices=num_devices, data_on_device=data_on_device)
  # XLA's CPU collectives can deadlock when several steps are in flight.
  wait_each_step = num_devices > 1 and jax.devices()[0].platform == "cpu"
  last_saved = manager.latest_step()
  writer = metric_writers.MetricWriter(workdir, enabled=jax.process_index() == 0)
  timer_step, timer_start = start_step, time.perf_counter()
  rate = _StepRate()
  try:
    for step in range(start_step + 1, num_steps + 1):
      replicated, metrics = p_train_step(replicated, *next(step_inputs), train_key)
      if wait_each_step or progress is not None:
        jax.block_until_ready(metrics)
      stop = progress is not None and bool(progress(
          step=step, num_steps=num_steps, steps_per_s=rate.after(step)))
      log_now = periodic.is_due(step, config.training.log_every, last_step=num_steps)
      save_now = (periodic.is_due(step, config.training.checkpoint_every, last_step=num_steps)
                  or stop)
      report_now = periodic.is_due(step, config.training.eval_every, last_step=num_steps)
      if log_now or save_now:
        host_metrics = {k: float(v) for k, v in step_lib.unreplicate(metrics).items()}
        _check_finite(host_metrics, step, last_saved)
      if log_now:
        elapsed = time.perf_counter() - timer_start
        steps_per_s = (step - timer_step) / max(elapsed, 1e-9)
        host_metrics.update(steps_per_s=steps_per_s, images_per_s=steps_per_s * global_batch)
        timer_step, timer_start = step, time.perf_counter()
        writer.write_scalars(step, host_metrics)
        logging.info(
            "step %d/%d  loss %.4f (contrastive %.4f, reconstruction %.5f)  valid anchors "
            "%.2f  %.2f steps/s  time left %s", step, num_steps, host_metrics["loss"],
            host_metrics["contrastive_loss"], host_metrics["reconstruction_loss"],
            host_metrics["valid_anchor_fraction"], steps_per_s,
            _format_duration((num_steps - step) / max(steps_per_s, 1e-9)))
      if save_now:
        checkpointing.save(manager, step, _checkpoint_payload(step_lib.unreplicate(replicated)))
        last_saved = step
      if report is not None and report_now and jax.process_index() == 0:
        tick = time.perf_counter()
        report(step_lib.unreplicate(replicated), step=step, dataset=dataset, writer=writer)
        timer_start += time.perf_counter() - tick  # Keep reports out of steps/s.
      if stop:
        logging.info("Stopped on request after step %d of %d; its checkpoint is saved.", step,
                     num_steps)
        break
  finally:
    # An asynchronous save must finish before the process exits.
    manager.wait_until_finished()
    manager.close()
    writer.close()
  return step_lib.unreplicate(replicated)
