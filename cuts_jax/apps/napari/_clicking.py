"""The dock widget's clicks: select, add, remove, undo, reset; commit to a Labels layer; save.

A click on the image (in the pan/zoom mode of the active layer, without
dragging) selects the segment under it, shift-click adds one, ctrl-click
(cmd on macOS) removes one; ctrl-z undoes the last change and Reset clears
them. The clicks are shown in the `NAME clicks` Points layer (green
positive, red negative); moving, adding or deleting points there selects
again. Commit copies the selection into a Labels layer under a label value,
so that structure after structure can be labelled and then painted over
with napari's own tools.
"""

from __future__ import annotations

import pathlib
from typing import Optional

import napari
from napari.utils.notifications import show_info
import numpy as np
import pandas as pd
from qtpy.QtWidgets import QFileDialog

from cuts_jax.apps.napari import _actions
from cuts_jax.apps.napari import _controls
from cuts_jax.apps.napari import _reader
from cuts_jax.apps.napari import _selection

# Errors a user can act on from the message alone (bad input, files, a
# missing optional package, a diverged run); others are bugs.
USER_ERRORS = (ValueError, OSError, ImportError, FloatingPointError)
# The target entry that makes a new Labels layer on the first Commit.
NEW_TARGET = "new layer"
_POSITIVE, _NEGATIVE = "lime", "red"
UNDO_KEY, COMMIT_KEY = "Control-Z", "Control-Enter"
# Modifiers that make a click negative (napari reports macOS's cmd as Control or Meta).
_NEGATIVE_MODIFIERS = ("Control", "Meta")


class Clicking:
  """Mixed into `SegmentWidget`: what the clicks do. It uses the widget's controls and state."""

  def _connect_clicking(self) -> None:
    self._history = _selection.ClickHistory()
    self._selection: Optional[_selection.Selection] = None
    self._syncing_points = False
    self._moving_slider = False
    self._undo_button.clicked.connect(self.undo)
    self._reset_button.clicked.connect(self.reset)
    self._commit_button.clicked.connect(self.commit)
    self._save_labels_button.clicked.connect(self._save_labels_dialog)
    self.viewer.bind_key(UNDO_KEY, lambda _viewer: self.undo(), overwrite=True)
    self.viewer.bind_key(COMMIT_KEY, lambda _viewer: self.commit(), overwrite=True)
    self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)

  def _disconnect_clicking(self) -> None:
    if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
      self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
    for key in (UNDO_KEY, COMMIT_KEY):
      self.viewer.bind_key(key, None)

  # Clicks.

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
    position, modifiers = tuple(event.position), set(event.modifiers)
    yield
    moved = False
    while event.type == "mouse_move":
      moved = True
      yield
    if not moved:
      self.select_at(position, add="Shift" in modifiers,
                     negative=bool(modifiers & set(_NEGATIVE_MODIFIERS)))

  def select_at(self, world_position, *, add: bool = False, negative: bool = False) -> None:
    """A click at a point in world coordinates.

    Args:
      world_position: the point, in the viewer's world coordinates.
      add: keep the clicks before it (shift-click).
      negative: remove the segment under it (ctrl-click); keeps the others.
    """
    if self._segments is None:
      return
    index = tuple(int(i) for i in np.round(self._source.world_to_data(world_position)))
    if not _selection.contains(self._segments.labels.shape, index):
      return
    click = _selection.Click(index, positive=not negative)
    if self._history.click(click, keep=add or negative):
      self._clicks_changed()

  def undo(self) -> None:
    """Ctrl-z: the clicks as they were before the last change."""
    if self._segments is not None and self._history.undo():
      self._clicks_changed()

  def reset(self) -> None:
    """The Reset button: no clicks, nothing selected (ctrl-z brings them back)."""
    if self._segments is not None and self._history.reset():
      self._clicks_changed()

  @property
  def clicks(self) -> tuple[_selection.Click, ...]:
    """The clicks of the current selection, in order."""
    return self._history.clicks

  def _forget_clicks(self) -> None:
    self._history.forget()
    self._selection = None

  def _clicks_changed(self) -> None:
    self._show_clicks()
    self._update_selection()

  def _points_name(self) -> str:
    return f"{self._source.name} clicks"

  def _show_clicks(self) -> None:
    """The Points layer shows the clicks (added on the first one, kept while they change)."""
    name = self._points_name()
    clicks = self._history.clicks
    ndim = self._segments.labels.ndim
    data = np.array([c.index for c in clicks], float).reshape(-1, ndim)
    features = pd.DataFrame({"positive": [c.positive for c in clicks]}, dtype=bool)
    self._syncing_points = True
    try:
      if name in self.viewer.layers:
        layer = self.viewer.layers[name]
        layer.data = data
        layer.features = features
        layer.refresh_colors(update_color_mapping=False)
      elif clicks:
        layer = self.viewer.add_points(
            data, name=name, features=features, face_color="positive",
            face_color_cycle={True: _POSITIVE, False: _NEGATIVE}, border_color="white",
            size=max(3.0, 0.035 * max(self._segments.labels.shape)),
            scale=self._source.scale, translate=self._source.translate)
        layer.feature_defaults["positive"] = True
        layer.events.data.connect(self._points_edited)
        self.viewer.layers.selection.active = self._source
    finally:
      self._syncing_points = False

  def _points_edited(self, event) -> None:
    """Points moved, added or deleted in the clicks layer: select again from what it holds."""
    if self._syncing_points or self._segments is None:
      return
    if getattr(event, "action", "changed") not in ("added", "removed", "changed"):
      return
    layer = event.source
    if layer.name != self._points_name():  # The clicks of an image segmented before.
      return
    positive = layer.features["positive"].to_numpy(bool) if len(layer.features) else []
    clicks = []
    for point, is_positive in zip(np.round(layer.data).astype(int), positive):
      index = tuple(int(i) for i in point)
      if _selection.contains(self._segments.labels.shape, index):
        clicks.append(_selection.Click(index, positive=bool(is_positive)))
    if self._history.replace(clicks):
      self._update_selection()

  # The selection and its scale.

  def _scale_choice(self) -> tuple[Optional[str], Optional[int]]:
    """(rule, level) for `_selection.select`: a rule (None: the model's), or the slider's level."""
    choice = self._rule.currentText()
    if choice == _controls.SLIDER_LEVEL:
      return None, self._level.value()
    return (None if self._rule.currentIndex() == 0 else choice), None  # 0: the model's.

  def _shown_level(self) -> Optional[int]:
    """The level the segments layer shows: the slider's, or None (the segments at k)."""
    return self._scale_choice()[1]

  def _update_selection(self) -> None:
    clicks = self._history.clicks
    rule, level = self._scale_choice()
    selection = _selection.select(self._segments.labels, self._segments.stack, clicks,
                                  rule=rule, level=level)
    self._selection = selection if clicks else None
    self._put_labels(selection.mask.astype(np.uint8), name=f"{self._source.name} selected",
                     opacity=0.7)
    if selection.level is not None and level is None:
      self._moving_slider = True  # Shows the chosen scale; the user's move overrides it.
      self._level.setValue(selection.level)
      self._moving_slider = False
      self._put_labels(self._segments.at_level(selection.level),
                       name=f"{self._source.name} segments", opacity=0.35)
    self._scale_text.setText(self._scale_description(selection))
    self._undo_button.setEnabled(self._history.can_undo)
    positive = sum(c.positive for c in clicks)
    self._status.setText(f"{positive} positive and {len(clicks) - positive} negative click(s), "
                         f"{int(selection.mask.sum())} pixels selected. Commit copies them to a "
                         "Labels layer.")

  def _scale_description(self, selection: Optional[_selection.Selection]) -> str:
    if self._segments.stack is None:
      return ""
    if selection is None or selection.level is None:
      return "Click: each click's scale is chosen by the rule above."
    rule, level = self._scale_choice()
    how = ("the slider's level" if level is not None
           else f"closest to the {rule or self._segments.stack.rule} rule's region")
    return (f"Last click: k = {selection.num_clusters} (level {selection.level} of "
            f"{self._segments.num_levels - 1}, {how}).")

  def _level_moved(self, _value: int) -> None:
    """The slider moved by the user: that level for every click (the override)."""
    if self._moving_slider:
      return
    if self._rule.currentText() != _controls.SLIDER_LEVEL:
      self._rule.setCurrentText(_controls.SLIDER_LEVEL)  # Calls _granularity_changed.
    else:
      self._granularity_changed()

  @property
  def selected_mask(self) -> Optional[np.ndarray]:
    """bool mask of the selected segments, or None before a click."""
    return None if self._selection is None else self._selection.mask

  # Commit and save.

  def refresh_targets(self) -> None:
    """The target choices: a new layer, and every Labels layer the widget did not make."""
    own = {f"{self._source.name} {what}" for what in ("segments", "selected")} \
        if self._source is not None else set()
    names = [layer.name for layer in self.viewer.layers
             if isinstance(layer, napari.layers.Labels) and layer.name not in own]
    current = self._target.currentText()
    self._target.blockSignals(True)
    self._target.clear()
    self._target.addItems([NEW_TARGET] + names)
    default = f"{self._source.name} labels" if self._source is not None else ""
    self._target.setCurrentText(current if current in names else
                                default if default in names else NEW_TARGET)
    self._target.blockSignals(False)

  def _target_layer(self, *, create: bool):
    name = self._target.currentText()
    if name and name != NEW_TARGET and name in self.viewer.layers:
      return self.viewer.layers[name]
    if not create:
      return None
    name = f"{self._source.name} labels"
    if name in self.viewer.layers:
      name = f"{name} {len(self.viewer.layers)}"
    layer = self.viewer.add_labels(np.zeros(self._segments.labels.shape, np.int32), name=name,
                                   scale=self._source.scale, translate=self._source.translate)
    self.refresh_targets()
    self._target.setCurrentText(name)
    self.viewer.layers.selection.active = self._source
    return layer

  def commit(self) -> Optional[int]:
    """Commit (ctrl-enter): the selection into the target Labels layer; returns the label used.

    Under "next free" the label is one above the largest in the layer; pixels
    that hold a label already keep it unless "over other labels" is checked.
    The clicks are then cleared for the next structure (ctrl-z brings them
    back; ctrl-z in the Labels layer undoes the commit itself).
    """
    mask = self.selected_mask
    if mask is None or not mask.any():
      self._notify_failure("Commit", ValueError("nothing selected; click a segment first."))
      return None
    try:
      target = self._target_layer(create=True)
      indices = _selection.commit_indices(target.data, mask,
                                          over_labels=self._over_labels.isChecked())
    except USER_ERRORS as error:
      self._notify_failure("Commit", error)
      return None
    value = self._label_value.value() or _selection.next_free_label(target.data)
    target.data_setitem(indices, value)
    self._status.setText(f"Committed {len(indices[0])} pixels as label {value} to "
                         f"{target.name}. Click the next structure.")
    self.reset()
    return value

  def _scan_like(self):
    return _reader.layer_volume(self._source.data, self._source.metadata)

  def _ask_path(self, title: str, file_name: str) -> str:
    """A save dialog opened beside the scan (or the workdir); "" when cancelled."""
    start = pathlib.Path(self._source.metadata.get(_reader.SOURCE_KEY, "")
                         or self._workdir.text() or ".")
    folder = start if start.is_dir() else start.parent
    path, _ = QFileDialog.getSaveFileName(self, title, str(folder / file_name))
    return path

  def _save_labels_dialog(self):
    target = self._target_layer(create=False) if self._source is not None else None
    if target is None:
      self.save_labels("")  # Says what to do.
      return
    suffix = ".nii.gz" if target.data.ndim == 3 else ".png"
    path = self._ask_path("Save labels", f"{target.name.replace(' ', '_')}{suffix}")
    if path:
      self.save_labels(path)

  def save_labels(self, path: str | pathlib.Path) -> Optional[pathlib.Path]:
    """Writes the target Labels layer at `path`: PNG, or NIfTI in the scan's space for volumes."""
    target = self._target_layer(create=False) if self._source is not None else None
    if target is None:
      self._notify_failure("Saving", ValueError("no Labels layer to save; Commit a selection "
                                                "first or pick the layer."))
      return None
    like = self._scan_like() if np.ndim(target.data) == 3 else None
    try:
      written = _actions.save_labels(np.asarray(target.data), path, like=like,
                                     spacing=self._source.scale)
    except USER_ERRORS as error:
      self._notify_failure("Saving", error)
      return None
    self._status.setText(f"Saved {target.name} to {written}.")
    show_info(f"cuts_jax: saved {target.name} to {written}.")
    return written
