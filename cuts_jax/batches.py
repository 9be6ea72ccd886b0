"""Which images make each training step's batch, and how they reach the devices.

The order is a pure function of (seed, step): every epoch visits the images
in a fresh shuffled order that depends only on (seed, epoch), so a resumed
run sees the same batches as one that never stopped. `step_inputs` hands the
pmapped step (`cuts_jax.step.parallel_train_step`) its inputs: the indices of
each batch into a data set kept on the devices, or the batches themselves,
put on the devices a few steps ahead.
"""

from __future__ import annotations

import collections
import itertools
from typing import Iterator, Optional

import jax
import numpy as np

from cuts_jax import step as step_lib

__all__ = ["batch_indices", "fits_on_devices", "iterate_batches", "step_inputs"]

# A data set is kept on each device when every replica takes at most this
# share of the device's free memory (the rest is the step's), or, on devices
# that report no memory figures (CPU), when it is at most this many bytes.
_DEVICE_DATA_SHARE = 0.25
_DEVICE_DATA_BYTES_WITHOUT_STATS = 1 << 30
# Batches put on the devices ahead of the step that uses them.
_PREFETCH_DEPTH = 2


def batch_indices(step: int, batch_size: int, num_examples: int, seed: int) -> np.ndarray:
  """Indices of the examples in batch number `step` (0-based).

  Examples are visited in a fresh shuffled order every epoch; the order
  depends only on (seed, epoch), so a resumed run sees the same batches.
  """
  positions = step * batch_size + np.arange(batch_size)
  epochs, offsets = np.divmod(positions, num_examples)
  indices = np.empty(batch_size, dtype=np.int64)
  for epoch in np.unique(epochs):
    order = np.random.default_rng([seed, int(epoch)]).permutation(num_examples)
    selected = epochs == epoch
    indices[selected] = order[offsets[selected]]
  return indices


def iterate_batches(images: np.ndarray, *, batch_size: int, seed: int,
                    start_step: int = 0) -> Iterator[np.ndarray]:
  """Yields (batch_size, H, W, C) batches forever, starting at batch `start_step`."""
  step = start_step
  while True:
    yield images[batch_indices(step, batch_size, len(images), seed)]
    step += 1


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


def step_inputs(images: np.ndarray, *, batch_size: int, seed: int, start_step: int,
                num_devices: int, data_on_device: bool) -> Iterator[tuple]:
  """The inputs of each step of `parallel_train_step(..., data_on_device=...)` but the key.

  Args:
    images: float32 (N, H, W, C), this process's data set.
    batch_size: this process's images per step (a multiple of `num_devices`).
    seed: the batch order's seed.
    start_step: the first batch's number (the steps already done).
    num_devices: the local devices the batch is split over.
    data_on_device: True: `images` are copied to every device once, and each
      step gets (the replicated images, int (num_devices, per-device batch)
      indices); False: each step gets ((num_devices, per-device batch, H, W,
      C) images,), put on the devices `_PREFETCH_DEPTH` steps ahead.

  Returns:
    An endless iterator of one tuple of arrays per step.
  """
  if data_on_device:
    device_images = step_lib.replicate(images)
    return ((device_images, step_lib.shard_batch(
        batch_indices(step, batch_size, len(images), seed), num_devices))
            for step in itertools.count(start_step))
  batches = (step_lib.shard_batch(batch, num_devices) for batch in iterate_batches(
      images, batch_size=batch_size, seed=seed, start_step=start_step))
  return ((batch,) for batch in _prefetched(batches, _device_batch_sharding(num_devices)))


def _device_batch_sharding(num_devices: int) -> jax.sharding.Sharding:
  """The layout the pmapped step gives its per-device inputs (leading axis: devices)."""
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:num_devices]), (step_lib.DEVICE_AXIS,))
  return jax.NamedSharding(mesh, jax.P(step_lib.DEVICE_AXIS))


def _prefetched(batches, sharding: jax.sharding.Sharding):
  """Puts each host batch on the devices `_PREFETCH_DEPTH` steps before it is used."""
  queue = collections.deque()
  for batch in batches:
    queue.append(jax.device_put(batch, sharding))
    if len(queue) == _PREFETCH_DEPTH:
      yield queue.popleft()
