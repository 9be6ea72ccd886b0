"""What the napari widget does without napari or Qt: segment, click, commit, save, train, read."""

import pathlib

import nibabel
import numpy as np
import pytest
from skimage import io

import cuts_jax
from configs import tiny
from cuts_jax import scales
from cuts_jax.apps.napari import _actions
from cuts_jax.apps.napari import _reader
from cuts_jax.apps.napari import _sample_data
from cuts_jax.apps.napari import _segmenting
from cuts_jax.apps.napari import _selection
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


def _clicks(*indices, positive=True):
  return [_selection.Click(tuple(index), positive=positive) for index in indices]


def test_a_gray_image_segments_with_a_colour_model_and_selects_as_cuts_jax_does(params):
  rng = np.random.default_rng(0)
  gray = rng.integers(0, 256, (24, 20), dtype=np.uint8)
  segments = _segmenting.segment(params, _actions.layer_image(gray, rgb=False), num_clusters=3)
  expected = cuts_jax.segment(params, np.repeat(gray[..., None], 3, -1), num_clusters=3)
  stack = cuts_jax.segment_hierarchy(params, np.repeat(gray[..., None], 3, -1))
  assert np.array_equal(segments.labels, expected)
  np.testing.assert_array_equal(segments.stack.labels, stack.labels)
  selection = _selection.select(segments.labels, segments.stack, _clicks((3, 4), (20, 15)))
  assert np.array_equal(selection.mask, cuts_jax.select(stack, [(3, 4), (20, 15)]))
  assert selection.level is not None and selection.num_clusters in stack.num_clusters
  selection = _selection.select(segments.labels, segments.stack, _clicks((3, 4)), level=1)
  assert np.array_equal(selection.mask, cuts_jax.select(stack, (3, 4), level=1))
  assert selection.level == 1 and selection.num_clusters == stack.num_clusters[1]


def test_kept_features_segment_at_any_k_as_cuts_jax_does(params):
  # Segment once embedded on every press; a new k now clusters the kept features.
  model = params.with_settings(num_clusters=3)
  image = np.random.default_rng(2).integers(0, 256, (24, 20, 3), dtype=np.uint8)
  layer = _actions.layer_image(image, rgb=True)
  settings = cuts_jax.resolve_settings(model)
  features = _segmenting.compute_features(model, layer, settings)
  segments = _segmenting.segments(model, features, settings)
  assert segments.settings.num_clusters == 3
  np.testing.assert_array_equal(segments.labels, cuts_jax.segment(model, image))
  assert not np.array_equal(segments.labels, cuts_jax.segment(model, image, num_clusters=10))
  five = _segmenting.segments(model, features, cuts_jax.resolve_settings(model, num_clusters=5))
  np.testing.assert_array_equal(five.labels, cuts_jax.segment(model, image, num_clusters=5))
  assert five.stack.labels is segments.stack.labels  # Built once per features.
  assert five.stack.fixed_clusters == 5
  key = _segmenting.features_key("layer", "model", layer, settings)
  assert key == _segmenting.features_key("layer", "model", layer,
                                         cuts_jax.resolve_settings(model, num_clusters=5))
  assert key != _segmenting.features_key("layer", "model", layer,
                                         cuts_jax.resolve_settings(model, image_weight=0.5))
  assert key != _segmenting.features_key("layer", "other model", layer, settings)


def test_a_volume_segments_as_segment_volume_does_with_progress_and_cancel(params):
  rng = np.random.default_rng(1)
  volume = rng.normal(size=(3, 20, 22)).astype(np.float32)
  image = _actions.layer_image(volume, rgb=False, axis=1, spacing=(2.0, 1.0, 1.0))
  heard = []

  def progress(done, total, left):
    heard.append((done, total, left is None))
    return False

  settings = cuts_jax.resolve_settings(params, num_clusters=3)
  cache = _segmenting.volume_cache()
  with pytest.raises(_segmenting.Cancelled):  # Cancel: nothing is kept.
    _segmenting.compute_features(params, image, settings, cache=cache,
                                 progress=lambda done, total, left: done >= 2)
  assert len(cache) == 0
  features = _segmenting.compute_features(params, image, settings, progress=progress,
                                          cache=cache)
  segments = _segmenting.segments(params, features, settings, cache=cache)
  assert heard == [(0, 20, True)] + [(i, 20, False) for i in range(1, 21)]
  np.testing.assert_array_equal(
      segments.labels, cuts_jax.segment_volume(params, volume, axis=1, num_clusters=3,
                                               spacing=(2.0, 1.0, 1.0)))
  assert segments.axis == 1 and segments.stack is None and len(cache) == 1
  heard.clear()
  _segmenting.compute_features(params, image, settings, progress=progress, cache=cache)
  assert heard == [(0, 20, True)]  # The same volume and model: from the cache.
  [click] = _clicks((1, 5, 6))
  mask = _selection.select(segments.labels, None, [click]).mask
  assert mask[1, 5, 6] and np.all(segments.labels[mask] == segments.labels[1, 5, 6])


def test_negative_clicks_remove_and_undo_brings_back():
  labels = np.repeat(np.arange(4, dtype=np.int32)[None], 3, 0)  # Columns 0..3 are segments.
  history = _selection.ClickHistory()
  assert not history.undo()
  history.click(_selection.Click((0, 1)), keep=False)
  history.click(_selection.Click((0, 2)), keep=True)
  assert np.array_equal(_selection.select(labels, None, history.clicks).mask,
                        (labels == 1) | (labels == 2))
  history.click(_selection.Click((1, 2), positive=False), keep=True)
  # A negative click inside a selected segment of a flat map splits it between the clicks.
  split = _selection.select(labels, None, history.clicks).mask
  assert np.array_equal(split, cuts_jax.select(labels, [(0, 1), (0, 2)], negative=[(1, 2)]))
  assert split[0, 2] and not split[1, 2] and split[:, 1].all()
  history.click(_selection.Click((0, 2), positive=False), keep=True)  # Replaces the click.
  assert np.array_equal(_selection.select(labels, None, history.clicks).mask, labels == 1)
  assert history.undo() and history.undo()  # Undo after negative clicks: the segment is back.
  assert np.array_equal(_selection.select(labels, None, history.clicks).mask,
                        (labels == 1) | (labels == 2))
  assert history.reset() and not history.clicks
  assert history.undo() and len(history.clicks) == 2
  assert not history.replace(history.clicks)  # No change, nothing to undo.
  assert not _selection.select(labels, None, _clicks((0, 1), positive=False)).mask.any()
  history.click(_selection.Click((0, 3)), keep=False)  # A plain click starts again.
  assert history.clicks == (_selection.Click((0, 3)),)


def test_a_stack_selection_is_cuts_jax_select_and_names_the_closest_level():
  fine = np.repeat(np.arange(4, dtype=np.int32)[None], 6, 0)
  stack = scales.ScaleStack(labels=np.stack([np.zeros_like(fine), fine // 2, fine]),
                            num_clusters=(1, 2, 4), max_fraction=1.0)
  clicks = _clicks((0, 0), (5, 3)) + _clicks((3, 1), positive=False)
  for rule in ("consensus", "fixed", None):
    selection = _selection.select(fine, stack, clicks, rule=rule)
    assert np.array_equal(selection.mask, cuts_jax.select(stack, [(0, 0), (5, 3)],
                                                          negative=[(3, 1)], rule=rule))
  selection = _selection.select(fine, stack, _clicks((0, 0)), level=1)
  assert np.array_equal(selection.mask, fine // 2 == 0)
  assert (selection.level, selection.num_clusters) == (1, 2)
  selection = _selection.select(fine, stack, _clicks((0, 0)), rule="fixed")
  assert np.array_equal(selection.mask, cuts_jax.select(stack, (0, 0), rule="fixed"))
  closest = selection.level
  assert np.array_equal(stack.labels[closest] == stack.labels[closest][0, 0], selection.mask)


def test_commit_keeps_earlier_labels_unless_told():
  target = np.zeros((3, 4), np.int32)
  target[0, 0] = 1  # A structure committed (or painted) before.
  assert _selection.next_free_label(target) == 2
  mask = np.zeros((3, 4), bool)
  mask[0, :2] = True
  rows, cols = _selection.commit_indices(target, mask)
  assert list(zip(rows, cols)) == [(0, 1)]
  assert len(_selection.commit_indices(target, mask, over_labels=True)[0]) == 2
  assert _selection.next_free_label(np.zeros((2, 2), np.int32)) == 1
  with pytest.raises(ValueError, match="Labels layer of the segmented image's shape"):
    _selection.commit_indices(np.zeros((2, 2), np.int32), mask)


def test_saved_labels_read_back_as_png_or_nifti(tmp_path):
  labels = np.array([[0, 1], [2, 300]], np.int32)
  path = _actions.save_labels(labels, tmp_path / "x.nii.gz")  # 2-D: a PNG whatever the name.
  assert path.name == "x.png" and np.array_equal(io.imread(path), labels)
  volume = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
  path = _actions.save_labels(volume, tmp_path / "v.png", spacing=(2.0, 1.0, 0.5))
  written = medical.read_nifti(path)
  assert path.name == "v.nii.gz" and np.array_equal(written.data, volume)
  assert np.allclose(written.affine, np.diag([2.0, 1.0, 0.5, 1.0]))
  with pytest.raises(ValueError, match="2-D or 3-D"):
    _actions.save_labels(np.zeros(4), tmp_path / "bad.png")


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
