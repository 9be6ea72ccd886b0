"""Two real processes train together through jax.distributed on this machine (CPU, gloo).

Each process is started as `python tests/_multihost_worker.py`, with one CPU
device, the coordinator on 127.0.0.1 and its own half of the images. About a
minute on 2 CPU cores.
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from _multihost_worker import config_for, flat_params
from conftest import SUBPROCESS_XLA_FLAGS
from cuts_jax import batches
from cuts_jax import step as step_lib
from cuts_jax.io import datasets

pytestmark = pytest.mark.slow  # Two processes, killed and restarted: about a minute.

WORKER = pathlib.Path(__file__).with_name("_multihost_worker.py")


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def _start(workdir, num_steps, port):
  environment = dict(os.environ, JAX_PLATFORMS="cpu",
                     XLA_FLAGS="--xla_force_host_platform_device_count=1 " + SUBPROCESS_XLA_FLAGS)
  return [subprocess.Popen([sys.executable, str(WORKER), str(index), str(port), str(workdir),
                            str(num_steps)], env=environment, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True) for index in (0, 1)]


def _finish(processes, timeout=240):
  outputs = [p.communicate(timeout=timeout)[0] for p in processes]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
  return outputs


def _one_process_reference(num_steps):
  """The same global batches (process 0's half, then process 1's) in this process, 2 devices."""
  config = config_for(0, 0, num_steps)
  config.distributed.initialize = False
  shards = [datasets.load_dataset(config.data, shard_index=i, shard_count=2) for i in (0, 1)]
  host_batch = config.training.batch_size // 2
  init_key, train_key = jax.random.split(jax.random.key(config.seed))
  state = step_lib.create_train_state(init_key, config, image_shape=shards[0].images.shape[1:])
  step = step_lib.parallel_train_step(step_lib.StepSettings.from_config(config))
  replicated = step_lib.replicate(state)
  for number in range(num_steps):
    batch = np.stack([shard.images[batches.batch_indices(
        number, host_batch, len(shard), config.seed * 1000003 + index)]
                      for index, shard in enumerate(shards)])
    replicated, metrics = step(replicated, batch, train_key)
    jax.block_until_ready(metrics)
  return flat_params(step_lib.unreplicate(replicated).params)


def test_two_processes_train_as_one_survive_a_killed_host_and_resume(tmp_path):
  """Kill one host mid-run: the other stops within a minute; a rerun of both resumes.

  The resumed run ends at the parameters one process reaches on the same
  global batches without interruption, so the two hosts did train as one.
  """
  num_steps = 10
  processes = _start(tmp_path, num_steps, _free_port())
  checkpoints = tmp_path / "checkpoints"
  deadline = time.monotonic() + 180
  while not any(p.name.isdigit() and int(p.name) >= 4
                for p in (checkpoints.iterdir() if checkpoints.exists() else [])):
    assert time.monotonic() < deadline and processes[0].poll() is None, "no checkpoint came"
    time.sleep(0.2)
  processes[1].send_signal(signal.SIGKILL)
  killed_at = time.monotonic()
  output = processes[0].communicate(timeout=120)[0]
  stopped_after = time.monotonic() - killed_at
  processes[1].wait()
  assert processes[0].returncode != 0, output[-3000:]
  assert stopped_after < 60, f"the survivor took {stopped_after:.0f} s to stop"
  assert "another task died" in output or "heartbeat" in output, output[-3000:]

  last_complete = max(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
  assert last_complete < num_steps
  outputs = _finish(_start(tmp_path, num_steps, _free_port()))
  assert f"Resumed from the checkpoint of step {last_complete}" in outputs[0]
  assert all(f"finished at step {num_steps}" in o for o in outputs)
  saved = np.load(tmp_path / "final_params.npz")
  expected = _one_process_reference(num_steps)
  assert set(saved.files) == set(expected)
  for name, value in expected.items():
    np.testing.assert_allclose(saved[name], value, atol=1e-5, err_msg=name)
