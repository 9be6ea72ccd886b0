"""The napari plugin in a real (offscreen) viewer: segment, click, save, train and cancel, errors.

Needs `pip install ".[napari,napari-test]"` and, for OpenGL, an X display: pytest-xvfb
starts Xvfb when it is installed (`apt-get install xvfb`); `.ci/run` installs both.
"""

import json
import os
import shutil
import types

import nibabel
import numpy as np
import pytest
from skimage import io

pytest.importorskip("napari", reason="napari is not installed (pip install '.[napari]')")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed (pip install '.[napari-test]')")
if not os.environ.get("DISPLAY"):
  pytest.skip("napari draws layers with OpenGL, which offscreen Qt takes from an X display; "
              "install Xvfb (apt-get install xvfb) and pytest-xvfb", allow_module_level=True)

# pylint: disable=g-import-not-at-top,wrong-import-position
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import mouse_move_callbacks
from napari.utils.interactions import mouse_press_callbacks
from napari.utils.interactions import mouse_release_callbacks
from napari.utils.notifications import notification_manager

import cuts_jax
from configs import tiny
from cuts_jax import pixels
from cuts_jax import scales
from cuts_jax.apps.napari import _controls
from cuts_jax.apps.napari import _segmenting
from cuts_jax.io import datasets
from cuts_jax.io import medical
from cuts_jax.runs import checkpointing

# Training compiles its step in the worker: allow for a slow, shared CPU.
_WAIT_MS = 180_000


def _event(kind, position, modifiers=()):
  # Wrapped as the canvas wraps its events: a drag's generator sees each new event through it.
  return ReadOnlyWrapper(types.SimpleNamespace(
      type=kind, position=tuple(position), modifiers=tuple(modifiers),
      is_dragging=kind == "mouse_move"))


def _click(viewer, position, *, modifiers=(), drag_to=None):
  """A press and release at `position` (world coordinates), moving to `drag_to` between them."""
  mouse_press_callbacks(viewer, _event("mouse_press", position, modifiers))
  if drag_to is not None:
    mouse_move_callbacks(viewer, _event("mouse_move", drag_to, modifiers))
    position = drag_to
  mouse_release_callbacks(viewer, _event("mouse_release", position, modifiers))


def _widget(viewer):
  """The dock widget, opened as Plugins > cuts_jax > Click to segment does."""
  _, widget = viewer.window.add_plugin_dock_widget("cuts_jax", "Click to segment")
  return widget


def _segment(qtbot, widget, workdir):
  widget._workdir.setText(str(workdir))
  widget._segment_button.click()
  qtbot.waitUntil(lambda: not widget.busy, timeout=_WAIT_MS)


def _new_errors(before):
  return [n.message for n in notification_manager.records[before:]
          if str(n.severity) in ("error", "NotificationSeverity.ERROR")]


@pytest.fixture
def coffee():
  _, images = datasets.demo_images()
  return pixels.resize_image(images[2], (40, 48))


def test_segment_then_click_selects_what_cuts_jax_selects(make_napari_viewer, qtbot,
                                                         tiny_workdir, coffee):
  viewer = make_napari_viewer()
  layer = viewer.add_image(coffee, name="coffee", rgb=True)
  widget = _widget(viewer)
  before = len(notification_manager.records)
  _segment(qtbot, widget, tiny_workdir)
  assert not _new_errors(before)
  segments = viewer.layers["coffee segments"].data
  expected = cuts_jax.segment(cuts_jax.load(tiny_workdir), coffee, num_clusters=10,
                              on_device=False)  # The widget clusters on the host of a CPU.
  assert np.array_equal(segments, expected) and widget.last_segment_seconds > 0
  # The model's scale rule (the default) chooses each click's region in the stack.
  assert widget._rule.currentIndex() == 0 and widget._level.isEnabled()
  rule = cuts_jax.load(tiny_workdir).settings.scale_rule
  assert widget._rule.currentText() == f"model's rule ({rule})"
  stack = cuts_jax.segment_hierarchy(cuts_jax.load(tiny_workdir), coffee, on_device=False)
  _click(viewer, (10.2, 20.4))
  assert np.array_equal(widget.selected_mask, cuts_jax.select(stack, (10, 20)))
  assert np.array_equal(viewer.layers["coffee selected"].data > 0, widget.selected_mask)
  _click(viewer, (30, 5), modifiers=("Shift",))
  assert np.array_equal(widget.selected_mask, cuts_jax.select(stack, [(10, 20), (30, 5)]))
  widget._rule.setCurrentText(_controls.SLIDER_LEVEL)  # From here on, one level: the finest.
  widget._level.setValue(len(stack) - 1)
  finest = cuts_jax.select(stack, (30, 5), level=len(stack) - 1)
  _click(viewer, (30, 5))  # A click without shift starts again.
  assert np.array_equal(widget.selected_mask, finest)
  _click(viewer, (2, 2), drag_to=(20, 20))  # A drag pans; it selects nothing.
  _click(viewer, (-5, 3))  # Outside the image.
  assert np.array_equal(widget.selected_mask, finest)
  assert layer in viewer.layers


def test_the_k_box_starts_from_the_models_k(make_napari_viewer, qtbot, tmp_path, tiny_workdir,
                                           coffee):
  # The box once started at 10 whatever the model's k was (configs/berkeley.py's is 6).
  workdir = tmp_path / "k6"
  shutil.copytree(tiny_workdir, workdir)
  config = json.loads((workdir / checkpointing.CONFIG_FILE).read_text())
  config["evaluation"]["num_clusters"] = 6
  (workdir / checkpointing.CONFIG_FILE).write_text(json.dumps(config))
  params = cuts_jax.load(workdir)
  viewer = make_napari_viewer()
  viewer.add_image(coffee, name="coffee", rgb=True)
  widget = _widget(viewer)
  assert widget._clusters.text() == "model's"
  _segment(qtbot, widget, workdir)
  assert widget._clusters.value() == 6
  expected = cuts_jax.segment(params, coffee, on_device=False)
  assert not np.array_equal(expected, cuts_jax.segment(params, coffee, num_clusters=10,
                                                       on_device=False))
  assert np.array_equal(viewer.layers["coffee segments"].data, expected)
  widget._clusters.setValue(4)  # The user's k, until the model changes.
  _segment(qtbot, widget, workdir)
  assert np.array_equal(viewer.layers["coffee segments"].data,
                        cuts_jax.segment(params, coffee, num_clusters=4, on_device=False))
  assert widget.last_embedded is False  # The same image and model: features kept.
  widget._workdir.setText(str(tiny_workdir))
  assert widget._clusters.text() == "model's"
  _segment(qtbot, widget, tiny_workdir)
  assert widget.last_embedded  # Another model's features are its own.


def test_the_scale_shows_the_clicks_level_and_the_slider_overrides_it(
    make_napari_viewer, qtbot, monkeypatch, tiny_workdir):
  fine = np.indices((6, 8)).sum(0).astype(np.int32) % 4
  stack = scales.ScaleStack(labels=np.stack([fine // 2, fine]), num_clusters=(2, 4),
                            rule="fixed", fixed_clusters=4)
  monkeypatch.setattr(_segmenting, "_stack", lambda params, features, settings: stack)
  viewer = make_napari_viewer()
  viewer.add_image(np.zeros((6, 8)), name="plain")
  widget = _widget(viewer)
  _segment(qtbot, widget, tiny_workdir)
  assert widget._rule.isEnabled() and widget._level.maximum() == 1
  _click(viewer, (2, 3))
  assert np.array_equal(widget.selected_mask, fine == fine[2, 3])  # The rule: level k = 4.
  assert widget._level.value() == 1 and widget._rule.currentIndex() == 0
  assert "k = 4 (level 1 of 1" in widget._scale_text.text()
  assert np.array_equal(viewer.layers["plain segments"].data, fine)
  widget._level.setValue(0)  # The user's level overrides the rule's.
  assert widget._rule.currentText() == _controls.SLIDER_LEVEL
  assert np.array_equal(viewer.layers["plain segments"].data, fine // 2)
  assert np.array_equal(widget.selected_mask, fine // 2 == fine[2, 3] // 2)


def _press(viewer, key):
  viewer.window._qt_viewer._key_map_handler.press_key(key)
  viewer.window._qt_viewer._key_map_handler.release_key(key)


def test_clicks_add_remove_undo_reset_and_edit_as_points(make_napari_viewer, qtbot,
                                                        tiny_workdir, coffee):
  viewer = make_napari_viewer()
  viewer.add_image(coffee, name="coffee", rgb=True)
  widget = _widget(viewer)
  _segment(qtbot, widget, tiny_workdir)
  assert widget.last_embedded
  stack = widget._segments.stack
  widget._rule.setCurrentText(_controls.SLIDER_LEVEL)  # One level: the expected masks are plain.
  widget._level.setValue(len(stack) - 1)
  def under(pixel):
    return cuts_jax.select(stack, pixel, level=len(stack) - 1)
  def pixel_outside(mask):
    return tuple(int(i) for i in np.argwhere(~mask)[len(np.argwhere(~mask)) // 2])
  first = (10, 20)
  second = pixel_outside(under(first))
  third = pixel_outside(under(first) | under(second))
  _click(viewer, first)
  _click(viewer, second, modifiers=("Shift",))
  _click(viewer, third, modifiers=("Shift",))
  _click(viewer, second, modifiers=("Control",))  # Removes what the shift-click added.
  assert np.array_equal(widget.selected_mask, under(first) | under(third))
  points = viewer.layers["coffee clicks"]
  assert len(points.data) == 3 and list(points.features["positive"]) == [True, True, False]
  assert np.allclose(points.face_color[:, :3], [[0, 1, 0]] * 2 + [[1, 0, 0]])
  _press(viewer, "Control-Z")  # Undo after a negative click: its segment is back.
  assert np.array_equal(widget.selected_mask, under(first) | under(second) | under(third))
  assert len(points.data) == 3 and points.features["positive"].all()
  points.selected_data = {1}
  points.remove_selected()  # Deleting a point in the layer selects again.
  assert np.array_equal(widget.selected_mask, under(first) | under(third))
  points.data = np.array([second, third], float)
  assert np.array_equal(widget.selected_mask, under(second) | under(third))  # Moved.
  widget._reset_button.click()
  assert widget.selected_mask is None and len(points.data) == 0
  assert not viewer.layers["coffee selected"].data.any()
  _press(viewer, "Control-Z")
  assert np.array_equal(widget.selected_mask, under(second) | under(third))
  # Another k clusters the kept features again: no embedding, the same as cuts_jax.segment.
  widget._clusters.setValue(4)
  _segment(qtbot, widget, tiny_workdir)
  assert widget.last_embedded is False and not widget.clicks
  assert np.array_equal(widget._segments.labels,
                        cuts_jax.segment(cuts_jax.load(tiny_workdir), coffee, num_clusters=4,
                                         on_device=False))


def test_commit_keeps_an_earlier_label_and_save_writes_the_layer(make_napari_viewer, qtbot,
                                                                tmp_path, tiny_workdir, coffee):
  viewer = make_napari_viewer()
  viewer.add_image(coffee, name="coffee", rgb=True)
  widget = _widget(viewer)
  before = len(notification_manager.records)
  assert widget.commit() is None and "nothing selected" in _new_errors(before)[-1]
  _segment(qtbot, widget, tiny_workdir)
  _click(viewer, (10, 20))
  first = widget.selected_mask.copy()
  _press(viewer, "Control-Enter")
  target = viewer.layers["coffee labels"]
  assert np.array_equal(target.data == 1, first) and widget.selected_mask is None
  _click(viewer, (30, 5))
  _click(viewer, (10, 20), modifiers=("Shift",))  # Overlaps the first structure.
  second = widget.selected_mask.copy()
  assert widget.commit() == 2
  assert np.array_equal(target.data == 1, first)  # The earlier label is kept.
  assert np.array_equal(target.data == 2, second & ~first)
  target.undo()  # napari's own undo in the layer takes the commit back.
  assert not (target.data == 2).any()
  widget._label_value.setValue(7)
  widget._over_labels.setChecked(True)
  _click(viewer, (10, 20))
  assert widget.commit() == 7 and np.array_equal(target.data == 7, first)
  path = widget.save_labels(tmp_path / "coffee_labels.png")
  assert np.array_equal(io.imread(path), target.data)


def test_a_nifti_volume_opens_segments_and_saves_its_mask_in_the_scan_space(
    make_napari_viewer, qtbot, tmp_path, tiny_workdir):
  affine = np.array([[0, 0, 2.0, -30], [0, 1.2, 0, 5], [0.9, 0, 0, 12], [0, 0, 0, 1.0]])
  rng = np.random.default_rng(0)
  scan = rng.normal(100, 20, (3, 20, 22)).astype(np.float32)
  nibabel.save(nibabel.Nifti1Image(scan, affine), tmp_path / "scan.nii.gz")
  viewer = make_napari_viewer()
  [layer] = viewer.open(str(tmp_path / "scan.nii.gz"), plugin="cuts_jax")
  assert tuple(layer.scale) == pytest.approx((0.9, 1.2, 2.0))
  widget = _widget(viewer)
  _segment(qtbot, widget, tiny_workdir)
  segments = viewer.layers["scan segments"].data
  assert segments.shape == scan.shape
  _click(viewer, np.array([1, 5, 6]) * layer.scale)
  mask = widget.selected_mask
  assert mask[1, 5, 6] and np.all(segments[mask] == segments[1, 5, 6])

  assert widget._segment_progress.value() == widget._segment_progress.maximum() > 0
  assert "embedded" in widget._segment_progress_text.text()

  mask_path, labels_path = widget.save_mask(tmp_path / "out" / "scan_mask.nii.gz")
  saved_mask, saved_labels = medical.read_nifti(mask_path), medical.read_nifti(labels_path)
  assert np.allclose(saved_mask.affine, affine) and np.allclose(saved_labels.affine, affine)
  assert np.array_equal(saved_mask.data, mask) and np.array_equal(saved_labels.data, segments)
  assert widget.commit() == 1
  written = medical.read_nifti(widget.save_labels(tmp_path / "out" / "scan_labels.nii.gz"))
  assert np.allclose(written.affine, affine) and np.array_equal(written.data, mask)


def test_cancel_stops_a_volume_segmenting_and_changes_nothing(make_napari_viewer, qtbot,
                                                             tiny_workdir):
  viewer = make_napari_viewer()
  viewer.add_image(np.random.default_rng(0).normal(size=(6, 20, 22)), name="scan")
  widget = _widget(viewer)
  widget._workdir.setText(str(tiny_workdir))
  widget._segment_button.click()
  assert widget._segment_cancel.isEnabled()
  widget._segment_cancel.click()
  qtbot.waitUntil(lambda: not widget.busy, timeout=_WAIT_MS)
  assert "cancelled" in widget._status.text() and "scan segments" not in viewer.layers


def test_training_from_the_widget_then_cancel_keeps_a_loadable_checkpoint(
    make_napari_viewer, qtbot, tmp_path, coffee):
  viewer = make_napari_viewer()
  viewer.add_image(coffee, name="coffee", rgb=True)
  widget = _widget(viewer)
  widget._workdir.setText(str(tmp_path / "run"))
  widget._config_file.setText(tiny.__file__)
  widget._steps.setValue(500)
  widget._crop.setValue(24)
  widget._train_button.click()
  assert widget.busy and widget._cancel_button.isEnabled()
  qtbot.waitUntil(lambda: widget._progress_bar.value() >= 2, timeout=_WAIT_MS)
  assert "steps/s" in widget._progress_text.text() and "left" in widget._progress_text.text()
  widget._cancel_button.click()
  qtbot.waitUntil(lambda: not widget.busy, timeout=_WAIT_MS)
  assert "cancelled" in widget._status.text()
  manager = checkpointing.checkpoint_manager(tmp_path / "run", read_only=True)
  stopped_at = manager.latest_step()
  manager.close()
  assert 2 <= stopped_at < 500
  params = cuts_jax.load(tmp_path / "run")
  assert params.image_size == (40, 48) and params.channels == 3
  _segment(qtbot, widget, tmp_path / "run")  # The widget segments with what it trained.
  assert viewer.layers["coffee segments"].data.shape == (40, 48)


def test_a_bad_workdir_is_a_notification_with_the_reason_not_a_crash(
    make_napari_viewer, qtbot, tmp_path, coffee):
  viewer = make_napari_viewer()
  viewer.add_image(coffee, name="coffee", rgb=True)
  widget = _widget(viewer)
  before = len(notification_manager.records)
  _segment(qtbot, widget, tmp_path)
  [message] = _new_errors(before)
  assert "config.json" in message and "train first" in message
  assert "coffee segments" not in viewer.layers and not widget.busy
  widget._workdir.setText("")
  widget._segment_button.click()
  assert "no workdir" in _new_errors(before)[-1]
  assert widget.save_mask(tmp_path / "mask.png") is None
  assert "click a segment first" in _new_errors(before)[-1]


def test_the_sample_data_opens(make_napari_viewer):
  viewer = make_napari_viewer()
  viewer.open_sample("cuts_jax", "fundus")
  assert viewer.layers[-1].rgb and viewer.layers[-1].data.shape == (1411, 1411, 3)
