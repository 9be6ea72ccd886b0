"""Training: the pure CUTS train step, its data-parallel form, and the training run.

The run knows nothing of metrics or pictures: whoever starts it may hand it a
`Report` to call now and then (`cuts_jax.evaluation.report.segment_report` is
the one `python -m cuts_jax.main` hands it), and a `Progress` to call after
every step, which may ask the run to stop (the napari widget's Cancel button).
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import math
import pathlib
import time
from typing import Any, Callable, Optional, Protocol

from absl import logging
from flax import jax_utils
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cuts_jax import losses
from cuts_jax import model as model_lib
from cuts_jax import sampling
from cuts_jax.io import datasets
from cuts_jax.runs import checkpointing
from cuts_jax.runs import metric_writers
from cuts_jax.runs import periodic

__all__ = ["DEVICE_AXIS", "NonFiniteLossError", "Progress", "Report", "TrainState",
           "create_train_state", "fits_on_devices", "learning_rate_schedule", "make_optimizer",
           "parallel_train_step", "replicate", "shard_batch", "train_and_evaluate", "train_step",
           "unreplicate"]

# The pmap axis over which the batch is split; batch norm statistics,
# gradients and metrics are averaged over it.
DEVICE_AXIS = "batch"

# A data set is kept on each device when every replica takes at most this
# share of the device's free memory (the rest is the step's), or, on devices
# that report no memory figures (CPU), when it is at most this many bytes.
_DEVICE_DATA_SHARE = 0.25
_DEVICE_DATA_BYTES_WITHOUT_STATS = 1 << 30
# Batches put on the devices ahead of the step that uses them.
_PREFETCH_DEPTH = 2


class TrainState(train_state.TrainState):
  """Parameters, optimizer state, step, and the batch-norm running statistics."""

  batch_stats: Any


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the run stops rather than save garbage."""


class Report(Protocol):
  """What `train_and_evaluate` calls every `config.training.eval_every` steps and at the end.

  It runs on process 0 only, with the state fetched to the host; its time is
  left out of the steps/s the run reports.
  """

  def __call__(self, state: TrainState, *, step: int, dataset: datasets.Dataset,
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


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW with linear warm-up then cosine decay of the learning rate."""
  return optax.adamw(learning_rate=learning_rate_schedule(config),
                     weight_decay=config.optim.weight_decay)


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Step -> learning rate: linear warm-up to `config.optim.learning_rate`, then cosine decay."""
  optim = config.optim
  total = max(config.training.num_steps, 1)
  warmup = min(optim.warmup_steps, total - 1) if total > 1 else 0
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=optim.learning_rate, warmup_steps=warmup,
      decay_steps=total, end_value=optim.learning_rate * optim.final_learning_rate_fraction)


def create_train_state(key: jax.Array, config: ml_collections.ConfigDict, *,
                       image_shape: tuple[int, int, int]) -> TrainState:
  """A freshly initialised state for images of shape (H, W, C)."""
  model = model_lib.build_model(config, channels=image_shape[-1])
  variables = jax.jit(functools.partial(model.init, train=False))(
      key, jnp.zeros((1,) + tuple(image_shape), jnp.float32))
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           batch_stats=variables["batch_stats"], tx=make_optimizer(config))


def _gather_pixels(embeddings: jax.Array, rows_cols: jax.Array) -> jax.Array:
  """embeddings (H, W, D), rows_cols int (..., 2) -> (..., D)."""
  return embeddings[rows_cols[..., 0], rows_cols[..., 1]]


def _random_crop(key: jax.Array, image: jax.Array, *, size: int) -> jax.Array:
  """A random (size, size) window of an (H, W, C) image (the whole side if smaller)."""
  height, width, channels = image.shape
  crop_h, crop_w = min(size, height), min(size, width)
  row_key, col_key = jax.random.split(key)
  top = jax.random.randint(row_key, (), 0, height - crop_h + 1)
  left = jax.random.randint(col_key, (), 0, width - crop_w + 1)
  return jax.lax.dynamic_slice(image, (top, left, 0), (crop_h, crop_w, channels))


def train_step(state: TrainState, batch: jax.Array, key: jax.Array, *,
               config: ml_collections.ConfigDict,
               axis_name: Optional[str] = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One CUTS update on a batch of images.

  Pure: pair selection, SSIM, both losses and the optimizer update all run in
  the compiled step. Each image draws its pairs from a key folded from `key`,
  the step number and the image's index in the global batch, so the update
  does not depend on how the batch is split over devices, and a resumed run
  continues the same random stream.

  Args:
    state: the training state (one device's replica under pmap).
    batch: float32 (b, H, W, C) images in [0, 1]; this device's part of the
      global batch. With config.training.crop_size, the step trains on one
      random square crop of each image (less computation; the loss is the
      same per crop).
    key: the run's base PRNG key (the same on every device).
    config: the run's config (static).
    axis_name: the pmap axis when run data-parallel (batch norm, gradients
      and metrics are averaged over it); None on one device without pmap,
      e.g. `jax.jit(functools.partial(train_step, config=config))`.

  Returns:
    The updated state and the step's metrics (averaged over devices).
  """
  local_batch = batch.shape[0]
  first_index = 0 if axis_name is None else jax.lax.axis_index(axis_name) * local_batch
  step_key = jax.random.fold_in(key, state.step)
  image_keys = jax.vmap(lambda index: jax.random.fold_in(step_key, index))(
      first_index + jnp.arange(local_batch))
  crop_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(image_keys)
  pair_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(image_keys)
  images = batch
  if config.training.crop_size:
    images = jax.vmap(functools.partial(_random_crop, size=config.training.crop_size))(
        crop_keys, batch)
  pairs = jax.vmap(functools.partial(
      sampling.select_pairs, **sampling.sampling_kwargs(config.sampling)))(pair_keys, images)

  def loss_fn(params):
    embeddings, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, images, train=True,
        axis_name=axis_name, mutable=["batch_stats"])
    embeddings = embeddings.astype(jnp.float32)
    gather = jax.vmap(_gather_pixels)
    anchors = gather(embeddings, pairs.anchor_rc)
    per_positive = jax.vmap(functools.partial(
        losses.info_nce_per_positive, temperature=config.loss.temperature))(
            anchors, gather(embeddings, pairs.positive_rc),
            gather(embeddings, pairs.negative_rc), pairs.negative_mask)
    contrastive = losses.masked_mean(per_positive, pairs.positive_mask, axis_name=axis_name)
    reconstructions = state.apply_fn({"params": params}, anchors,
                                     method=model_lib.CUTSModel.reconstruct)
    reconstruction = jnp.mean(losses.reconstruction_error(pairs.anchor_patches,
                                                          reconstructions))
    loss = losses.total_loss(contrastive, reconstruction,
                             lambda_contrastive=config.loss.lambda_contrastive,
                             lambda_reconstruction=config.loss.lambda_reconstruction)
    return loss, (updates["batch_stats"], contrastive, reconstruction)

  (loss, (batch_stats, contrastive, reconstruction)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  metrics = {
      "loss": loss,
      "contrastive_loss": contrastive,
      "reconstruction_loss": reconstruction,
      "valid_anchor_fraction": jnp.mean(pairs.valid_anchor.astype(jnp.float32)),
      "pairs_per_anchor": jnp.mean(jnp.sum(pairs.positive_mask, axis=-1).astype(jnp.float32)),
      "learning_rate": learning_rate_schedule(config)(state.step),
  }
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
    batch_stats = jax.lax.pmean(batch_stats, axis_name)
    metrics = jax.lax.pmean(metrics, axis_name)
  return state.apply_gradients(grads=grads, batch_stats=batch_stats), metrics


def _gathered_train_step(state: TrainState, images: jax.Array, indices: jax.Array,
                         key: jax.Array, **kwargs) -> tuple[TrainState, dict[str, jax.Array]]:
  """`train_step` on the batch `images[indices]` of a data set held on the device."""
  return train_step(state, images[indices], key, **kwargs)


def parallel_train_step(config: ml_collections.ConfigDict, *,
                        data_on_device: bool = False) -> Callable:
  """`train_step` compiled and data-parallel over all local devices (jax.pmap).

  The returned function takes a replicated state, the batch, and the base
  key (not replicated), and donates the old state's buffers (the new state
  takes their memory). The batch is images of shape (local_devices,
  per_device_batch, H, W, C); with `data_on_device`, it is instead the data
  set replicated on every device, (local_devices, N, H, W, C), and int
  indices (local_devices, per_device_batch) of each device's images, so that
  no image crosses from the host after the start. This is the only place the
  step is parallelised; one device is the special case of one replica.
  """
  kwargs = dict(config=config, axis_name=DEVICE_AXIS)
  if data_on_device:
    return jax.pmap(functools.partial(_gathered_train_step, **kwargs), axis_name=DEVICE_AXIS,
                    in_axes=(0, 0, 0, None), donate_argnums=(0,))
  return jax.pmap(functools.partial(train_step, **kwargs), axis_name=DEVICE_AXIS,
                  in_axes=(0, 0, None), donate_argnums=(0,))


def fits_on_devices(num_bytes: int, memory_stats: list[Optional[dict]]) -> bool:
  """Whether a data set of `num_bytes` can be kept whole on each of these devices.

  Args:
    num_bytes: the data set's size.
    memory_stats: `device.memory_stats()` of each local device (None where
      the device reports none, as CPUs do).

  Returns:
    True when it takes at most a quarter of every device's free memory, or
    at most 1 GiB on devices without memory figures.
  """
  for stats in memory_stats:
    if not stats or "bytes_limit" not in stats:
      if num_bytes > _DEVICE_DATA_BYTES_WITHOUT_STATS:
        return False
      continue
    free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
    if num_bytes > _DEVICE_DATA_SHARE * free:
      return False
  return True


def _device_batch_sharding(num_devices: int) -> jax.sharding.Sharding:
  """The layout the pmapped step gives its per-device inputs (leading axis: devices)."""
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:num_devices]), (DEVICE_AXIS,))
  return jax.NamedSharding(mesh, jax.P(DEVICE_AXIS))


def _prefetched(batches, sharding: jax.sharding.Sharding):
  """Puts each host batch on the devices `_PREFETCH_DEPTH` steps before it is used."""
  queue = collections.deque()
  for batch in batches:
    queue.append(jax.device_put(batch, sharding))
    if len(queue) == _PREFETCH_DEPTH:
      yield queue.popleft()


def shard_batch(images: np.ndarray, num_devices: int) -> np.ndarray:
  """(B, H, W, C) -> (num_devices, B // num_devices, H, W, C)."""
  if images.shape[0] % num_devices:
    raise ValueError(f"the batch of {images.shape[0]} images cannot be split evenly over "
                     f"{num_devices} devices; set config.training.batch_size to a multiple "
                     f"of {num_devices}.")
  return images.reshape((num_devices, -1) + images.shape[1:])


def replicate(tree: Any) -> Any:
  """Copies a host pytree to every local device, laid out as the pmapped step's outputs.

  Matching the step's output layout (mesh axis DEVICE_AXIS) means the second
  call of the step reuses the first compilation instead of compiling again.
  """
  return jax_utils.replicate(tree, axis_name=DEVICE_AXIS)


def unreplicate(tree: Any) -> Any:
  """The first replica of a pmapped pytree, fetched to the host."""
  return jax.device_get(jax.tree.map(lambda x: x[0], tree))


def _checkpoint_payload(state: TrainState) -> dict[str, Any]:
  return {"step": state.step, "params": state.params, "batch_stats": state.batch_stats,
          "opt_state": state.opt_state}


def _restore_state(manager, state: TrainState, *, step: Optional[int] = None) -> TrainState:
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
                       progress: Optional[Progress] = None) -> TrainState:
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
  if dataset is None:
    dataset = datasets.load_dataset(config.data, shard_index=jax.process_index(),
                                    shard_count=jax.process_count())
  image_shape = dataset.images.shape[1:]
  crop = config.training.crop_size
  sampling.validate_sampling_config(
      config.sampling, tuple(min(crop, s) if crop else s for s in image_shape[:2]))
  logging.info("Loaded %d images of shape %s (%s); training on %d device(s) of %s.",
               len(dataset), image_shape, config.data.kind, jax.device_count(),
               jax.devices()[0].platform)

  base_key = jax.random.key(config.seed)
  init_key, train_key = jax.random.split(base_key)
  state = create_train_state(init_key, config, image_shape=image_shape)
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
  data_on_device = config.training.data_on_device and fits_on_devices(
      dataset.images.nbytes, [d.memory_stats() for d in jax.local_devices()])
  p_train_step = parallel_train_step(config, data_on_device=data_on_device)
  replicated = replicate(state)
  batch_seed = config.seed * 1000003 + jax.process_index()
  if data_on_device:
    device_images = replicate(dataset.images)
    step_inputs = ((device_images, shard_batch(datasets.batch_indices(
        step, host_batch, len(dataset), batch_seed), num_devices))
                   for step in itertools.count(start_step))
  else:
    step_inputs = ((batch,) for batch in _prefetched(
        (shard_batch(batch, num_devices) for batch in datasets.iterate_batches(
            dataset.images, batch_size=host_batch, seed=batch_seed, start_step=start_step)),
        _device_batch_sharding(num_devices)))
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
        host_metrics = {k: float(v) for k, v in unreplicate(metrics).items()}
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
        checkpointing.save(manager, step, _checkpoint_payload(unreplicate(replicated)))
        last_saved = step
      if report is not None and report_now and jax.process_index() == 0:
        tick = time.perf_counter()
        report(unreplicate(replicated), step=step, dataset=dataset, writer=writer)
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
  return unreplicate(replicated)
