"""Bad input gets a clear error, never a crash, a hang or a silently wrong answer.

Covers `segment`, `embed`, `select`, the loaders, training's own input checks,
checkpoints that do not fit their config, and the predict and evaluate
command-line tools (the training CLI's errors: test_train.py and
test_determinism.py).
Models here are untrained (random weights): what is tested is the handling of
input, not the quality of segments, and no test waits for training.
"""

import functools
import json
import os
import shutil
import subprocess
import sys

from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import io

import cuts_jax
from configs import default
from configs import tiny
from conftest import REPO_ROOT
from conftest import SUBPROCESS_XLA_FLAGS
from cuts_jax import sampling
from cuts_jax import segmentation
from cuts_jax import step as step_lib
from cuts_jax import train
from cuts_jax.io import datasets as data

NUM_CLUSTERS = 3


def _params(config, channels):
  state = step_lib.create_train_state(jax.random.key(0), config, image_shape=(32, 32, channels))
  return segmentation.SegmentationParams.from_train_state(state, config)


@pytest.fixture(scope="module")
def rgb_params():
  return _params(tiny.get_config(), 3)


@pytest.fixture(scope="module")
def gray_params():
  return _params(tiny.get_config(), 1)


def _assert_label_map(labels, shape):
  """int32 (H, W) segments numbered 0, 1, ... without gaps."""
  assert labels.dtype == np.int32 and labels.shape == tuple(shape)
  np.testing.assert_array_equal(np.unique(labels), np.arange(labels.max() + 1))


# --- segment ---------------------------------------------------------------------------------

@pytest.mark.parametrize("image, message", [
    (np.zeros(10), "expected one image of shape"),
    (np.zeros((1, 8, 8, 3)), "call segment once per image"),
    (np.zeros((1, 1, 8, 8, 3)), "expected one image of shape"),
    (np.zeros((8, 8, 0)), "expected 1 to 4 channels"),
    (np.zeros((8, 8, 5)), "expected 1 to 4 channels"),
    (np.zeros((3, 16, 16)), "np.moveaxis"),  # Channels first.
    (np.zeros((8, 8)), "trained on 3-channel images"),
    (np.zeros((8, 8, 2)), "trained on 3-channel images"),
    (np.full((8, 8, 3), np.nan), "NaN or infinite"),
    (np.pad(np.full((1, 1, 3), np.inf), ((3, 4), (3, 4), (0, 0))), "NaN or infinite"),
    (np.full((8, 8, 3), -np.inf, np.float32), "NaN or infinite"),
    (np.zeros((0, 8, 3)), "too small"),
    (np.zeros((1, 8, 3)), "too small"),
    (np.zeros((8, 8, 3), object), "not numeric"),
    (np.zeros((8, 8, 3), complex), "not numeric"),
    (np.full((8, 8, 3), "a"), "not numeric"),
])
def test_segment_refuses_bad_images_with_a_reason(rgb_params, image, message):
  with pytest.raises(ValueError, match=message):
    cuts_jax.segment(rgb_params, image, num_clusters=NUM_CLUSTERS)


@pytest.mark.parametrize("image", [
    np.zeros((12, 10, 3)), np.full((12, 10, 3), 255, np.uint8),
    np.full((12, 10, 3), 7, np.int16), np.ones((12, 10, 3), bool),
    np.full((12, 10, 3), 0.5, np.float32),
], ids=["zeros", "uint8_white", "int16", "bool", "float_grey"])
def test_a_constant_image_gives_a_valid_label_map(rgb_params, image):
  labels = cuts_jax.segment(rgb_params, image, num_clusters=NUM_CLUSTERS)
  _assert_label_map(labels, image.shape[:2])


@pytest.mark.parametrize("shape", [(2, 2), (2, 3), (3, 2), (5, 7), (2, 41), (33, 18)])
def test_small_odd_and_non_square_images_segment(rgb_params, gray_params, shape):
  rng = np.random.default_rng(sum(shape))
  _assert_label_map(cuts_jax.segment(gray_params, rng.random(shape),
                                     num_clusters=NUM_CLUSTERS), shape)
  _assert_label_map(cuts_jax.segment(rgb_params, rng.random(shape + (3,)),
                                     num_clusters=NUM_CLUSTERS), shape)


def test_images_smaller_than_the_receptive_field_segment():
  """The paper's encoder sees 31 px; padding lets it segment an image of 2 px a side."""
  config = default.get_config()
  params = _params(config, 1)
  assert 1 + sum(k - 1 for k in params.encoder.kernel_sizes) == 31
  rng = np.random.default_rng(0)
  for shape in [(2, 2), (3, 40)]:
    _assert_label_map(cuts_jax.segment(params, rng.random(shape), num_clusters=NUM_CLUSTERS),
                      shape)


def test_16_bit_and_float64_images_are_scaled_as_documented(rgb_params):
  """uint16 is min-max scaled, float64 in [0, 1] kept: the same labels as float32 input."""
  rng = np.random.default_rng(3)
  raw = rng.integers(100, 60_000, (20, 24, 3)).astype(np.uint16)
  scaled = ((raw - raw.min()) / (raw.max() - raw.min())).astype(np.float32)
  segment = functools.partial(cuts_jax.segment, rgb_params, num_clusters=NUM_CLUSTERS)
  np.testing.assert_array_equal(segment(raw), segment(scaled))
  np.testing.assert_array_equal(segment(scaled.astype(np.float64)), segment(scaled))
  # Values near float64's limits are scaled without overflowing to NaN.
  huge = np.where(scaled > 0.5, 1e308, -1e308)
  np.testing.assert_array_equal(segment(huge), segment((scaled > 0.5).astype(np.float32)))


@pytest.mark.parametrize("resize_to", [(0, 0), (16,), (1, 16), (16.5, 16), "16x16", (True, 16)])
def test_segment_refuses_a_bad_resize_to(rgb_params, resize_to):
  with pytest.raises(ValueError, match="resize_to"):
    cuts_jax.segment(rgb_params, np.zeros((8, 8, 3)), resize_to=resize_to)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_clusters=0), "num_clusters"), (dict(num_clusters=-2), "num_clusters"),
    (dict(method="watershed"), "method"),
])
def test_segment_refuses_bad_settings(rgb_params, kwargs, message):
  with pytest.raises(ValueError, match=message):
    cuts_jax.segment(rgb_params, np.zeros((8, 8, 3)), **kwargs)


_DTYPES = [np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]


@st.composite
def _shapes(draw, channels):
  """Half shapes `segment` must accept for this model, half anything (other ranks too)."""
  if draw(st.booleans()):
    side = st.integers(2, 9)
    channel_axes = ([()] if channels == 1 else [(4,)]) + [(channels,)]
    return (draw(side), draw(side)) + draw(st.sampled_from(channel_axes))
  side = st.integers(0, 9)
  rank = draw(st.sampled_from([1, 2, 3, 3, 4]))
  if rank == 4:
    return (draw(st.integers(1, 2)), draw(side), draw(side), channels)
  shape = tuple(draw(side) for _ in range(min(rank, 2)))
  if rank == 3:
    shape += (draw(st.sampled_from([channels, 0, 1, 3, 4, 5])),)
  return shape


@st.composite
def _images(draw, channels):
  """Arrays of random shape, dtype and values (NaN and Inf included for floats)."""
  dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
  elements = None
  if dtype.kind == "f":
    width = 8 * dtype.itemsize
    elements = draw(st.sampled_from([
        st.floats(0.0, 1.0, width=width),
        st.floats(allow_nan=False, allow_infinity=False, width=width),
        st.floats(width=width)]))
  return draw(hnp.arrays(dtype, draw(_shapes(channels)), elements=elements))


def _expected_problem(image, channels):
  """What `segment` documents it refuses in this image, or None when it must work."""
  if image.ndim not in (2, 3):
    return "expected one image of shape"
  count = 1 if image.ndim == 2 else image.shape[-1]
  if count not in (1, 2, 3, 4):
    return "expected 1 to 4 channels"
  if min(count, 3) != channels:
    return "trained on"
  if min(image.shape[:2]) < 2:
    return "too small"
  if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
    return "NaN or infinite"
  return None


@pytest.mark.parametrize("channels", [1, 3])
def test_segment_on_arbitrary_arrays(rgb_params, gray_params, channels):
  """Property: a documented ValueError, or an int32 (H, W) map of segments 0, 1, ..."""
  params = gray_params if channels == 1 else rgb_params

  @settings(max_examples=30, deadline=None, derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
  @given(image=_images(channels))
  def check(image):
    problem = _expected_problem(image, channels)
    if problem is not None:
      with pytest.raises(ValueError, match=problem):
        cuts_jax.segment(params, image, num_clusters=NUM_CLUSTERS)
      return
    labels = cuts_jax.segment(params, image, num_clusters=NUM_CLUSTERS)
    _assert_label_map(labels, image.shape[:2])

  check()


# --- embed and select ------------------------------------------------------------------------

@pytest.mark.parametrize("images, message", [
    (np.zeros((8, 8, 3), np.float32), r"shape \(B, H, W, 3\)"),
    (np.zeros((1, 8, 8, 1), np.float32), r"shape \(B, H, W, 3\)"),
    (np.zeros((1, 0, 8, 3), np.float32), "H, W"),
    (np.zeros((1, 1, 8, 8, 3), np.float32), r"shape \(B, H, W, 3\)"),
    (np.full((1, 8, 8, 3), 200, np.uint8), "float images"),
    (np.full((1, 8, 8, 3), np.nan, np.float32), "NaN"),
    (np.full((1, 8, 8, 3), 200.0, np.float32), r"in \[0, 1\]"),
])
def test_embed_refuses_bad_batches(rgb_params, images, message):
  with pytest.raises(ValueError, match=message):
    cuts_jax.embed(rgb_params, images)


def test_embed_checks_values_only_outside_jit(rgb_params):
  images = np.random.default_rng(0).random((2, 6, 7, 3)).astype(np.float32)
  eager = cuts_jax.embed(rgb_params, images)
  np.testing.assert_allclose(jax.jit(cuts_jax.embed)(rgb_params, images), eager,
                             rtol=1e-5, atol=1e-6)
  assert eager.shape == (2, 6, 7, 16) and bool(jnp.all(jnp.isfinite(eager)))


@pytest.mark.parametrize("pixel", [(1,), (0, 0, 0), 3, (0.5, 1), (True, 0), "01"])
def test_select_refuses_malformed_pixels(pixel):
  with pytest.raises(ValueError, match="pixel"):
    cuts_jax.select(np.zeros((4, 4), np.int32), pixel)


# --- loaders ---------------------------------------------------------------------------------

def _retina(root, *, label=None, image_shape=(20, 20, 3), with_label=True):
  (root / "image_with_GA").mkdir(parents=True)
  (root / "label_with_GA").mkdir()
  io.imsave(root / "image_with_GA" / "image1.png", np.zeros(image_shape, np.uint8),
            check_contrast=False)
  if with_label:
    np.save(root / "label_with_GA" / "label1.npy",
            np.zeros(image_shape[:2], np.uint8) if label is None else label)
  return root


def test_empty_folders_are_refused(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(data.DataError, match="holds no images"):
    data.load_image_folder(tmp_path / "empty", (16, 16))
  with pytest.raises(data.DataError, match="no image_with_GA"):
    data.load_retina(tmp_path / "empty", (16, 16))
  with pytest.raises(data.DataError, match="no images/train"):
    data.load_bsds500(tmp_path / "empty", (16, 16))


@pytest.mark.parametrize("name, content, message", [
    ("truncated.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "cannot read the image"),
    ("text.jpg", b"not a JPEG at all", "cannot read the image"),
    ("truncated.npy", b"\x93NUMPY\x01\x00", "cannot read it as a plain numpy array"),
    ("empty.npy", b"", "cannot read it as a plain numpy array"),
])
def test_unreadable_files_name_the_file(tmp_path, name, content, message):
  np.save(tmp_path / "good.npy", np.zeros((20, 20), np.float32))
  (tmp_path / name).write_bytes(content)
  with pytest.raises(data.DataError, match=message) as error:
    data.load_image_folder(tmp_path, (16, 16))
  assert name in str(error.value)


@pytest.mark.parametrize("array, message", [
    (np.full((20, 20), np.nan), "NaN or infinite"),
    (np.zeros((0, 20)), "holds no pixels"),
    (np.zeros(20), "expected a 2-D image"),
    (np.zeros((20, 20, 7)), "expected 1 to 4 channels"),
    (np.zeros((20, 20), complex), "not numeric"),
])
def test_unusable_arrays_in_a_folder_name_the_file(tmp_path, array, message):
  np.save(tmp_path / "bad.npy", array)
  with pytest.raises(data.DataError, match=message) as error:
    data.load_image_folder(tmp_path, (16, 16))
  assert "bad.npy" in str(error.value)


def test_a_folder_with_unmixable_channel_counts_is_refused(tmp_path):
  np.save(tmp_path / "a.npy", np.zeros((20, 20, 2)))
  np.save(tmp_path / "b.npy", np.zeros((20, 20, 3)))
  with pytest.raises(data.DataError, match="different channel counts"):
    data.load_image_folder(tmp_path, (16, 16))
  np.save(tmp_path / "a.npy", np.zeros((20, 20)))  # Gray and RGB mix: gray is repeated.
  assert data.load_image_folder(tmp_path, (16, 16)).images.shape == (2, 16, 16, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(with_label=False), "no matching label"),
    (dict(label=np.zeros((20, 21), np.uint8)), r"has shape \(20, 21\)"),
    (dict(label=np.zeros((20, 20, 2, 2))), r"has shape \(20, 20, 2, 2\)"),
    (dict(label=np.zeros(20)), r"has shape \(20,\)"),
    (dict(label=np.full((20, 20), "GA")), "numeric mask"),
])
def test_retina_labels_that_do_not_fit_are_refused(tmp_path, kwargs, message):
  root = _retina(tmp_path / "retina", **kwargs)
  with pytest.raises(data.DataError, match=message):
    data.load_retina(root, (16, 16))


def test_damaged_volume_files_are_refused(tmp_path):
  np.savez(tmp_path / "good.npz", vol=np.zeros((3, 20, 20)))
  (tmp_path / "truncated.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:60])
  with pytest.raises(data.DataError, match="truncated.npz: cannot read it"):
    data.load_volume_slices(tmp_path / "truncated.npz", (16, 16))
  np.savez(tmp_path / "flat.npz", vol=np.zeros((20, 20)))
  with pytest.raises(data.DataError, match="expected a 3-D volume"):
    data.load_volume_slices(tmp_path / "flat.npz", (16, 16))
  np.savez(tmp_path / "other.npz", image=np.zeros((3, 20, 20)))
  with pytest.raises(data.DataError, match="no array 'vol'"):
    data.load_volume_slices(tmp_path / "other.npz", (16, 16))
  np.savez(tmp_path / "nan.npz", vol=np.full((3, 20, 20), np.nan))
  with pytest.raises(data.DataError, match="'vol': image holds NaN"):
    data.load_volume_slices(tmp_path / "nan.npz", (16, 16))


# --- training's own checks -------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [dict(image_size=(12, 12)), dict(crop_size=8)])
def test_training_refuses_images_smaller_than_sampling_needs(tmp_path, overrides):
  config = tiny.get_config()
  if "image_size" in overrides:
    config.data.image_size = overrides["image_size"]
  else:
    config.training.crop_size = overrides["crop_size"]
  with pytest.raises(ValueError, match="too small for patches of 5 px"):
    train.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "checkpoints").exists()  # Refused before anything was trained.


def test_pair_selection_on_a_constant_image_is_finite():
  """SSIM of constant patches has no data range: no pair is kept, and nothing is NaN.

  Training on constant images end to end: test_determinism.py.
  """
  config = tiny.get_config()
  settings = sampling.SamplingSettings.from_config(config.sampling)
  select = jax.jit(functools.partial(sampling.select_pairs, settings=settings))
  for value in (0.0, 0.5, 1.0):
    pairs = select(jax.random.key(0), jnp.full((16, 16, 3), value))
    assert not bool(jnp.any(pairs.valid_anchor)) and not bool(jnp.any(pairs.negative_mask))
    assert bool(jnp.all(jnp.isfinite(pairs.anchor_patches)))


# --- checkpoints that do not fit their config ------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("embedding_dim", 0, "embedding/bias has shape"),
    ("kernel_sizes", [3, 3], r"conv0/kernel has shape \(5, 5, 3, 8\)"),
    ("features", [8, 16, 32], "(batch_norm|conv)2"),
])
def test_load_refuses_a_config_json_that_does_not_fit_the_checkpoint(
    untrained_workdir, tmp_path, field, value, message):
  workdir = tmp_path / "copy"
  shutil.copytree(untrained_workdir, workdir)
  saved = json.loads((workdir / "config.json").read_text())
  saved["model"][field] = value
  if field == "features":
    saved["model"]["kernel_sizes"] = [5, 3, 3]
  (workdir / "config.json").write_text(json.dumps(saved))
  with pytest.raises(ValueError, match=message) as error:
    cuts_jax.load(workdir)
  assert "different runs, or config.json was edited" in str(error.value)


@pytest.mark.parametrize("content, message", [
    ("{'model': {}}", "not valid JSON"),
    ("[1, 2]", "lacks the config section"),
    ('{"model": {}}', r"lacks the config section\(s\) \['data', 'sampling'\]"),
])
def test_load_refuses_a_damaged_config_json(untrained_workdir, tmp_path, content, message):
  workdir = tmp_path / "copy"
  shutil.copytree(untrained_workdir, workdir)
  (workdir / "config.json").write_text(content)
  with pytest.raises(ValueError, match=message):
    cuts_jax.load(workdir)


def test_load_of_a_damaged_checkpoint_says_which_and_what_to_do(untrained_workdir, tmp_path):
  workdir = tmp_path / "copy"
  shutil.copytree(untrained_workdir, workdir)
  for path in (workdir / "checkpoints" / "4").rglob("*"):
    if path.is_file() and path.parent.name == "d":  # The array data.
      path.write_bytes(path.read_bytes()[:8])
  with pytest.raises(ValueError, match=r"checkpoint of step 4 .* cannot be read") as error:
    cuts_jax.load(workdir)
  assert "step=" in str(error.value) and "[2, 4]" in str(error.value)
  assert cuts_jax.load(workdir, step=2).channels == 3  # The older one still loads.
  shutil.rmtree(workdir / "checkpoints")
  with pytest.raises(FileNotFoundError, match="no checkpoints/ folder"):
    cuts_jax.load(workdir)


# --- the command-line tools ------------------------------------------------------------------
# (The training CLI's report of a missing data set is tested in test_train.py.)

def _run(module, *args):
  environment = {**os.environ, "XLA_FLAGS": SUBPROCESS_XLA_FLAGS, "PYTHONUNBUFFERED": "1"}
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=environment,
                        capture_output=True, text=True, timeout=180)


def test_predict_cli_reports_every_bad_file_and_segments_the_rest(untrained_workdir, tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  rng = np.random.default_rng(0)
  np.save(folder / "good.npy", rng.random((12, 14, 3)))
  np.save(folder / "nan.npy", np.full((12, 14, 3), np.nan))
  np.save(folder / "five_channels.npy", rng.random((12, 14, 5)))
  np.save(folder / "tiny.npy", rng.random((1, 14, 3)))
  np.save(folder / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
  (folder / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n")
  result = _run("cuts_jax.apps.predict", f"--workdir={untrained_workdir}", f"--input={folder}",
                f"--output={tmp_path / 'out'}", "--num_clusters=3")
  assert result.returncode == 1, result.stderr[-3000:]
  assert "1 of 6 input(s) segmented, 5 failed" in result.stdout
  assert "Traceback" not in result.stderr
  reasons = {os.path.basename(item["input"]): item["reason"]
             for item in json.loads((tmp_path / "out" / "summary.json").read_text())["failed"]}
  assert "NaN or infinite" in reasons["nan.npy"]
  assert "expected 1 to 4 channels" in reasons["five_channels.npy"]
  assert "too small" in reasons["tiny.npy"]
  assert "Object (pickled) arrays are refused" in reasons["pickled.npy"]
  assert "cannot read the image" in reasons["truncated.png"]
  _assert_label_map(io.imread(tmp_path / "out" / "good_labels.png").astype(np.int32), (12, 14))


def test_evaluate_cli_with_a_tampered_config_json(untrained_workdir, tmp_path):
  workdir = tmp_path / "copy"
  shutil.copytree(untrained_workdir, workdir)
  saved = json.loads((workdir / "config.json").read_text())
  saved["model"]["embedding_dim"] = 0
  (workdir / "config.json").write_text(json.dumps(saved))
  result = _run("cuts_jax.apps.evaluate", f"--workdir={workdir}")
  assert result.returncode != 0
  assert "cuts_jax.apps.evaluate: error: the weights do not fit" in result.stderr
  assert "Traceback" not in result.stderr
  assert not (workdir / "evaluation").exists()  # Refused before writing anything.
