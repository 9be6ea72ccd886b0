"""What the napari widget does, without napari or Qt: segment, select, save, train; the reader."""

import pathlib
import types

import nibabel
import numpy as np
import pytest
from skimage import io

import cuts_jax
from configs import tiny
from cuts_jax.apps.napari import _actions
from cuts_jax.apps.napari import _reader
from cuts_jax.apps.napari import _sample_data
from cuts_jax.io import medical
from cuts_jax.runs import checkpointing


@pytest.fixture(scope="module")
def params(tiny_workdir):
  return cuts_jax.load(tiny_workdir)


def test_layer_image_accepts_images_and_volumes_and_says_what_else_to_pick():
  assert _actions.layer_image(np.zeros((8, 9)), rgb=False).shape == (8, 9)
  rgb = _actions.layer_image(np.zeros((8, 9, 3)), rgb=True)
  assert not rgb.is_volume and rgb.shape == (8, 9)
  volume = _actions.layer_image(np.zeros((4, 8, 9)), rgb=False, axis=-1)
  assert volume.is_volume and volume.axis == 2 and volume.shape == (4, 8, 9)
  with pytest.raises(ValueError, match="RGB stack"):
    _actions.layer_image(np.zeros((4, 8, 9, 3)), rgb=True)
  with pytest.raises(ValueError, match="4 dimensions"):
    _actions.layer_image(np.zeros((2, 4, 8, 9)), rgb=False)
  with pytest.raises(ValueError, match="multiscale"):
    _actions.layer_image(np.zeros((8, 9)), rgb=False, multiscale=True)


def test_a_gray_image_segments_with_a_colour_model_and_selects_as_cuts_jax_does(params):
  rng = np.random.default_rng(0)
  gray = rng.integers(0, 256, (24, 20), dtype=np.uint8)
  segments = _actions.segment(params, _actions.layer_image(gray, rgb=False), num_clusters=3)
  expected = cuts_jax.segment(params, np.repeat(gray[..., None], 3, -1), num_clusters=3)
  hierarchy = cuts_jax.segment_hierarchy(params, np.repeat(gray[..., None], 3, -1))
  assert np.array_equal(segments.labels, expected)
  np.testing.assert_array_equal(segments.hierarchy.labels, hierarchy.labels)
  mask = _actions.select_segments(segments, [(3, 4), (20, 15)])
  assert np.array_equal(mask, cuts_jax.select(hierarchy, (3, 4)) | cuts_jax.select(hierarchy,
                                                                                    (20, 15)))
  mask = _actions.select_segments(segments, [(3, 4)], level=1)
  assert np.array_equal(mask, hierarchy.labels[1] == hierarchy.labels[1][3, 4])


def test_segmenting_takes_the_models_k_unless_told(params):
  # The widget's action once clustered with k = 10 whatever the model's k was.
  model = params.with_settings(num_clusters=3)
  image = np.random.default_rng(2).integers(0, 256, (24, 20, 3), dtype=np.uint8)
  segments = _actions.segment(model, _actions.layer_image(image, rgb=True))
  assert segments.settings.num_clusters == 3
  np.testing.assert_array_equal(segments.labels, cuts_jax.segment(model, image))
  assert not np.array_equal(segments.labels, cuts_jax.segment(model, image, num_clusters=10))
  chosen = _actions.segment(model, _actions.layer_image(image, rgb=True), num_clusters=5)
  assert chosen.settings.num_clusters == 5
  np.testing.assert_array_equal(chosen.labels, cuts_jax.segment(model, image, num_clusters=5))


def test_a_volume_selection_holds_the_click_and_only_its_label(params):
  rng = np.random.default_rng(1)
  volume = rng.normal(size=(3, 20, 22)).astype(np.float32)
  image = _actions.layer_image(volume, rgb=False, axis=0)
  segments = _actions.segment(params, image, num_clusters=3)
  assert segments.labels.shape == volume.shape and segments.axis == 0
  mask = _actions.select_segment(segments, (1, 5, 6))
  assert mask[1, 5, 6] and np.all(segments.labels[mask] == segments.labels[1, 5, 6])


def test_the_hierarchy_is_used_when_cuts_jax_has_one(monkeypatch, params):
  fine = np.arange(16, dtype=np.int32).reshape(4, 4) % 4
  coarse = (fine > 1).astype(np.int32)
  hierarchy = types.SimpleNamespace(labels=np.stack([fine, coarse]), scales=(1.0, 2.0))
  calls = []

  def fake_select(labels, pixel, *, level=None):
    calls.append(level)
    return labels.labels[0 if level == "persistent" else level] == 1

  monkeypatch.setattr(cuts_jax, "segment_hierarchy", lambda p, image, **_: hierarchy)
  monkeypatch.setattr(cuts_jax, "select", fake_select)
  segments = _actions.segment(params, _actions.layer_image(np.zeros((4, 4)), rgb=False))
  assert segments.num_levels == 2 and np.array_equal(segments.at_level(1), coarse)
  assert np.array_equal(segments.at_level("persistent"), segments.labels)
  _actions.select_segment(segments, (0, 0), level=1)
  assert calls == [1]


def test_mask_paths_follow_the_kind():
  assert _actions.mask_paths("/out/scan.png", is_volume=False) == (
      pathlib.Path("/out/scan_mask.png"), pathlib.Path("/out/scan_labels.png"))
  mask, labels = _actions.mask_paths("/out/brain_mask.nii", is_volume=True)
  assert (mask.name, labels.name) == ("brain_mask.nii.gz", "brain_labels.nii.gz")


def test_saving_a_2d_mask_writes_pngs_that_read_back(tmp_path):
  labels = np.array([[0, 1], [2, 1]], np.int32)
  mask_path, labels_path = _actions.save_mask(labels == 1, labels, tmp_path / "x.png")
  assert np.array_equal(io.imread(mask_path), (labels == 1) * 255)
  assert np.array_equal(io.imread(labels_path), labels)


def test_a_volume_read_here_saves_its_mask_in_the_scan_space(tmp_path):
  affine = np.array([[0, 0, 2.5, -10], [0, 1.5, 0, 4], [0.8, 0, 0, 7], [0, 0, 0, 1.0]])
  data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
  nibabel.save(nibabel.Nifti1Image(data, affine), tmp_path / "scan.nii.gz")
  reader = _reader.get_reader(str(tmp_path / "scan.nii.gz"))
  [(layer_data, attributes, kind)] = reader(str(tmp_path / "scan.nii.gz"))
  assert kind == "image" and attributes["name"] == "scan"
  assert attributes["scale"] == pytest.approx((0.8, 1.5, 2.5))
  like = _reader.layer_volume(layer_data, attributes["metadata"])
  labels = (data % 3).astype(np.int32)
  mask_path, labels_path = _actions.save_mask(labels == 1, labels, tmp_path / "out" / "scan",
                                              like=like)
  for path, expected in [(mask_path, labels == 1), (labels_path, labels)]:
    written = medical.read_nifti(path)
    assert np.allclose(written.affine, affine) and np.array_equal(written.data, expected)
  # A volume from elsewhere gets its spacing as the affine.
  mask_path, _ = _actions.save_mask(labels == 1, labels, tmp_path / "plain.nii.gz",
                                    spacing=(2.0, 3.0, 4.0))
  assert np.allclose(medical.read_nifti(mask_path).affine, np.diag([2.0, 3.0, 4.0, 1.0]))


def test_the_reader_takes_nifti_and_dicom_folders_only(tmp_path):
  (tmp_path / "photo.png").write_bytes(b"")
  assert _reader.get_reader(str(tmp_path / "photo.png")) is None
  assert _reader.get_reader(str(tmp_path)) is None  # A folder without .dcm files.
  assert _reader.get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.nii")]) is None


def test_samples_are_the_demo_images():
  [(image, attributes, kind)] = _sample_data.fundus()
  assert image.shape == (1411, 1411, 3) and attributes["rgb"] and kind == "image"


def test_training_config_starts_from_a_file_or_the_workdir(tmp_path, tiny_workdir):
  image = _actions.layer_image(np.zeros((5, 40, 48)), rgb=False, axis=0)
  config = _actions.training_config(tmp_path / "new", image, num_steps=3, crop_size=32,
                                    config_file=str(tiny.__file__))
  assert tuple(config.model.kernel_sizes) == (5, 3) and config.data.kind == "arrays"
  assert tuple(config.data.image_size) == (40, 48) and config.training.num_steps == 3
  assert config.training.crop_size == 32
  resumed = _actions.training_config(tiny_workdir, image, num_steps=7, crop_size=0)
  assert resumed.training.num_steps == 7
  assert resumed.model.features == checkpointing.read_config(tiny_workdir).model.features
  paper = _actions.training_config(tmp_path / "other", image, num_steps=3, crop_size=0)
  assert tuple(paper.model.kernel_sizes) == (15, 11, 7)
  with pytest.raises(FileNotFoundError, match="config file"):
    _actions.training_config(tmp_path, image, num_steps=1, crop_size=0,
                             config_file=str(tmp_path / "missing.py"))


def test_training_images_are_a_volume_s_slices_scaled_together():
  volume = np.stack([np.full((6, 7), 10.0), np.full((6, 7), 20.0)])
  dataset = _actions.training_images(_actions.layer_image(volume, rgb=False, axis=0))
  assert dataset.images.shape == (2, 6, 7, 1)
  assert dataset.images[0].max() == 0 and dataset.images[1].min() == 1
