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
  expected = cuts_jax.segment(cuts_jax.load(tiny_workdir), coffee, num_clusters=10)
  assert np.array_equal(segments, expected) and widget.last_segment_seconds > 0
  # "persistent" (the default): each click takes the level its segment persists at.
  assert widget._persistent.isChecked() and not widget._level.isEnabled()
  hierarchy = cuts_jax.segment_hierarchy(cuts_jax.load(tiny_workdir), coffee)
  _click(viewer, (10.2, 20.4))
  assert np.array_equal(widget.selected_mask, cuts_jax.select(hierarchy, (10, 20)))
  assert np.array_equal(viewer.layers["coffee selected"].data > 0, widget.selected_mask)
  _click(viewer, (30, 5), modifiers=("Shift",))
  assert np.array_equal(widget.selected_mask, cuts_jax.select(hierarchy, (10, 20))
                        | cuts_jax.select(hierarchy, (30, 5)))
  widget._persistent.setChecked(False)  # From here on, one level: the finest.
  segments = hierarchy.labels[0]
  _click(viewer, (30, 5))  # A click without shift starts again.
  assert np.array_equal(widget.selected_mask, cuts_jax.select(segments, (30, 5)))
  _click(viewer, (2, 2), drag_to=(20, 20))  # A drag pans; it selects nothing.
  _click(viewer, (-5, 3))  # Outside the image.
  assert np.array_equal(widget.selected_mask, cuts_jax.select(segments, (30, 5)))
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
  expected = cuts_jax.segment(params, coffee)
  assert not np.array_equal(expected, cuts_jax.segment(params, coffee, num_clusters=10))
  assert np.array_equal(viewer.layers["coffee segments"].data, expected)
  widget._clusters.setValue(4)  # The user's k, until the model changes.
  _segment(qtbot, widget, workdir)
  assert np.array_equal(viewer.layers["coffee segments"].data,
                        cuts_jax.segment(params, coffee, num_clusters=4))
  widget._workdir.setText(str(tiny_workdir))
  assert widget._clusters.text() == "model's"


def test_the_granularity_control_follows_a_hierarchy(make_napari_viewer, qtbot, monkeypatch,
                                                     tiny_workdir):
  fine = np.indices((6, 8)).sum(0).astype(np.int32) % 4
  hierarchy = types.SimpleNamespace(labels=np.stack([fine, fine // 2]), scales=(1.0, 2.0))
  plain_select = cuts_jax.select

  def select(labels, pixel, *, level=None):
    if labels is not hierarchy:
      return plain_select(labels, pixel)
    return plain_select(hierarchy.labels[0 if level == "persistent" else level], pixel)

  monkeypatch.setattr(cuts_jax, "segment_hierarchy", lambda params, image, **_: hierarchy,
                      raising=False)
  monkeypatch.setattr(cuts_jax, "select", select)
  viewer = make_napari_viewer()
  viewer.add_image(np.zeros((6, 8)), name="plain")
  widget = _widget(viewer)
  _segment(qtbot, widget, tiny_workdir)
  assert widget._persistent.isEnabled() and widget._level.maximum() == 1
  _click(viewer, (2, 3))
  assert np.array_equal(widget.selected_mask, fine == fine[2, 3])
  widget._persistent.setChecked(False)
  widget._level.setValue(1)
  assert np.array_equal(viewer.layers["plain segments"].data, fine // 2)
  assert np.array_equal(widget.selected_mask, fine // 2 == fine[2, 3] // 2)


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

  mask_path, labels_path = widget.save_mask(tmp_path / "out" / "scan_mask.nii.gz")
  saved_mask, saved_labels = medical.read_nifti(mask_path), medical.read_nifti(labels_path)
  assert np.allclose(saved_mask.affine, affine) and np.allclose(saved_labels.affine, affine)
  assert np.array_equal(saved_mask.data, mask) and np.array_equal(saved_labels.data, segments)


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
