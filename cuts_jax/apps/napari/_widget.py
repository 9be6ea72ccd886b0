"""The dock widget: pick an image and a trained workdir (or train here), segment, click, save.

Training and segmenting run in napari thread workers, so the viewer keeps
responding; their errors come back as notifications that give the reason.
Segment keeps the image's features for its model (`_segmenting`), so a new
k segments again without embedding; a volume's embedding shows its progress
and can be cancelled. What clicks do is `_clicking`'s.
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

import cuts_jax
from cuts_jax.apps.napari import _actions
from cuts_jax.apps.napari import _clicking
from cuts_jax.apps.napari import _controls
from cuts_jax.apps.napari import _segmenting
from cuts_jax.runs import checkpointing

_LOG = logging.getLogger(__name__)

_USER_ERRORS = _clicking.USER_ERRORS  # Others are bugs: their traceback is logged too.


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


class SegmentWidget(_clicking.Clicking, _controls.Controls):
  """CUTS in napari: train without labels, segment, and click the region you want."""

  # Emitted from the worker threads; Qt delivers them on the GUI thread.
  _progress_changed = Signal(int, int, float)
  _segment_progress_changed = Signal(int, int, float)

  def __init__(self, napari_viewer: napari.viewer.Viewer):
    super().__init__()
    self.viewer = napari_viewer
    self._worker = None
    self._stop_training = threading.Event()
    self._stop_segmenting = threading.Event()
    self._params = None
    self._params_key = None
    self._features: Optional[_segmenting.Features] = None  # Of the last image segmented.
    # Volumes' features, kept across images and models (bounded; keyed by their hashes).
    self._volume_cache = _segmenting.volume_cache()
    self._segments: Optional[_segmenting.Segments] = None
    self._source = None  # The image layer the segments belong to.
    self.last_segment_seconds: Optional[float] = None
    self.last_embedded: Optional[bool] = None  # Whether the last Segment embedded the image.
    self._connect_clicking()
    self._enable_granularity()

    self._workdir.textChanged.connect(self._workdir_changed)
    self._train_button.clicked.connect(self.train)
    self._cancel_button.clicked.connect(self.cancel_training)
    self._segment_button.clicked.connect(self.segment)
    self._segment_cancel.clicked.connect(self.cancel_segmenting)
    self._save_button.clicked.connect(self._save_mask_dialog)
    self._level.valueChanged.connect(self._level_moved)
    self._rule.currentTextChanged.connect(self._granularity_changed)
    self._progress_changed.connect(self._show_progress)
    self._segment_progress_changed.connect(self._show_segment_progress)
    self.viewer.layers.events.inserted.connect(self._layers_changed)
    self.viewer.layers.events.removed.connect(self._layers_changed)
    self._refresh_images()
    self.refresh_targets()

  def _workdir_changed(self, _text: str) -> None:
    """Another model: its own k and scale rule, until the user picks others."""
    self._clusters.setValue(_controls.MODEL_K)
    self._rule.setItemText(0, _controls.MODEL_RULE)
    self._rule.setCurrentIndex(0)

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
    if (event.type == "removed" and self._source is not None
        and event.value.unique_id == self._source.unique_id):
      self._segments, self._source, self._features = None, None, None
      self._forget_clicks()
      self._enable_granularity()
    self.refresh_targets()

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
                                 name=layer.name, spacing=layer.scale)
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
    self._segment_cancel.setEnabled(busy and not training)

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

  # Segmenting.

  def segment(self) -> None:
    """The Segment button: adds (or updates) the picked image's segments Labels layer.

    The image's features are kept for its model: pressing again (e.g. with
    another k) clusters them again without embedding the image.
    """
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
    kept = self._features
    self._stop_segmenting.clear()
    self._segment_progress.setRange(0, 1)
    self._segment_progress.setValue(0)
    self._segment_progress.setVisible(image.is_volume)  # Only a volume reports progress.
    self._segment_progress_text.setText("")

    def work():
      params = cached if cached is not None else cuts_jax.load(workdir)
      settings = _segmenting.interactive_settings(params, num_clusters=num_clusters)
      # The layer by its id (the viewer hands plugins a new proxy per look-up) and its data.
      features_key = _segmenting.features_key((layer.unique_id, id(layer.data)), key, image,
                                              settings)
      embedded = kept is None or kept.key != features_key
      features = kept
      if embedded:
        try:
          features = _segmenting.compute_features(params, image, settings, key=features_key,
                                                  progress=self._segmenting_progress,
                                                  cache=self._volume_cache)
        except _segmenting.Cancelled:
          return None
      segments = _segmenting.segments(params, features, settings, cache=self._volume_cache)
      return params, features, segments, embedded

    def done(result):
      if result is None:
        self._status.setText(f"Segmenting {layer.name} cancelled; nothing changed.")
        self._segment_progress_text.setText("cancelled")
        return
      self._params, self._features, segments, self.last_embedded = result
      self._params_key = key
      self._clusters.setValue(segments.settings.num_clusters)
      self._show_segments(layer, segments)
      self.last_segment_seconds = time.perf_counter() - started
      again = "" if self.last_embedded else " (its features were kept: no embedding)"
      self._status.setText(f"Segmented {layer.name} in {self.last_segment_seconds:.1f} s"
                           f"{again}. Click a segment.")

    self._start("Segmenting", work, done)

  def _segmenting_progress(self, done: int, total: int, left: Optional[float]) -> bool:
    """`_segmenting.Progress`, called on the worker thread: True stops the embedding."""
    self._segment_progress_changed.emit(done, total, -1.0 if left is None else left)
    return self._stop_segmenting.is_set()

  def _show_segment_progress(self, done: int, total: int, left: float) -> None:
    self._segment_progress.setRange(0, total)
    self._segment_progress.setValue(done)
    remaining = f", {_duration(left)} left" if left >= 0 else ""
    self._segment_progress_text.setText(f"slice {done}/{total} embedded{remaining}")

  def cancel_segmenting(self) -> None:
    """The Cancel button under Segment: a volume's embedding stops after its current slice."""
    self._stop_segmenting.set()
    self._segment_progress_text.setText("stopping after this slice…")

  def _show_segments(self, layer, segments: _segmenting.Segments) -> None:
    self._segments, self._source = segments, layer
    self._rule.setItemText(0, f"{_controls.MODEL_RULE} ({segments.settings.scale_rule})")
    self._forget_clicks()
    self._enable_granularity()
    labels = segments.at_level(self._shown_level())
    self._put_labels(labels, name=f"{layer.name} segments", opacity=0.35)
    self._put_labels(np.zeros(labels.shape, np.uint8), name=f"{layer.name} selected",
                     opacity=0.7)
    if self._points_name() in self.viewer.layers:
      self._show_clicks()
    self._scale_text.setText(self._scale_description(None))
    self.refresh_targets()
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
    self._level.setEnabled(enabled)
    self._rule.setEnabled(enabled)
    self._level.setMaximum(max(levels - 1, 0))
    tip = "" if enabled else "Segment a 2-D image to choose among its scales."
    self._level.setToolTip(tip)

  def _granularity_changed(self, *_) -> None:
    self._enable_granularity()
    if self._segments is None or self._segments.stack is None:
      return
    self._put_labels(self._segments.at_level(self._shown_level()),
                     name=f"{self._source.name} segments", opacity=0.35)
    if self.clicks:
      self._update_selection()

  # Saving the selection.

  def _save_mask_dialog(self):
    if self._source is None:
      self._notify_failure("Saving", ValueError("segment an image and click it first."))
      return
    suffix = ".nii.gz" if self._segments.labels.ndim == 3 else ".png"
    path = self._ask_path("Save mask", f"{self._source.name}_mask{suffix}")
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
    try:
      written = _actions.save_mask(mask, self._segments.at_level(self._shown_level()), path,
                                   like=self._scan_like() if mask.ndim == 3 else None,
                                   spacing=self._source.scale)
    except _USER_ERRORS as error:
      self._notify_failure("Saving", error)
      return None
    self._status.setText(f"Saved {written[0]} and {written[1]}.")
    show_info(f"cuts_jax: saved the mask to {written[0]} and the segments to {written[1]}.")
    return written

  def closeEvent(self, event):  # pylint: disable=invalid-name
    self._disconnect_clicking()
    super().closeEvent(event)
