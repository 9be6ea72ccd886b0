"""The pure CUTS train step, its state and settings, and its data-parallel form.

`train_step(state, batch, key, *, settings)` is one update: pair selection,
SSIM, the objective (`losses.cuts_loss`) and the optimizer all run in the
compiled step. Its constants are a `StepSettings`, built once from the config
(and checked there), bound with `functools.partial`; `parallel_train_step` is
the one place the step is parallelised (`jax.pmap`). The resumable run that
drives it is `cuts_jax.train`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

from flax import jax_utils
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cuts_jax import augment
from cuts_jax import losses
from cuts_jax import model as model_lib
from cuts_jax import sampling

__all__ = ["DEVICE_AXIS", "OptimSettings", "StepSettings", "TrainState", "create_train_state",
           "parallel_train_step", "replicate", "shard_batch", "train_step", "unreplicate"]

# The pmap axis over which the batch is split; batch norm statistics,
# gradients and metrics are averaged over it.
DEVICE_AXIS = "batch"


class TrainState(train_state.TrainState):
  """Parameters, optimizer state, step, and the batch-norm running statistics."""

  batch_stats: Any


@dataclasses.dataclass(frozen=True)
class OptimSettings:
  """AdamW with linear warm-up then cosine decay (`config.optim` and the run's length).

  Attributes:
    learning_rate: the peak rate.
    weight_decay: AdamW's decoupled weight decay.
    warmup_steps: steps of linear warm-up from 0 (at most num_steps - 1).
    final_learning_rate_fraction: the cosine decays to this x the peak.
    num_steps: the run's optimizer updates (`config.training.num_steps`).
  """

  learning_rate: float
  weight_decay: float
  warmup_steps: int
  final_learning_rate_fraction: float
  num_steps: int

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> OptimSettings:
    """The optimizer settings of a run's whole config."""
    optim = config.optim
    return cls(learning_rate=optim.learning_rate, weight_decay=optim.weight_decay,
               warmup_steps=optim.warmup_steps,
               final_learning_rate_fraction=optim.final_learning_rate_fraction,
               num_steps=config.training.num_steps)

  def schedule(self) -> optax.Schedule:
    """Step -> learning rate: linear warm-up to `learning_rate`, then cosine decay."""
    total = max(self.num_steps, 1)
    warmup = min(self.warmup_steps, total - 1) if total > 1 else 0
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=self.learning_rate, warmup_steps=warmup,
        decay_steps=total, end_value=self.learning_rate * self.final_learning_rate_fraction)

  def optimizer(self) -> optax.GradientTransformation:
    """AdamW on `schedule()`."""
    return optax.adamw(learning_rate=self.schedule(), weight_decay=self.weight_decay)


@dataclasses.dataclass(frozen=True)
class StepSettings:
  """Everything `train_step` needs besides its inputs: typed, checked, hashable.

  Attributes:
    sampling: how pairs are chosen.
    loss: the objective's temperature and weights.
    optim: the optimizer (the step reports its learning rate).
    crop_size: train on one random square crop of this side per image
      (0: whole images).
    augment: augmented views whose pixels are extra positives (`cuts_jax.augment`).
  """

  sampling: sampling.SamplingSettings
  loss: losses.LossSettings
  optim: OptimSettings
  crop_size: int = 0
  augment: augment.AugmentSettings = augment.AugmentSettings()

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> StepSettings:
    """The step's settings of a run's config; raises ValueError naming a field that cannot work."""
    crop_size = config.training.crop_size
    if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 0:
      raise ValueError(f"config.training.crop_size is {crop_size!r}; it must be a side in "
                       "pixels (0: whole images).")
    augment_settings = augment.AugmentSettings.from_config(config.get("augment"))
    loss_settings = losses.LossSettings.from_config(config.loss)
    if augment_settings.enabled and loss_settings.contrastive != "info_nce":
      raise ValueError("config.augment.enabled adds positives to the InfoNCE term; "
                       f"config.loss.contrastive={loss_settings.contrastive!r} has no place for "
                       "them. Use contrastive='info_nce' or turn augment off.")
    return cls(sampling=sampling.SamplingSettings.from_config(config.sampling),
               loss=loss_settings, optim=OptimSettings.from_config(config), crop_size=crop_size,
               augment=augment_settings)


def create_train_state(key: jax.Array, config: ml_collections.ConfigDict, *,
                       image_shape: tuple[int, int, int]) -> TrainState:
  """A freshly initialised state for images of shape (H, W, C)."""
  model = model_lib.build_model(config, channels=image_shape[-1])
  variables = jax.jit(functools.partial(model.init, train=False))(
      key, jnp.zeros((1,) + tuple(image_shape), jnp.float32))
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           batch_stats=variables["batch_stats"],
                           tx=OptimSettings.from_config(config).optimizer())


def _random_crop(key: jax.Array, image: jax.Array, *, size: int) -> jax.Array:
  """A random (size, size) window of an (H, W, C) image (the whole side if smaller)."""
  height, width, channels = image.shape
  crop_h, crop_w = min(size, height), min(size, width)
  row_key, col_key = jax.random.split(key)
  top = jax.random.randint(row_key, (), 0, height - crop_h + 1)
  left = jax.random.randint(col_key, (), 0, width - crop_w + 1)
  return jax.lax.dynamic_slice(image, (top, left, 0), (crop_h, crop_w, channels))


def train_step(state: TrainState, batch: jax.Array, key: jax.Array, *,
               settings: StepSettings,
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
      global batch, large enough for the sampling settings (checked by
      `SamplingSettings.check_image_size` before the run, not here). With
      `settings.crop_size`, the step trains on one random square crop of each
      image (less computation; the loss is the same per crop).
    key: the run's base PRNG key (the same on every device).
    settings: the step's `StepSettings` (static; bind it with functools.partial).
    axis_name: the pmap axis when run data-parallel (batch norm, gradients
      and metrics are averaged over it); None on one device without pmap,
      e.g. `jax.jit(functools.partial(train_step, settings=settings))`.

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
  if settings.crop_size:
    images = jax.vmap(functools.partial(_random_crop, size=settings.crop_size))(
        crop_keys, batch)
  pairs = jax.vmap(functools.partial(sampling.select_pairs, settings=settings.sampling))(
      pair_keys, images)
  context_targets = None
  if settings.loss.reconstruction_context:
    context_targets = jax.vmap(functools.partial(
        sampling.context_means, side=settings.loss.reconstruction_context,
        cells=settings.loss.reconstruction_context_cells))(images, pairs.anchor_rc)
  network_input, view_rc, view_mask = images, None, None
  if settings.augment.enabled:
    view_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(image_keys)
    views, view_rc, view_mask = _views(view_keys, images, pairs, settings.augment)
    network_input = jnp.concatenate([images, views.reshape((-1,) + images.shape[1:])])

  def loss_fn(params):
    embeddings, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, network_input, train=True,
        axis_name=axis_name, mutable=["batch_stats"])
    embeddings = embeddings.astype(jnp.float32)
    view_positives = None
    if view_rc is not None:
      # (b, V, H, W, D) view embeddings, read at each anchor's place: (b, S, V, D).
      view_embeddings = embeddings[local_batch:].reshape(
          (local_batch, -1) + embeddings.shape[1:])
      view_positives = jax.vmap(jax.vmap(sampling.pixels_at))(view_embeddings, view_rc)
      view_positives = jnp.swapaxes(view_positives, 1, 2)
      embeddings = embeddings[:local_batch]
    method = (model_lib.CUTSModel.reconstruct_with_context if context_targets is not None
              else model_lib.CUTSModel.reconstruct)
    reconstruct = functools.partial(state.apply_fn, {"params": params}, method=method)
    terms = losses.cuts_loss(pairs, embeddings, settings.loss, reconstruct=reconstruct,
                             axis_name=axis_name, view_positives=view_positives,
                             view_mask=view_mask, context_targets=context_targets)
    return terms.total, (updates["batch_stats"], terms)

  (_, (batch_stats, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {
      "loss": terms.total,
      "contrastive_loss": terms.contrastive,
      "reconstruction_loss": terms.reconstruction,
      "valid_anchor_fraction": jnp.mean(pairs.valid_anchor.astype(jnp.float32)),
      "pairs_per_anchor": jnp.mean(
          jnp.sum(pairs.positive_mask, axis=-1).astype(jnp.float32)
          + (0.0 if view_mask is None else jnp.sum(view_mask, axis=-1).astype(jnp.float32))),
      "learning_rate": settings.optim.schedule()(state.step),
  }
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
    batch_stats = jax.lax.pmean(batch_stats, axis_name)
    metrics = jax.lax.pmean(metrics, axis_name)
  return state.apply_gradients(grads=grads, batch_stats=batch_stats), metrics


def _views(keys: jax.Array, images: jax.Array, pairs: sampling.PairSelection,
           settings: augment.AugmentSettings) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Augmented views of a batch and where each anchor lands in them.

  Returns:
    views (b, V, H, W, C); the anchors' places in them, int32 (b, V, S, 2);
    and the mask of the positives they give, bool (b, S, V): inside the view,
    for an anchor with at least one kept negative (InfoNCE needs one).
  """
  shape = images.shape[1:3]

  def one_image(key, image, anchor_rc):
    view_keys = jax.random.split(key, settings.num_views)
    views, transforms = jax.vmap(lambda k: augment.random_view(k, image, settings))(view_keys)
    places, inside = jax.vmap(lambda t: augment.view_positions(anchor_rc, t, shape))(
        transforms)
    return views, places, inside

  views, places, inside = jax.vmap(one_image)(keys, images, pairs.anchor_rc)
  has_negative = jnp.any(pairs.negative_mask, axis=-1)  # (b, S)
  return views, places, jnp.swapaxes(inside, 1, 2) & has_negative[..., None]


def _gathered_train_step(state: TrainState, images: jax.Array, indices: jax.Array,
                         key: jax.Array, **kwargs) -> tuple[TrainState, dict[str, jax.Array]]:
  """`train_step` on the batch `images[indices]` of a data set held on the device."""
  return train_step(state, images[indices], key, **kwargs)


def parallel_train_step(settings: StepSettings, *, data_on_device: bool = False) -> Callable:
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
  kwargs = dict(settings=settings, axis_name=DEVICE_AXIS)
  if data_on_device:
    return jax.pmap(functools.partial(_gathered_train_step, **kwargs), axis_name=DEVICE_AXIS,
                    in_axes=(0, 0, 0, None), donate_argnums=(0,))
  return jax.pmap(functools.partial(train_step, **kwargs), axis_name=DEVICE_AXIS,
                  in_axes=(0, 0, None), donate_argnums=(0,))


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
