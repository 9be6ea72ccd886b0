"""Same config and seed, same result: across runs, across kill -9 and resume, and in segment.

Also here, because it needs the same compiled training run: a disk that
fills up in the middle of training.

Training runs here are command-line subprocesses on one CPU device
(conftest's SUBPROCESS_XLA_FLAGS), as a user runs them. They share a JAX compilation cache so
that only the first run pays for compiling; a cached executable is the same
program, so it cannot change a result. Tolerance: none. Parameters,
optimizer state and logged losses must be bit-identical.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import cuts_jax
from conftest import REPO_ROOT
from conftest import SUBPROCESS_XLA_FLAGS
from cuts_jax.runs import checkpointing
from test_reliability import mount_tmpfs
from test_reliability import unmount

# Several CLI training runs of 100 steps each, some killed and resumed: minutes.
pytestmark = pytest.mark.slow

NUM_STEPS = 100
CHECKPOINT_EVERY = 10
_TMP_MARKER = ".orbax-checkpoint-tmp"


class _Run:
  """`python -m cuts_jax.main` on configs/tiny.py, its progress read from its log."""

  def __init__(self, workdir, cache, *overrides):
    self.workdir = workdir
    command = [sys.executable, "-m", "cuts_jax.main", "--config=configs/tiny.py",
               f"--workdir={workdir}", f"--config.training.num_steps={NUM_STEPS}",
               f"--config.training.checkpoint_every={CHECKPOINT_EVERY}",
               "--config.training.log_every=1", *overrides]
    environment = {**os.environ, "XLA_FLAGS": SUBPROCESS_XLA_FLAGS, "PYTHONUNBUFFERED": "1",
                   "JAX_COMPILATION_CACHE_DIR": str(cache),
                   "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                   "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    self.entries_before = _entries(workdir)
    self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    self.lines, self.step = [], 0
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.process.stdout:
      self.lines.append(line)
      match = re.search(r"\bstep (\d+)/", line)
      if match:
        self.step = int(match.group(1))

  @property
  def output(self):
    return "".join(self.lines)

  def wait_until(self, condition, *, timeout=180):
    deadline = time.time() + timeout
    while not condition():
      if self.process.poll() is not None:
        self._reader.join()
        raise AssertionError(f"the run ended before it could be killed:\n{self.output[-3000:]}")
      if time.time() > deadline:
        self.kill()
        raise AssertionError(f"the run did not get there in {timeout} s:\n{self.output[-3000:]}")
      time.sleep(0.001)

  def kill(self):
    self.process.send_signal(signal.SIGKILL)
    self.process.wait()
    self._reader.join()

  def finish(self, *, timeout=300, expect_success=True):
    self.process.wait(timeout=timeout)
    self._reader.join()
    if expect_success:
      assert self.process.returncode == 0, self.output[-3000:]

  def new_entries(self):
    """Checkpoint folders (complete or not) this run created: {name: inode}."""
    return {n: i for n, i in _entries(self.workdir).items() if self.entries_before.get(n) != i}


def _entries(workdir):
  folder = workdir / checkpointing.CHECKPOINT_DIR
  if not folder.is_dir():
    return {}
  return {entry.name: entry.inode() for entry in os.scandir(folder)}


def _step_of(name):
  return int(name.split(".")[0])


def _latest_step(workdir):
  manager = checkpointing.checkpoint_manager(workdir, read_only=True)
  try:
    return manager.latest_step()
  finally:
    manager.close()


def _checkpoint(workdir, step):
  """Everything checkpoint `step` holds (params, batch_stats, opt_state, step), as saved."""
  manager = checkpointing.checkpoint_manager(workdir, read_only=True)
  try:
    return jax.tree.map(np.asarray, manager.restore(step, args=ocp.args.StandardRestore()))
  finally:
    manager.close()


def _losses(workdir):
  """[(step, loss)] of every line of metrics.jsonl (a resumed run logs steps again)."""
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [(record["step"], record["loss"]) for record in map(json.loads, lines)]


def _assert_identical(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache):
  """An uninterrupted run (it fills the compilation cache for the others)."""
  workdir = tmp_path_factory.mktemp("reference")
  _Run(workdir, cache).finish()
  return workdir


@pytest.fixture(scope="module")
def second_run(tmp_path_factory, cache, reference):
  """Another uninterrupted run of the same config and seed, started in the background."""
  workdir = tmp_path_factory.mktemp("second")
  run = _Run(workdir, cache)
  yield run
  if run.process.poll() is None:
    run.kill()


@pytest.fixture(scope="module")
def constant_run(tmp_path_factory, cache, reference):
  """A run on four constant images (SSIM has no data range), started in the background."""
  del reference  # Requested for the compilation it leaves in the cache.
  folder = tmp_path_factory.mktemp("constant_images")
  for index, value in enumerate((0.0, 0.5, 0.5, 1.0)):
    np.save(folder / f"flat{index}.npy", np.full((32, 32, 3), value, np.float32))
  run = _Run(tmp_path_factory.mktemp("constant"), cache, "--config.data.kind=folder",
             f"--config.data.root={folder}")
  yield run
  if run.process.poll() is None:
    run.kill()


@pytest.fixture(scope="module")
def full_disk_run(tmp_path_factory, cache, reference):
  """A run on a 1.6 MB disk, saving every step, started in the background.

  The start-up check (a 1 MB probe) passes; a later checkpoint save cannot.
  Yields (run, None), or (None, why) where no tmpfs can be mounted.
  """
  del reference  # Requested for the compilation it leaves in the cache.
  disk = tmp_path_factory.mktemp("disk")
  reason = mount_tmpfs(disk, size="1600k")
  if reason:
    yield None, reason
    return
  run = _Run(disk / "run", cache, "--config.training.checkpoint_every=1",
             "--config.training.keep_checkpoints=1000")
  yield run, None
  if run.process.poll() is None:
    run.kill()
  unmount(disk)


def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_result(
    reference, second_run, constant_run, full_disk_run, cache, tmp_path):
  """kill -9 four times (at random steps, during a checkpoint save, during start-up).

  After each kill, the checkpoints that were complete are intact and load,
  the restart point is at most one save interval before the newest save that
  had begun (saves run one at a time), so at most 2 x checkpoint_every steps
  are lost; the re-run resumes there, and the finished run equals the
  uninterrupted one bit for bit.
  """
  del second_run, constant_run, full_disk_run  # Requested so they train beside the kills.
  rng = random.Random(20240607)  # Fixed: the same kill moments on every run of the test.
  workdir = tmp_path / "killed"
  kills = []

  def at_random_step(run, start):
    target = start + rng.randint(1, 3 * CHECKPOINT_EVERY)
    run.wait_until(lambda: run.step >= target)
    return f"at step >= {target}"

  def during_a_save(run, start):
    run.wait_until(lambda: any(_TMP_MARKER in name for name in run.new_entries()))
    return "during a save"

  def during_start_up(run, start):
    delay = rng.uniform(0.3, 2.0)
    time.sleep(delay)
    return f"{delay:.1f} s after start"

  def kill_once(moment):
    """One run killed at `moment`; checks what survived. True when a save was cut short."""
    start = _latest_step(workdir) if (workdir / "checkpoints").exists() else None
    run = _Run(workdir, cache)
    when = moment(run, start or 0)
    run.kill()
    logged, new, latest = run.step, run.new_entries(), _latest_step(workdir)
    begun = max((_step_of(n) for n in new if _step_of(n) > (start or 0)), default=None)
    kills.append(dict(moment=moment.__name__, when=when, logged=logged, new=sorted(new),
                      latest=latest))
    if start is not None:
      assert f"Resumed from the checkpoint of step {start} " in run.output or logged == 0
      assert latest is not None and latest >= start, kills  # Nothing complete was lost.
    restart = latest or 0  # No complete checkpoint: the re-run starts from step 0.
    if begun is not None:
      assert restart >= begun - CHECKPOINT_EVERY, kills
    assert logged - restart <= 2 * CHECKPOINT_EVERY, kills
    if latest is not None:
      assert cuts_jax.load(workdir).channels == 3  # The restart point loads.
    return any(_TMP_MARKER in n for n in new)

  kill_once(at_random_step)
  # The save must still be running when SIGKILL lands; on a very loaded machine it
  # can finish first, and that kill was one more random one: try again.
  assert any(kill_once(during_a_save) for _ in range(3)), kills
  kill_once(during_start_up)
  kill_once(at_random_step)

  resumed_from = _latest_step(workdir)
  final = _Run(workdir, cache)
  final.finish()
  assert f"Resumed from the checkpoint of step {resumed_from} " in final.output

  _assert_identical(_checkpoint(workdir, NUM_STEPS), _checkpoint(reference, NUM_STEPS))
  expected = dict(_losses(reference))
  logged = _losses(workdir)
  assert {s for s, _ in logged} == set(range(1, NUM_STEPS + 1))
  for step, loss in logged:  # Steps re-run after a kill gave the same loss again.
    assert loss == expected[step], (step, kills)
  # And through the public API.
  ours, theirs = cuts_jax.load(workdir), cuts_jax.load(reference)
  _assert_identical((ours.params, ours.batch_stats), (theirs.params, theirs.batch_stats))


def test_two_runs_of_one_config_are_identical(reference, second_run):
  second_run.finish()
  for step in (NUM_STEPS - CHECKPOINT_EVERY, NUM_STEPS):
    _assert_identical(_checkpoint(reference, step), _checkpoint(second_run.workdir, step))
  assert _losses(reference) == _losses(second_run.workdir)
  assert [s for s, _ in _losses(reference)] == list(range(1, NUM_STEPS + 1))


def test_segment_is_deterministic_for_a_seed(reference, second_run):
  second_run.finish()
  first, second = cuts_jax.load(reference), cuts_jax.load(second_run.workdir)
  image = np.random.default_rng(0).random((40, 36, 3)).astype(np.float32)
  np.testing.assert_array_equal(cuts_jax.embed(first, image[None]),
                                cuts_jax.embed(second, image[None]))
  for method in ("spectral", "kmeans"):
    labels = cuts_jax.segment(first, image, num_clusters=6, method=method, seed=0)
    np.testing.assert_array_equal(labels, cuts_jax.segment(first, image, num_clusters=6,
                                                           method=method, seed=0))
    np.testing.assert_array_equal(labels, cuts_jax.segment(second, image, num_clusters=6,
                                                           method=method, seed=0))
    others = [cuts_jax.segment(first, image, num_clusters=6, method=method, seed=seed)
              for seed in (1, 2, 3)]
    assert any(not np.array_equal(labels, other) for other in others), method


def test_a_disk_that_fills_up_mid_run_stops_it_and_keeps_its_checkpoints(full_disk_run):
  run, reason = full_disk_run
  if run is None:
    pytest.skip(reason)
  run.finish(timeout=180, expect_success=False)
  # The CLI's one error line and its status (1: `_cli.exit_with_error`, not a crash). It is
  # looked for on every line, from where it starts: tensorstore's "Event loop is closed" from
  # orbax's background threads shares the output stream and may print around it, even just
  # before it on the same line.
  assert run.process.returncode == 1, run.output[-3000:]
  prefix = "cuts_jax.main: error: "
  errors = [line[line.index(prefix):] for line in run.lines if prefix in line]
  assert len(errors) == 1, run.output[-3000:]
  assert "No space left on device" in errors[0], errors
  latest = _latest_step(run.workdir)
  assert latest is not None and 1 <= latest < NUM_STEPS
  assert run.step <= latest + 2  # It stopped at the first save that failed, or the next.
  assert cuts_jax.load(run.workdir).channels == 3  # The complete checkpoints still load.


def test_training_on_constant_images_stays_finite(constant_run):
  """No pair can be verified (every SSIM is 1), so only the reconstruction loss trains."""
  constant_run.finish()
  records = [json.loads(line) for line in
             (constant_run.workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == list(range(1, NUM_STEPS + 1))
  assert all(np.isfinite(v) for r in records for v in r.values())
  assert all(r["contrastive_loss"] == 0.0 and r["valid_anchor_fraction"] == 0.0
             for r in records)
  params = cuts_jax.load(constant_run.workdir)
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves((params.params,
                                                                   params.batch_stats)))
