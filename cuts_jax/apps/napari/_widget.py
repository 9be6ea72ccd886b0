"""The dock widget: pick an image and a trained workdir (or train here), segment, click, save.

Training and segmenting run in napari thread workers, so the viewer keeps
responding; their errors come back as notifications that give the reason.
A click on the image (in the pan/zoom mode of the active layer, without
dragging) selects the segment under it in the "selected" Labels layer;
shift-click adds the segment under it.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time
from typing import Any, Callable, Optional

import napari
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from napari.utils.notifications import show_info
import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QFileDialog

import cuts_jax
from cuts_jax.apps.napari import _actions
from cuts_jax.apps.napari import _controls
from cuts_jax.apps.napari import _reader
from cuts_jax.runs import checkpointing

_LOG = logging.getLogger(__name__)

# Errors a user can act on from the message alone (bad input, files, a
# missing optional package, a diverged run); others are bugs and also get
# their traceback logged.
_USER_ERRORS = (ValueError, OSError, ImportError, FloatingPointError)


def _run_reporting_failure(work: Callable[[], Any]) -> tuple[Any, Optional[str]]:
  """(work(), None), or (None, the reason) when it raised: the worker never dies with a traceback."""
  try:
    return work(), None
  except Exception as error:  # Every failure becomes a notification, never a dialog.
    if isinstance(error, _USER_ERRORS):
      return None, str(error)
    _LOG.exception("cuts_jax napari widget: unexpected error")
    return None, f"{type(error).__name__}: {error} (the traceback is in the terminal)"


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(max(seconds, 0)), 60)
  return f"{minutes}:{seconds:02d}"


class SegmentWidget(_controls.Controls):
  """CUTS in napari: train without labels, segment, and click the region you want."""

  # Emitted from the training thread; Qt delivers it on the GUI thread.
  _progress_changed = Signal(int, int, float)

  def __init__(self, napari_viewer: napari.viewer.Viewer):
    super().__init__()
    self.viewer = napari_viewer
    self._worker = None
    self._stop_training = threading.Event()
    self._params = None
    self._params_key = None
    self._segments: Optional[_actions.Segments] = None
    self._source = None  # The image layer the segments belong to.
    self._clicks: list[tuple[int, ...]] = []
    self._mask: Optional[np.ndarray] = None  # The selected segments.
    self.last_segment_seconds: Optional[float] = None
    self._enable_granularity()

    self._workdir.textChanged.connect(self._workdir_changed)
    self._train_button.clicked.connect(self.train)
    self._cancel_button.clicked.connect(self.cancel_training)
    self._segment_button.clicked.connect(self.segment)
    self._save_button.clicked.connect(self._save_mask_dialog)
    self._level.valueChanged.connect(self._granularity_changed)
    self._persistent.toggled.connect(self._granularity_changed)
    self._progress_changed.connect(self._show_progress)
    self.viewer.layers.events.inserted.connect(self._layers_changed)
    self.viewer.layers.events.removed.connect(self._layers_changed)
    self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
    self._refresh_images()

  def _workdir_changed(self, _text: str) -> None:
    """Another model: its own k, until the user picks one."""
    self._clusters.setValue(_controls.MODEL_K)

  # Layers.

  def _image_layers(self) -> list:
    return [layer for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)]

  def _refresh_images(self):
    current = self._image.currentText()
    names = [layer.name for layer in self._image_layers()]
    self._image.blockSignals(True)
    self._image.clear()
    self._image.addItems(names)
    if current in names:
      self._image.setCurrentText(current)
    self._image.blockSignals(False)

  def _layers_changed(self, event):
    self._refresh_images()
    if event.type == "inserted" and isinstance(event.value, napari.layers.Image):
      self._image.setCurrentText(event.value.name)  # The image just opened.
    if event.type == "removed":
      if event.value is self._source:
        self._segments, self._source, self._clicks, self._mask = None, None, [], None
        self._enable_granularity()

  def _picked_layer(self):
    name = self._image.currentText()
    if not name or name not in self.viewer.layers:
      raise ValueError("no image picked; open an image or volume first (File > Open, or "
                       "File > Open Sample > cuts_jax).")
    return self.viewer.layers[name]

  def _slicing_axis(self, layer) -> int:
    """The layer axis the viewer steps through (a volume is segmented slice by slice along it)."""
    dims = self.viewer.dims
    sliced = [axis for axis in dims.order if axis not in dims.displayed]
    offset = dims.ndim - layer.ndim
    layer_axes = [axis - offset for axis in sliced if axis >= offset]
    return layer_axes[-1] if layer_axes else 0

  def _picked_image(self) -> tuple[Any, _actions.LayerImage]:
    layer = self._picked_layer()
    image = _actions.layer_image(layer.data, rgb=layer.rgb, multiscale=layer.multiscale,
                                 axis=self._slicing_axis(layer) if layer.ndim == 3 else 0,
                                 name=layer.name)
    return layer, image

  def _workdir_path(self, *, purpose: str) -> pathlib.Path:
    text = self._workdir.text().strip()
    if not text:
      raise ValueError(f"no workdir; pick one with Browse… ({purpose}).")
    return pathlib.Path(text).expanduser()

  # Workers.

  @property
  def busy(self) -> bool:
    """Whether training or segmenting is running."""
    return self._worker is not None

  def _start(self, what: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
    """Runs `work` in a thread worker, then `done(result)` on the GUI thread, or notifies."""
    worker = thread_worker(_run_reporting_failure)(work)

    def returned(outcome):
      result, failure = outcome
      if failure is None:
        done(result)
      else:
        self._notify_failure(what, failure)

    def finished():
      self._worker = None
      self._set_busy(False)

    worker.returned.connect(returned)
    worker.finished.connect(finished)
    self._worker = worker
    self._set_busy(True, training=what == "Training")
    self._status.setText(f"{what}…")
    worker.start()

  def _set_busy(self, busy: bool, *, training: bool = False) -> None:
    self._train_button.setEnabled(not busy)
    self._segment_button.setEnabled(not busy)
    self._cancel_button.setEnabled(busy and training)

  def _notify_failure(self, what: str, error: Exception | str) -> None:
    self._status.setText(f"{what} failed: {error}")
    show_error(f"cuts_jax: {what.lower()} failed: {error}")

  def _checkpoint_key(self, workdir: pathlib.Path) -> tuple:
    """Changes whenever a checkpoint is added, so a model trained further is loaded again."""
    checkpoints = workdir / checkpointing.CHECKPOINT_DIR
    stamp = checkpoints.stat().st_mtime_ns if checkpoints.is_dir() else None
    return (str(workdir.absolute()), stamp)

  # Training.

  def train(self) -> None:
    """The Train button: trains on the picked image in the workdir, resuming a run there."""
    try:
      _, image = self._picked_image()
      workdir = self._workdir_path(purpose="the run's checkpoints go there")
    except ValueError as error:
      self._notify_failure("Training", error)
      return
    num_steps, crop_size = self._steps.value(), self._crop.value()
    config_file = self._config_file.text().strip()
    self._stop_training.clear()
    self._progress_bar.setRange(0, num_steps)
    self._progress_bar.setValue(0)
    self._progress_text.setText("starting (the first step compiles)…")

    def work():
      config = _actions.training_config(workdir, image, num_steps=num_steps,
                                        crop_size=crop_size, config_file=config_file)
      state = cuts_jax.train_and_evaluate(config, workdir,
                                          dataset=_actions.training_images(image),
                                          progress=self._training_progress)
      return int(state.step), config.training.num_steps

    def done(result):
      step, total = result
      self._params, self._params_key = None, None
      stopped = " (cancelled; its checkpoint is kept)" if step < total else ""
      self._status.setText(f"Trained to step {step} of {total} in {workdir}{stopped}. "
                           "Segment now uses it.")

    self._start("Training", work, done)

  def _training_progress(self, *, step: int, num_steps: int, steps_per_s: float) -> bool:
    """`cuts_jax.train.Progress`, called on the training thread: True stops the run."""
    self._progress_changed.emit(step, num_steps, steps_per_s)
    return self._stop_training.is_set()

  def _show_progress(self, step: int, total: int, steps_per_s: float) -> None:
    self._progress_bar.setRange(0, total)
    self._progress_bar.setValue(step)
    if steps_per_s > 0:
      left = _duration((total - step) / steps_per_s)
      self._progress_text.setText(f"step {step}/{total}, {steps_per_s:.2f} steps/s, {left} left")
    else:
      self._progress_text.setText(f"step {step}/{total}")

  def cancel_training(self) -> None:
    """The Cancel button: the run stops after its current step and saves a checkpoint."""
    self._stop_training.set()
    self._progress_text.setText("stopping after this step; its checkpoint is kept…")

  # Segmenting and selecting.

  def segment(self) -> None:
    """The Segment button: adds (or updates) the picked image's segments Labels layer."""
    started = time.perf_counter()
    try:
      layer, image = self._picked_image()
      workdir = self._workdir_path(purpose="a trained one, or train here first")
    except ValueError as error:
      self._notify_failure("Segmenting", error)
      return
    key = self._checkpoint_key(workdir)
    cached = self._params if key == self._params_key else None
    num_clusters = self._clusters.value()
    num_clusters = None if num_clusters == _controls.MODEL_K else num_clusters

    def work():
      params = cached if cached is not None else cuts_jax.load(workdir)
      return params, _actions.segment(params, image, num_clusters=num_clusters)

    def done(result):
      self._params, segments = result
      self._params_key = key
      self._clusters.setValue(segments.settings.num_clusters)
      self._show_segments(layer, segments)
      self.last_segment_seconds = time.perf_counter() - started
      self._status.setText(f"Segmented {layer.name} in {self.last_segment_seconds:.1f} s. "
                           "Click a segment.")

    self._start("Segmenting", work, done)

  def _level_value(self) -> _actions.Level:
    return _actions.PERSISTENT if self._persistent.isChecked() else self._level.value()

  def _show_segments(self, layer, segments: _actions.Segments) -> None:
    self._segments, self._source, self._clicks, self._mask = segments, layer, [], None
    self._enable_granularity()
    labels = segments.at_level(self._level_value())
    self._put_labels(labels, name=f"{layer.name} segments", opacity=0.35)
    self._put_labels(np.zeros(labels.shape, np.uint8), name=f"{layer.name} selected",
                     opacity=0.7)
    self.viewer.layers.selection.active = layer

  def _put_labels(self, data: np.ndarray, *, name: str, opacity: float):
    """The Labels layer `name`, now holding `data`, over the segmented image (added if missing)."""
    if name in self.viewer.layers:
      layer = self.viewer.layers[name]
      if layer.data.shape == data.shape:
        layer.data = data
        return layer
      self.viewer.layers.remove(layer)
    return self.viewer.add_labels(data, name=name, opacity=opacity, scale=self._source.scale,
                                  translate=self._source.translate)

  def _enable_granularity(self) -> None:
    levels = 0 if self._segments is None else self._segments.num_levels
    enabled = levels > 0
    self._level.setEnabled(enabled and not self._persistent.isChecked())
    self._persistent.setEnabled(enabled)
    self._level.setMaximum(max(levels - 1, 0))
    tip = "" if enabled else "Segment a 2-D image to choose among its scales."
    self._level.setToolTip(tip)
    self._persistent.setToolTip(tip)

  def _granularity_changed(self, *_) -> None:
    self._enable_granularity()
    if self._segments is None or self._segments.hierarchy is None:
      return
    self._put_labels(self._segments.at_level(self._level_value()),
                     name=f"{self._source.name} segments", opacity=0.35)
    if self._clicks:
      self._update_selection()

  def _clickable(self) -> bool:
    if self._segments is None or self._source not in self.viewer.layers:
      return False
    if self.viewer.dims.ndisplay != 2:
      return False
    active = self.viewer.layers.selection.active
    return active is None or getattr(active, "mode", "pan_zoom") == "pan_zoom"

  def _on_mouse_drag(self, viewer, event):
    """A press then release without moving is a click; a drag pans, as usual."""
    if not self._clickable():
      return
    position, add = tuple(event.position), "Shift" in event.modifiers
    yield
    moved = False
    while event.type == "mouse_move":
      moved = True
      yield
    if not moved:
      self.select_at(position, add=add)

  def select_at(self, world_position, *, add: bool = False) -> None:
    """Selects the segment under a point in world coordinates (`add`: keep the others)."""
    if self._segments is None:
      return
    index = tuple(int(i) for i in np.round(self._source.world_to_data(world_position)))
    if not _actions.contains(self._segments.labels.shape, index):
      return
    self._clicks = (self._clicks if add else []) + [index]
    self._update_selection()

  def _update_selection(self) -> None:
    mask = _actions.select_segments(self._segments, self._clicks, level=self._level_value())
    self._mask = mask
    self._put_labels(mask.astype(np.uint8), name=f"{self._source.name} selected", opacity=0.7)
    self._status.setText(f"Selected {len(self._clicks)} segment(s), {int(mask.sum())} "
                         "pixels. Save mask… writes it.")

  @property
  def selected_mask(self) -> Optional[np.ndarray]:
    """bool mask of the selected segments, or None before a click."""
    return self._mask

  # Saving.

  def _save_mask_dialog(self):
    if self._source is None:
      self._notify_failure("Saving", ValueError("segment an image and click it first."))
      return
    suffix = ".nii.gz" if self._segments.labels.ndim == 3 else ".png"
    start = pathlib.Path(self._source.metadata.get(_reader.SOURCE_KEY, "")
                         or self._workdir.text() or ".")
    folder = start if start.is_dir() else start.parent
    path, _ = QFileDialog.getSaveFileName(self, "Save mask",
                                          str(folder / f"{self._source.name}_mask{suffix}"))
    if path:
      self.save_mask(path)

  def save_mask(self, path: str | pathlib.Path) -> Optional[tuple[pathlib.Path, pathlib.Path]]:
    """Writes the selected mask at `path` and the segments beside it (PNG, or NIfTI for volumes).

    A volume read by this plugin's reader is written in its scan's space (its
    affine and header); any other volume gets an affine of its layer's scale.
    """
    mask = self.selected_mask
    if mask is None:
      self._notify_failure("Saving", ValueError("nothing selected; click a segment first."))
      return None
    like = _reader.layer_volume(self._source.data, self._source.metadata)
    try:
      written = _actions.save_mask(mask, self._segments.at_level(self._level_value()), path,
                                   like=like if mask.ndim == 3 else None,
                                   spacing=self._source.scale)
    except _USER_ERRORS as error:
      self._notify_failure("Saving", error)
      return None
    self._status.setText(f"Saved {written[0]} and {written[1]}.")
    show_info(f"cuts_jax: saved the mask to {written[0]} and the segments to {written[1]}.")
    return written

  def closeEvent(self, event):  # pylint: disable=invalid-name
    if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
      self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
    super().closeEvent(event)
