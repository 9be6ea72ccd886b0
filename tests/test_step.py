"""The pure train step, its settings and its data-parallel form (one place: pmap)."""

import dataclasses
import functools

import jax
import numpy as np
import pytest

from configs import tiny
from cuts_jax import step as step_lib
from cuts_jax.io import datasets as data


def _stack(state, copies):
  """`copies` replicas of a host state, as a pmapped step takes it."""
  return jax.tree.map(lambda x: np.stack([np.asarray(x)] * copies), state)


def _max_difference(a, b, *, relative=False):
  """Largest difference between the first replicas of two pytrees (relative to each leaf's scale)."""
  def leaf(x, y):
    x, y = np.asarray(x)[0], np.asarray(y)[0]
    scale = max(float(np.max(np.abs(x))), 1e-12) if relative else 1.0
    return float(np.max(np.abs(x - y))) / scale
  return max(jax.tree.leaves(jax.tree.map(leaf, a, b)))


@pytest.fixture(scope="module")
def tiny_setup():
  config = tiny.get_config()
  config.optim.warmup_steps = 0  # The first update uses the full learning rate.
  images = data.load_demo((32, 32)).images[:4]
  state = step_lib.create_train_state(jax.random.key(0), config, image_shape=images.shape[1:])
  return step_lib.StepSettings.from_config(config), images, state


def test_one_step_is_finite_and_moves_the_parameters(tiny_setup):
  settings, images, state = tiny_setup
  step = step_lib.parallel_train_step(settings)
  new_state, metrics = step(_stack(state, 1), images[None], jax.random.key(1))
  metrics = {k: float(v[0]) for k, v in metrics.items()}
  assert all(np.isfinite(v) for v in metrics.values())
  assert metrics["contrastive_loss"] > 0 and metrics["reconstruction_loss"] > 0
  assert 0 < metrics["valid_anchor_fraction"] <= 1
  assert metrics["loss"] == pytest.approx(
      metrics["contrastive_loss"] + 10 * metrics["reconstruction_loss"], rel=1e-5)
  assert int(new_state.step[0]) == 1
  assert _max_difference(new_state.params, _stack(state.params, 1)) > 1e-4
  assert _max_difference(new_state.batch_stats, _stack(state.batch_stats, 1)) > 0


def test_two_devices_give_the_one_device_update(tiny_setup):
  """One step on 2 devices (2 + 2 images) equals one step on 1 device (4 images).

  Tolerance: 1e-6 absolute on parameters whose update is ~1e-3 (the learning
  rate), and 1e-4 relative on the optimizer's gradient moments: only the order
  of floating-point sums differs.
  """
  assert jax.local_device_count() == 2, "conftest forces 2 CPU devices"
  settings, images, state = tiny_setup
  step = step_lib.parallel_train_step(settings)
  key = jax.random.key(7)
  one_state, one_metrics = step(_stack(state, 1), images[None], key)
  two_state, two_metrics = step(_stack(state, 2), step_lib.shard_batch(images, 2), key)
  jax.block_until_ready(two_state)
  assert _max_difference(one_state.params, two_state.params) < 1e-6
  assert _max_difference(one_state.batch_stats, two_state.batch_stats) < 1e-6
  assert _max_difference(one_state.opt_state, two_state.opt_state, relative=True) < 1e-4
  for name in one_metrics:
    np.testing.assert_allclose(one_metrics[name][0], two_metrics[name][0], rtol=1e-5)
  # The replicas stay identical.
  assert _max_difference(jax.tree.map(lambda x: np.asarray(x)[1:], two_state.params),
                         two_state.params) == 0.0


def test_a_step_without_pmap_equals_the_pmapped_one_device_step(tiny_setup):
  """train_step(axis_name=None), as documented, runs under plain jit: same update as pmap's."""
  settings, images, state = tiny_setup
  key = jax.random.key(5)
  single_state, single_metrics = jax.jit(
      functools.partial(step_lib.train_step, settings=settings))(state, images, key)
  mapped_state, mapped_metrics = step_lib.parallel_train_step(settings)(_stack(state, 1),
                                                                        images[None], key)
  assert int(single_state.step) == 1
  assert _max_difference(_stack(single_state.params, 1), mapped_state.params) < 1e-6
  assert _max_difference(_stack(single_state.batch_stats, 1), mapped_state.batch_stats) < 1e-6
  for name in single_metrics:
    np.testing.assert_allclose(single_metrics[name], mapped_metrics[name][0], rtol=1e-5)


def test_bfloat16_compute_gives_a_finite_close_step(tiny_setup):
  """Mixed precision: parameters stay float32 and the update is close to float32's."""
  settings, images, state = tiny_setup
  key = jax.random.key(3)
  step = step_lib.parallel_train_step(settings)
  exact_state, exact_metrics = step(_stack(state, 1), images[None], key)
  mixed = tiny.get_config()
  mixed.optim.warmup_steps = 0  # As in tiny_setup: the state's optimizer comes from the config.
  mixed.model.compute_dtype = "bfloat16"  # A model setting: the step's settings are the same.
  mixed_state = step_lib.create_train_state(jax.random.key(0), mixed,
                                            image_shape=images.shape[1:])
  mixed_state, mixed_metrics = step(_stack(mixed_state, 1), images[None], key)
  assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(mixed_state.params))
  assert all(np.isfinite(float(v[0])) for v in mixed_metrics.values())
  # bf16 keeps 8 bits of mantissa: the loss agrees to a few percent, and
  # Adam's first step (+-learning rate per weight) goes the same way for
  # nearly every weight (tiny gradients may flip sign).
  np.testing.assert_allclose(mixed_metrics["loss"][0], exact_metrics["loss"][0], rtol=0.05)
  start = jax.tree.leaves(state.params)
  same = np.concatenate([
      (np.sign(np.asarray(m)[0] - s0) == np.sign(np.asarray(e)[0] - s0)).reshape(-1)
      for m, e, s0 in zip(jax.tree.leaves(mixed_state.params),
                          jax.tree.leaves(exact_state.params), start)])
  assert np.mean(same) > 0.9


def test_data_set_on_the_device_gives_the_same_steps_and_the_state_is_donated(tiny_setup):
  """Batches gathered on the devices train exactly as batches copied from the host."""
  settings, images, state = tiny_setup
  key = jax.random.key(9)
  indices = np.array([[2, 0], [3, 1]])
  host = step_lib.parallel_train_step(settings)(_stack(state, 2), images[indices], key)
  replicated = step_lib.replicate(state)
  old_leaf = jax.tree.leaves(replicated.params)[0]
  device = step_lib.parallel_train_step(settings, data_on_device=True)(
      replicated, step_lib.replicate(images), indices, key)
  jax.block_until_ready(device)
  assert _max_difference(host[0].params, device[0].params) == 0.0
  assert old_leaf.is_deleted()  # Donated: its memory now holds the new state.


def test_shard_batch_refuses_uneven_splits():
  with pytest.raises(ValueError, match="multiple of 2"):
    step_lib.shard_batch(np.zeros((3, 4, 4, 1)), 2)




def test_step_settings_are_built_once_checked_and_hashable():
  config = tiny.get_config()
  settings = step_lib.StepSettings.from_config(config)
  assert settings == step_lib.StepSettings.from_config(config)
  assert hash(settings) == hash(step_lib.StepSettings.from_config(config))  # A jit constant.
  assert settings.sampling.patch_size == 5 and settings.loss.lambda_reconstruction == 10.0
  assert settings.optim.num_steps == config.training.num_steps and settings.crop_size == 0
  with pytest.raises(dataclasses.FrozenInstanceError):
    settings.crop_size = 8  # pytype: disable=not-writable
  for section, field, value in [("sampling", "ssim_filter_size", 7),  # > patch_size 5
                                 ("sampling", "patch_size", 6),
                                 ("sampling", "num_anchors", 0),
                                 ("sampling", "negative_min_distance", 2.0),
                                 ("loss", "temperature", 0.0),
                                 ("loss", "lambda_reconstruction", -1.0),
                                 ("training", "crop_size", -4)]:
    bad = tiny.get_config()
    bad[section][field] = value
    with pytest.raises(ValueError, match=rf"config\.{section}\.{field}"):
      step_lib.StepSettings.from_config(bad)


def test_the_optimizer_schedule_warms_up_then_decays():
  optim = step_lib.OptimSettings(learning_rate=1.0, weight_decay=0.0, warmup_steps=2,
                                 final_learning_rate_fraction=0.1, num_steps=10)
  schedule = optim.schedule()
  assert float(schedule(0)) == 0.0 and float(schedule(2)) == pytest.approx(1.0)
  assert float(schedule(10)) == pytest.approx(0.1)
  # A run of one step has no warm-up: its one update uses the peak rate.
  assert float(dataclasses.replace(optim, num_steps=1).schedule()(0)) == pytest.approx(1.0)
