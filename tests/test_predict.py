"""The inference CLI and `predict_path`: folders, single files, masks, bad files, volumes."""

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from skimage import io

import cuts_jax
from conftest import REPO_ROOT
from cuts_jax.apps import _predict_inputs
from cuts_jax.apps import predict
from cuts_jax.io import datasets as data


@pytest.fixture(scope="module")
def trained(trained_run):
  """The session's tiny RGB model (conftest's `trained_run`): (workdir, params)."""
  return trained_run.workdir, trained_run.params


def _image_folder(folder):
  """Three good images (RGB PNG, gray PNG, float NPY), a corrupt PNG and a text file."""
  folder.mkdir(parents=True)
  rng = np.random.default_rng(0)
  io.imsave(folder / "photo.png", rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
  io.imsave(folder / "gray.png", rng.integers(0, 256, (20, 20), dtype=np.uint8),
            check_contrast=False)
  np.save(folder / "scan2.npy", rng.random((16, 18, 3)))
  (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # Truncated.
  (folder / "notes.txt").write_text("not an image")
  return folder


def _digests(folder):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _run_cli(*args):
  return subprocess.run([sys.executable, "-m", "cuts_jax.apps.predict", *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_cli_on_a_folder_with_a_corrupt_file(trained, tmp_path):
  workdir, _ = trained
  inputs = _image_folder(tmp_path / "in")
  before = _digests(inputs)
  output = tmp_path / "out" / "nested"
  result = _run_cli(f"--workdir={workdir}", f"--input={inputs}", f"--output={output}",
                    "--pixel=2,3", "--num_clusters=3", "--scale=fixed")
  assert result.returncode != 0, result.stderr
  assert "3 of 4 input(s) segmented, 1 failed" in result.stdout
  assert "broken.png" in result.stderr and "cannot read" in result.stderr
  for name, shape in [("photo", (24, 30)), ("gray", (20, 20)), ("scan2", (16, 18))]:
    labels = io.imread(output / f"{name}_labels.png")
    assert labels.shape == shape and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.unique(labels), np.arange(labels.max() + 1))
    mask = io.imread(output / f"{name}_mask.png")
    np.testing.assert_array_equal(mask > 0, cuts_jax.select(labels, (2, 3)))
    assert io.imread(output / f"{name}_overlay.png").shape == shape + (3,)
  assert not list(output.glob("broken*"))
  assert _digests(inputs) == before  # Inputs untouched.
  summary = json.loads((output / "summary.json").read_text())
  assert len(summary["succeeded"]) == 3 and summary["skipped"] == ["notes.txt"]
  assert summary["failed"][0]["input"].endswith("broken.png")


def test_cli_says_clearly_when_the_input_is_missing(trained, tmp_path):
  result = _run_cli(f"--workdir={trained[0]}", f"--input={tmp_path / 'nowhere'}",
                    f"--output={tmp_path / 'out'}")
  assert result.returncode != 0
  assert "does not exist" in result.stderr and "Traceback" not in result.stderr
  assert not (tmp_path / "out").exists()


def test_a_single_file_matches_the_python_api(trained, tmp_path):
  _, params = trained
  image = np.random.default_rng(1).integers(0, 256, (28, 26, 3), dtype=np.uint8)
  io.imsave(tmp_path / "one.png", image)
  summary = predict.predict_path(params, tmp_path / "one.png", tmp_path / "results",
                                 pixel=(5, 6), num_clusters=4, seed=3)
  assert summary.ok and summary.line().startswith("1 of 1 input(s) segmented, 0 failed")
  labels = io.imread(tmp_path / "results" / "one_labels.png")
  np.testing.assert_array_equal(labels, cuts_jax.segment(params, image, num_clusters=4, seed=3))
  # The click's region is chosen by the model's scale rule among the scales.
  stack = cuts_jax.segment_hierarchy(params, image, num_clusters=4, seed=3)
  np.testing.assert_array_equal(io.imread(tmp_path / "results" / "one_mask.png") == 255,
                                cuts_jax.select(stack, (5, 6)))


def test_repeated_pixels_negative_clicks_and_the_scale_flag(trained, tmp_path):
  workdir, params = trained
  image = np.random.default_rng(4).integers(0, 256, (28, 26, 3), dtype=np.uint8)
  io.imsave(tmp_path / "one.png", image)
  result = _run_cli(f"--workdir={workdir}", f"--input={tmp_path / 'one.png'}",
                    f"--output={tmp_path / 'out'}", "--pixel=5,6", "--pixel=20,20",
                    "--negative=12,12", "--scale=medoid")
  assert result.returncode == 0, result.stderr
  stack = cuts_jax.segment_hierarchy(params, image)
  expected = cuts_jax.select(stack, [(5, 6), (20, 20)], negative=[(12, 12)], rule="medoid")
  np.testing.assert_array_equal(io.imread(tmp_path / "out" / "one_mask.png") == 255, expected)
  summary = predict.predict_path(params, tmp_path / "one.png", tmp_path / "k4", pixel=(5, 6),
                                 scale=4)
  assert summary.ok
  labels = cuts_jax.segment(params, image, num_clusters=4)
  np.testing.assert_array_equal(io.imread(tmp_path / "k4" / "one_labels.png"), labels)
  np.testing.assert_array_equal(io.imread(tmp_path / "k4" / "one_mask.png") == 255,
                                cuts_jax.select(labels, (5, 6)))
  bad = _run_cli(f"--workdir={workdir}", f"--input={tmp_path / 'one.png'}",
                 f"--output={tmp_path / 'bad'}", "--pixel=5,6", "--scale=coarse")
  assert bad.returncode != 0 and "--scale is 'coarse'" in bad.stderr
  with pytest.raises(ValueError, match="needs at least one --pixel"):
    predict.predict_path(params, tmp_path / "one.png", tmp_path / "bad2", negative=(1, 1))


def test_the_segment_size_is_the_models_unless_chosen(trained, tmp_path):
  workdir, params = trained
  image = np.random.default_rng(2).random((50, 44, 3))
  np.save(tmp_path / "big.npy", image)
  at_training = cuts_jax.segment(params, image, num_clusters=3)
  at_own = cuts_jax.segment(params, image, num_clusters=3, at_training_size=False)
  assert not np.array_equal(at_training, at_own)  # Otherwise nothing here could fail.
  own_model = params.with_settings(at_training_size=False)
  for model, flag, expected in [(params, "", at_training), (params, "own", at_own),
                                (own_model, "", at_own), (own_model, "training", at_training),
                                (params, "30,30", cuts_jax.segment(
                                    params, image, num_clusters=3, resize_to=(30, 30)))]:
    output = tmp_path / f"out_{flag}_{model is params}"
    predict.predict_path(model, tmp_path / "big.npy", output, num_clusters=3,
                         **predict.parse_segment_size(flag))
    np.testing.assert_array_equal(io.imread(output / "big_labels.png"), expected)
  # The command line's flag chooses it too (it once did nothing under the shipped configs).
  result = _run_cli(f"--workdir={workdir}", f"--input={tmp_path / 'big.npy'}",
                    f"--output={tmp_path / 'cli'}", "--num_clusters=3", "--segment_size=own")
  assert result.returncode == 0, result.stderr
  np.testing.assert_array_equal(io.imread(tmp_path / "cli" / "big_labels.png"), at_own)
  for bad in ("big", "1,40", "40"):
    with pytest.raises(ValueError, match="segment_size"):
      predict.parse_segment_size(bad)


def test_a_new_input_kind_is_one_reader_and_one_table_entry(trained, tmp_path, monkeypatch):
  _, params = trained
  monkeypatch.setitem(_predict_inputs.INPUT_KINDS, "text", _predict_inputs.InputKind(
      read=np.loadtxt, is_volume=False, suffixes=(".txt",)))
  image = np.random.default_rng(5).random((12, 14))
  np.savetxt(tmp_path / "plain.txt", image)
  summary = predict.predict_path(params, tmp_path / "plain.txt", tmp_path / "out",
                                 num_clusters=2)
  assert summary.ok
  np.testing.assert_array_equal(io.imread(tmp_path / "out" / "plain_labels.png"),
                                cuts_jax.segment(params, np.repeat(image[..., None], 3, -1),
                                                 num_clusters=2))


def test_a_pixel_outside_one_image_fails_only_that_image(trained, tmp_path):
  _, params = trained
  folder = tmp_path / "in"
  folder.mkdir()
  io.imsave(folder / "small.png", np.zeros((8, 8, 3), np.uint8), check_contrast=False)
  io.imsave(folder / "large.png", np.full((30, 30, 3), 90, np.uint8), check_contrast=False)
  failures = []
  summary = predict.predict_path(params, folder, tmp_path / "out", pixel=(20, 20),
                                 num_clusters=2, show_progress=False,
                                 on_failure=lambda path, reason: failures.append(reason))
  assert len(summary.succeeded) == 1 and len(failures) == 1 and "outside" in failures[0]


def test_bad_paths_and_arguments_are_refused_clearly(trained, tmp_path):
  _, params = trained
  with pytest.raises(FileNotFoundError, match="does not exist"):
    predict.predict_path(params, tmp_path / "missing", tmp_path / "out")
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "readme.txt").write_text("no images")
  with pytest.raises(data.DataError, match="nothing to segment"):
    predict.predict_path(params, tmp_path / "empty", tmp_path / "out")
  with pytest.raises(ValueError, match="input folder"):
    predict.predict_path(params, tmp_path / "empty", tmp_path / "empty")
  with pytest.raises(ValueError, match="ROW,COL"):
    predict.parse_pixel("12")
  with pytest.raises(ValueError, match="I,J,K"):
    predict.parse_pixel("1,2,3,4")
  with pytest.raises(ValueError, match="negative"):
    predict.parse_pixel("-1,4")
  assert predict.parse_pixel("12, 4") == (12, 4)
  assert predict.parse_pixel("12,4,0") == (12, 4, 0)


def test_an_output_folder_inside_the_input_folder_is_not_read_back(trained, tmp_path):
  _, params = trained
  io.imsave(tmp_path / "a.png", np.zeros((10, 10, 3), np.uint8), check_contrast=False)
  for _ in range(2):  # The second run must not segment the first run's PNGs.
    summary = predict.predict_path(params, tmp_path, tmp_path / "out", num_clusters=2)
    assert [item["input"] for item in summary.succeeded] == [str(tmp_path / "a.png")]


def test_volumes_and_dicom_series(trained, tmp_path):
  nibabel = pytest.importorskip("nibabel", reason="nibabel is not installed (medical extra)")
  pytest.importorskip("pydicom", reason="pydicom is not installed (medical extra)")
  from test_medical import _write_series  # pylint: disable=import-outside-toplevel
  _, params = trained
  folder = tmp_path / "in"
  folder.mkdir()
  rng = np.random.default_rng(3)
  affine = np.diag([0.7, 0.8, 3.0, 1.0])
  nibabel.save(nibabel.Nifti1Image(rng.integers(0, 900, (12, 14, 5)).astype(np.int16), affine),
               folder / "scan.nii.gz")
  _write_series(folder / "ct", [rng.integers(0, 900, (10, 12)) for _ in range(3)])
  output = tmp_path / "out"
  summary = predict.predict_path(params, folder, output, pixel=(1, 2, 0), num_clusters=3)
  assert summary.ok and len(summary.succeeded) == 2
  labels = nibabel.load(output / "scan_labels.nii.gz")
  assert labels.shape == (12, 14, 5)
  np.testing.assert_allclose(labels.affine, affine)
  mask = nibabel.load(output / "scan_mask.nii.gz")
  np.testing.assert_allclose(mask.affine, affine)
  values = np.asanyarray(labels.dataobj)
  # The voxel selects the 3-D connected part of its segment.
  np.testing.assert_array_equal(np.asanyarray(mask.dataobj) == 1,
                                cuts_jax.select(values, (1, 2, 0)))
  assert nibabel.load(output / "ct_labels.nii.gz").shape == (10, 12, 3)
  overlays = sorted(p.name for p in output.glob("scan_overlay_slice*.png"))
  assert overlays == ["scan_overlay_slice000.png", "scan_overlay_slice001.png",
                      "scan_overlay_slice002.png", "scan_overlay_slice003.png"]

  # A pixel (ROW,COL) is refused for a volume, a voxel (I,J,K) for an image.
  io.imsave(folder / "photo.png", np.zeros((12, 12, 3), np.uint8), check_contrast=False)
  summary = predict.predict_path(params, folder, tmp_path / "out2", pixel=(1, 2),
                                 num_clusters=3)
  reasons = {pathlib.Path(f["input"]).name: f["reason"] for f in summary.failed}
  assert set(reasons) == {"scan.nii.gz", "ct"} and "--pixel=I,J,K" in reasons["ct"]
  summary = predict.predict_path(params, folder / "photo.png", tmp_path / "out3",
                                 pixel=(1, 2, 0), num_clusters=3)
  assert "ROW,COL" in summary.failed[0]["reason"]


def test_importing_with_the_training_cli_defines_no_clashing_flags():
  from absl import flags
  import cuts_jax.main  # pylint: disable=import-outside-toplevel,unused-import
  import cuts_jax.apps.predict  # pylint: disable=import-outside-toplevel,reimported
  # The CLI's flags exist only when it runs as a program.
  assert "config" in flags.FLAGS and "input" not in flags.FLAGS
