"""The train step, its data-parallel form, and the resumable training run."""

import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import tiny
from conftest import REPO_ROOT
from cuts_jax import train
from cuts_jax import trained
from cuts_jax.evaluation import report
from cuts_jax.io import datasets as data
from cuts_jax.runs import checkpointing
from cuts_jax.runs import periodic


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
  state = train.create_train_state(jax.random.key(0), config, image_shape=images.shape[1:])
  return config, images, state


def test_one_step_is_finite_and_moves_the_parameters(tiny_setup):
  config, images, state = tiny_setup
  step = train.parallel_train_step(config)
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
  config, images, state = tiny_setup
  step = train.parallel_train_step(config)
  key = jax.random.key(7)
  one_state, one_metrics = step(_stack(state, 1), images[None], key)
  two_state, two_metrics = step(_stack(state, 2), train.shard_batch(images, 2), key)
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
  config, images, state = tiny_setup
  key = jax.random.key(5)
  single_state, single_metrics = jax.jit(functools.partial(train.train_step, config=config))(
      state, images, key)
  mapped_state, mapped_metrics = train.parallel_train_step(config)(_stack(state, 1),
                                                                   images[None], key)
  assert int(single_state.step) == 1
  assert _max_difference(_stack(single_state.params, 1), mapped_state.params) < 1e-6
  assert _max_difference(_stack(single_state.batch_stats, 1), mapped_state.batch_stats) < 1e-6
  for name in single_metrics:
    np.testing.assert_allclose(single_metrics[name], mapped_metrics[name][0], rtol=1e-5)


def test_bfloat16_compute_gives_a_finite_close_step(tiny_setup):
  """Mixed precision: parameters stay float32 and the update is close to float32's."""
  config, images, state = tiny_setup
  key = jax.random.key(3)
  exact_state, exact_metrics = train.parallel_train_step(config)(_stack(state, 1),
                                                                 images[None], key)
  mixed = config.copy_and_resolve_references()
  mixed.model.compute_dtype = "bfloat16"
  mixed_state = train.create_train_state(jax.random.key(0), mixed,
                                         image_shape=images.shape[1:])
  mixed_state, mixed_metrics = train.parallel_train_step(mixed)(_stack(mixed_state, 1),
                                                                images[None], key)
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
  config, images, state = tiny_setup
  key = jax.random.key(9)
  indices = np.array([[2, 0], [3, 1]])
  host = train.parallel_train_step(config)(_stack(state, 2), images[indices], key)
  replicated = train.replicate(state)
  old_leaf = jax.tree.leaves(replicated.params)[0]
  device = train.parallel_train_step(config, data_on_device=True)(
      replicated, train.replicate(images), indices, key)
  jax.block_until_ready(device)
  assert _max_difference(host[0].params, device[0].params) == 0.0
  assert old_leaf.is_deleted()  # Donated: its memory now holds the new state.


def test_fits_on_devices():
  gib = 1 << 30
  assert train.fits_on_devices(5 << 20, [None, None])  # CPUs report no figures.
  assert not train.fits_on_devices(2 * gib, [None])
  card = {"bytes_limit": 80 * gib, "bytes_in_use": 40 * gib}
  assert train.fits_on_devices(10 * gib, [card, card])
  assert not train.fits_on_devices(11 * gib, [card])
  assert not train.fits_on_devices(1, [{"bytes_limit": 0}])


def test_shard_batch_refuses_uneven_splits():
  with pytest.raises(ValueError, match="multiple of 2"):
    train.shard_batch(np.zeros((3, 4, 4, 1)), 2)


def test_periodic_is_due():
  due = [s for s in range(1, 11) if periodic.is_due(s, 4, last_step=10)]
  assert due == [4, 8, 10]
  assert [s for s in range(1, 4) if periodic.is_due(s, 0, last_step=3)] == [3]


def test_training_run_writes_and_resumes(tmp_path):
  config = tiny.get_config()
  config.training.num_figure_images = 2
  state = train.train_and_evaluate(config, tmp_path,
                                   report=report.segment_report(config, tmp_path))
  assert (tmp_path / "segments.png").stat().st_size > 5_000
  assert int(state.step) == 4
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()
                if p.name.isdigit()) == ["2", "4"]
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4]
  assert {"loss", "contrastive_loss", "reconstruction_loss", "valid_anchor_fraction",
          "steps_per_s", "learning_rate"} <= set(lines[0])
  saved = checkpointing.read_config(tmp_path)
  assert saved.training.num_steps == 4 and tuple(saved.model.kernel_sizes) == (5, 3)

  # A longer run in the same workdir continues from step 4.
  config.training.num_steps = 6
  resumed = train.train_and_evaluate(config, tmp_path,
                                     report=report.segment_report(config, tmp_path))
  assert int(resumed.step) == 6
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4, 6]


def test_images_handed_in_train_with_progress_that_can_stop_the_run_with_a_checkpoint(
    tmp_path):
  config = tiny.get_config()
  config.data.kind = "arrays"
  config.training.checkpoint_every = 10  # No periodic save before the stop.
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 256, (32, 32), dtype=np.uint8) for _ in range(2)]
  calls = []

  def progress(*, step, num_steps, steps_per_s):
    calls.append((step, num_steps, steps_per_s))
    return step == 3

  state = train.train_and_evaluate(config, tmp_path, dataset=data.from_arrays(images),
                                   progress=progress)
  assert [c[:2] for c in calls] == [(1, 4), (2, 4), (3, 4)]
  assert calls[0][2] == 0.0 and all(rate > 0 for _, _, rate in calls[1:])
  assert int(state.step) == 3
  manager = checkpointing.checkpoint_manager(tmp_path, read_only=True)
  assert manager.all_steps() == [3]
  manager.close()
  params = trained.load(tmp_path)
  assert params.channels == 1 and params.image_size == (32, 32)  # Gray images, one channel.
  assert checkpointing.read_config(tmp_path).data.kind == "arrays"


def test_resuming_with_a_different_model_is_refused(tmp_path):
  config = tiny.get_config()
  config.training.num_steps = 2
  train.train_and_evaluate(config, tmp_path)
  config.model.features = (8, 32)
  with pytest.raises(ValueError, match="different config.model.features"):
    train.train_and_evaluate(config, tmp_path)


def test_non_finite_loss_stops_the_run(tmp_path):
  config = tiny.get_config()
  config.optim.learning_rate = float("nan")
  with pytest.raises(train.NonFiniteLossError, match="non-finite at step 2"):
    train.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "checkpoints" / "2").exists()


def test_unwritable_workdir_fails_at_start(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(OSError, match="cannot write to the workdir"):
    train.train_and_evaluate(tiny.get_config(), blocker / "workdir")


def _cli(workdir, *overrides):
  command = [sys.executable, "-m", "cuts_jax.main", "--config=configs/tiny.py",
             f"--workdir={workdir}", *overrides]
  environment = {**os.environ, "XLA_FLAGS": "", "PYTHONUNBUFFERED": "1"}
  return subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def test_cli_reports_a_missing_data_set(tmp_path):
  process = _cli(tmp_path, "--config.data.kind=retina",
                 f"--config.data.root={tmp_path / 'absent'}")
  output = process.communicate(timeout=120)[0]
  assert process.returncode != 0
  assert "retina GA data set not found" in output and "--config.data.root" in output
