"""Batch order (deterministic, shuffled per epoch, resumable) and how batches reach the devices."""

import jax
import numpy as np

from cuts_jax import batches
from cuts_jax import step as step_lib


def test_batches_are_deterministic_shuffled_and_cover_each_epoch():
  first = [batches.batch_indices(step, 4, 10, seed=1) for step in range(5)]
  again = [batches.batch_indices(step, 4, 10, seed=1) for step in range(5)]
  np.testing.assert_array_equal(first, again)
  flat = np.concatenate(first)
  assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
  assert not np.array_equal(flat[:10], np.arange(10))
  assert not np.array_equal(flat[:10], flat[10:20])  # A new order each epoch.
  other_seed = np.concatenate([batches.batch_indices(s, 4, 10, seed=2) for s in range(5)])
  assert not np.array_equal(flat, other_seed)
  # Resuming at step 3 gives the batches an uninterrupted run sees there.
  images = np.arange(10)[:, None, None, None] * np.ones((10, 2, 2, 1))
  resumed = batches.iterate_batches(images, batch_size=4, seed=1, start_step=3)
  np.testing.assert_array_equal(next(resumed)[:, 0, 0, 0], first[3])


def test_fits_on_devices():
  gib = 1 << 30
  assert batches.fits_on_devices(5 << 20, [None, None])  # CPUs report no figures.
  assert not batches.fits_on_devices(2 * gib, [None])
  card = {"bytes_limit": 80 * gib, "bytes_in_use": 40 * gib}
  assert batches.fits_on_devices(10 * gib, [card, card])
  assert not batches.fits_on_devices(11 * gib, [card])
  assert not batches.fits_on_devices(1, [{"bytes_limit": 0}])


def test_step_inputs_on_the_device_and_from_the_host_are_the_same_batches():
  assert jax.local_device_count() == 2, "conftest forces 2 CPU devices"
  images = (np.arange(6, dtype=np.float32)[:, None, None, None]
            * np.ones((6, 3, 3, 1), np.float32))
  options = dict(batch_size=4, seed=5, start_step=2, num_devices=2)
  gathered = batches.step_inputs(images, data_on_device=True, **options)
  copied = batches.step_inputs(images, data_on_device=False, **options)
  for step in range(2, 6):
    device_images, indices = next(gathered)
    (batch,) = next(copied)
    assert indices.shape == (2, 2) and batch.shape == (2, 2, 3, 3, 1)
    expected = step_lib.shard_batch(
        images[batches.batch_indices(step, 4, len(images), 5)], 2)
    np.testing.assert_array_equal(np.asarray(batch), expected)
    np.testing.assert_array_equal(np.asarray(device_images)[0][indices], expected)
