"""Nothing written is lost, nothing read is executed, and full or read-only disks fail at start.

The kill -9 and determinism tests are in test_determinism.py; bad input in
test_bad_input.py.
"""

import ast
import contextlib
import errno
import hashlib
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import cuts_jax
from configs import tiny
from conftest import REPO_ROOT
from conftest import SUBPROCESS_XLA_FLAGS
from conftest import copy_workdir
from cuts_jax import train
from cuts_jax.apps import predict
from cuts_jax.evaluation import evaluate
from cuts_jax.io import datasets as data
from cuts_jax.io import medical

PACKAGE = REPO_ROOT / "cuts_jax"


def _snapshot(folder):
  """{relative path: sha256} of every file under `folder`."""
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_checkpoints_load(workdir):
  first, second = cuts_jax.load(workdir, step=2), cuts_jax.load(workdir, step=4)
  np.testing.assert_array_equal(second.params["conv0"]["kernel"],
                                first.params["conv0"]["kernel"] + 1)


def mount_tmpfs(path, *, size):
  """Mounts a tmpfs of `size` at `path`; returns None, or why it could not."""
  path.mkdir(parents=True, exist_ok=True)
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
  if result.returncode:
    return (f"cannot mount a tmpfs here ({result.stderr.strip()}); needs root and "
            "CAP_SYS_ADMIN. The monkeypatched variants still run.")
  return None


def unmount(path):
  subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def tmpfs(path, *, size="512k"):
  """A small tmpfs at `path` (the test is skipped where mounting is not allowed)."""
  reason = mount_tmpfs(path, size=size)
  if reason:
    pytest.skip(reason)
  try:
    yield path
  finally:
    unmount(path)


def _remount_read_only(path):
  subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def _photo_folder(folder, count=2):
  folder.mkdir(parents=True, exist_ok=True)
  for index in range(count):
    np.save(folder / f"photo{index}.npy", np.random.default_rng(index).random((12, 14, 3)))
  return folder


# --- no unsafe loading -----------------------------------------------------------------------

def _calls(tree):
  for node in ast.walk(tree):
    if isinstance(node, ast.Call):
      function = node.func
      if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
        yield node, f"{function.value.id}.{function.attr}"
      elif isinstance(function, ast.Name):
        yield node, function.id


def test_the_package_never_unpickles_or_executes_what_it_reads():
  """Source check: np.load always with allow_pickle=False; no pickle, eval or exec."""
  forbidden_modules = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve",
                       "marshal", "yaml", "torch", "flax.training.checkpoints"}
  problems, np_loads = [], 0
  for path in sorted(PACKAGE.rglob("*.py")):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
      if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom):
          names = [node.module or ""] + [f"{node.module}.{n}" for n in names]
        problems += [f"{path.name}:{node.lineno} imports {n}" for n in names
                     if n in forbidden_modules or n.split(".")[0] in {"pickle", "dill"}]
    for node, name in _calls(tree):
      if name in ("eval", "exec", "compile", "__import__"):
        problems.append(f"{path.name}:{node.lineno} calls {name}")
      if name in ("np.load", "numpy.load", "jnp.load"):
        np_loads += 1
        safe = [k for k in node.keywords if k.arg == "allow_pickle"
                and isinstance(k.value, ast.Constant) and k.value.value is False]
        if not safe:
          problems.append(f"{path.name}:{node.lineno} calls {name} without allow_pickle=False")
  assert not problems, problems
  assert np_loads >= 2  # The check found the loaders it guards (image_files.load_npy, volumes).


class _Payload:
  """Unpickling this object creates a folder: proof that a file's code ran."""

  def __init__(self, path):
    self.path = str(path)

  def __reduce__(self):
    return (os.mkdir, (self.path,))


def _pickled_array(path, sentinel):
  np.save(path, np.array([_Payload(sentinel)], dtype=object), allow_pickle=True)
  return path


def test_a_pickled_npy_is_refused_not_executed(untrained_workdir, tmp_path):
  sentinel = tmp_path / "code_ran"
  # The files really are dangerous: loading one unsafely runs its code.
  np.load(_pickled_array(tmp_path / "probe.npy", sentinel), allow_pickle=True)
  assert sentinel.is_dir()
  sentinel.rmdir()

  folder = tmp_path / "images"
  folder.mkdir()
  _pickled_array(folder / "scan.npy", sentinel)
  with pytest.raises(data.DataError, match="Object .pickled. arrays are refused"):
    data.load_image_folder(folder, (16, 16))

  retina = tmp_path / "retina"
  (retina / "image_with_GA").mkdir(parents=True)
  (retina / "label_with_GA").mkdir()
  from skimage import io  # pylint: disable=import-outside-toplevel
  io.imsave(retina / "image_with_GA" / "image1.png", np.zeros((20, 20, 3), np.uint8),
            check_contrast=False)
  _pickled_array(retina / "label_with_GA" / "label1.npy", sentinel)
  with pytest.raises(data.DataError, match="label1.npy: cannot read it as a plain numpy"):
    data.load_retina(retina, (16, 16))

  np.savez(tmp_path / "volume.npz", vol=np.array([_Payload(sentinel)], dtype=object))
  with pytest.raises(data.DataError, match="Object .pickled. arrays are refused"):
    data.load_volume_slices(tmp_path / "volume.npz", (16, 16))

  failures = []
  summary = predict.predict_path(cuts_jax.load(untrained_workdir), folder, tmp_path / "out",
                                 show_progress=False,
                                 on_failure=lambda path, reason: failures.append(reason))
  assert not summary.ok and "Object (pickled) arrays are refused" in failures[0]
  assert not sentinel.exists()


def test_config_json_is_parsed_never_executed(untrained_workdir, tmp_path):
  workdir = copy_workdir(untrained_workdir, tmp_path / "copy")
  sentinel = tmp_path / "code_ran"
  (workdir / "config.json").write_text(
      f'{{"data": {{}}, "model": __import__("os").mkdir("{sentinel}"), "sampling": {{}}}}')
  with pytest.raises(ValueError, match="config.json is not valid JSON"):
    cuts_jax.load(workdir)
  with pytest.raises(ValueError, match="config.json is not valid JSON"):
    train.train_and_evaluate(tiny.get_config(), workdir)
  assert not sentinel.exists()


# --- unwritable and full disks fail at start -------------------------------------------------

def _assert_all_refuse(workdir, output, message, *, params, inputs):
  """Training and prediction into unusable folders fail before any work."""
  with pytest.raises(OSError, match=f"cannot write to the workdir .*{message}"):
    train.train_and_evaluate(tiny.get_config(), workdir)
  with pytest.raises(OSError, match=f"cannot write to .*{message}.*--output"):
    predict.predict_path(params, inputs, output, show_progress=False)


def test_paths_that_cannot_be_created_fail_at_start(untrained_workdir, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  params = cuts_jax.load(untrained_workdir)
  _assert_all_refuse(blocker / "workdir", blocker / "out", "Not a directory", params=params,
                     inputs=_photo_folder(tmp_path / "in"))
  # evaluate writes to workdir/evaluation: here a file is in the way.
  workdir = copy_workdir(untrained_workdir, tmp_path / "copy")
  (workdir / "evaluation").write_text("")
  with pytest.raises(OSError, match="cannot write to .*evaluation .*--workdir"):
    evaluate.evaluate(tiny.get_config(), workdir, params=params)


def test_a_full_disk_fails_at_start_monkeypatched(untrained_workdir, tmp_path, monkeypatch):
  """Every write reports ENOSPC (the variant that runs anywhere, without mounting)."""
  params = cuts_jax.load(untrained_workdir)
  workdir = copy_workdir(untrained_workdir, tmp_path / "copy")
  before = _snapshot(workdir)
  inputs = _photo_folder(tmp_path / "in")

  def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(pathlib.Path, "write_bytes", no_space)  # train.py's probe.
  monkeypatch.setattr(os, "fsync", no_space)  # checkpointing.check_writable's probe.
  _assert_all_refuse(workdir, tmp_path / "out", "No space left on device", params=params,
                     inputs=inputs)
  with pytest.raises(OSError, match="No space left on device.*--workdir"):
    evaluate.evaluate(tiny.get_config(), workdir, params=params)
  monkeypatch.undo()
  assert _snapshot(workdir) == before
  _assert_checkpoints_load(workdir)


def test_a_full_tmpfs_fails_at_start(untrained_workdir, tmp_path):
  params = cuts_jax.load(untrained_workdir)
  with tmpfs(tmp_path / "full", size="512k") as mount:
    _assert_all_refuse(mount / "workdir", mount / "out", "No space left on device",
                       params=params, inputs=_photo_folder(tmp_path / "in"))


def test_a_read_only_workdir_refuses_training_but_still_loads(untrained_workdir, tmp_path):
  params = cuts_jax.load(untrained_workdir)
  with tmpfs(tmp_path / "mount", size="8m") as mount:
    workdir = copy_workdir(untrained_workdir, mount / "run")
    before = _snapshot(workdir)
    _remount_read_only(mount)
    _assert_all_refuse(workdir, mount / "out", "Read-only file system", params=params,
                       inputs=_photo_folder(tmp_path / "in"))
    with pytest.raises(OSError, match="Read-only file system.*--workdir"):
      evaluate.evaluate(tiny.get_config(), workdir, params=params)
    assert _snapshot(workdir) == before
    _assert_checkpoints_load(workdir)  # Loading never writes.
    image = np.random.default_rng(0).random((10, 12, 3))
    np.testing.assert_array_equal(cuts_jax.segment(cuts_jax.load(workdir), image),
                                  cuts_jax.segment(params, image))


def test_predict_stops_when_the_disk_fills_up(untrained_workdir, tmp_path, monkeypatch):
  params = cuts_jax.load(untrained_workdir)
  folder = _photo_folder(tmp_path / "in", count=3)
  written = []
  real_write = medical.write_label_png

  def fill_up(labels, path):
    if written:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    written.append(path)
    return real_write(labels, path)

  monkeypatch.setattr(medical, "write_label_png", fill_up)
  with pytest.raises(OSError, match=r"No space left on device\); stopped at .*photo1.npy after "
                                    r"1 segmented input"):
    predict.predict_path(params, folder, tmp_path / "out", num_clusters=2, show_progress=False)
  assert (tmp_path / "out" / "photo0_labels.png").exists()


def test_predict_cli_with_an_unwritable_output_says_so(untrained_workdir, tmp_path):
  (tmp_path / "a_file").write_text("")
  environment = {**os.environ, "XLA_FLAGS": SUBPROCESS_XLA_FLAGS}
  result = subprocess.run(
      [sys.executable, "-m", "cuts_jax.apps.predict", f"--workdir={untrained_workdir}",
       f"--input={_photo_folder(tmp_path / 'in')}", f"--output={tmp_path / 'a_file' / 'out'}"],
      cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=180)
  assert result.returncode != 0
  assert "cuts_jax.apps.predict: error: cannot write to" in result.stderr
  assert "--output" in result.stderr and "Traceback" not in result.stderr


# --- a failed run loses nothing --------------------------------------------------------------

def test_failed_runs_leave_checkpoints_and_outputs_untouched(untrained_workdir, tmp_path,
                                                             monkeypatch):
  workdir = copy_workdir(untrained_workdir, tmp_path / "copy")
  before = _snapshot(workdir)
  assert {"config.json", "metrics.jsonl", "checkpoints/2/_CHECKPOINT_METADATA",
          "checkpoints/4/_CHECKPOINT_METADATA"} <= set(before)
  gray = tmp_path / "gray"
  gray.mkdir()
  for index in range(4):
    np.save(gray / f"g{index}.npy", np.random.default_rng(index).random((32, 32)))

  def other_model(config):
    config.model.features = (8, 32)

  def missing_data(config):
    config.data.kind, config.data.root = "retina", str(tmp_path / "absent")

  def images_too_small(config):
    config.data.image_size = (12, 12)

  def gray_images(config):
    config.data.kind, config.data.root = "folder", str(gray)

  for change, error, message in [
      (other_model, ValueError, "different config.model.features"),
      (missing_data, data.DataError, "retina GA data set not found"),
      (images_too_small, ValueError, "too small for patches"),
      (gray_images, ValueError, r"conv0/kernel of shape \(5, 5, 3, 8\); this run's model "
                                r"needs \(5, 5, 1, 8\)")]:
    config = tiny.get_config()
    config.training.num_steps = 8
    change(config)
    with pytest.raises(error, match=message):
      train.train_and_evaluate(config, workdir)
    assert _snapshot(workdir) == before, change.__name__
  _assert_checkpoints_load(workdir)
