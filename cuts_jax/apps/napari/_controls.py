"""The dock widget's controls and their layout, without what they do (that is `_widget`'s)."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox
from qtpy.QtWidgets import QComboBox
from qtpy.QtWidgets import QFileDialog
from qtpy.QtWidgets import QFormLayout
from qtpy.QtWidgets import QGroupBox
from qtpy.QtWidgets import QHBoxLayout
from qtpy.QtWidgets import QLabel
from qtpy.QtWidgets import QLineEdit
from qtpy.QtWidgets import QProgressBar
from qtpy.QtWidgets import QPushButton
from qtpy.QtWidgets import QSlider
from qtpy.QtWidgets import QSpinBox
from qtpy.QtWidgets import QVBoxLayout
from qtpy.QtWidgets import QWidget

from cuts_jax import segment_settings

# The value of the k box that stands for the model's own k.
MODEL_K = 1
# The scale choices: the model's rule, each rule by name, or the slider's level for all clicks.
MODEL_RULE = "model's rule"
SLIDER_LEVEL = "slider's level"
SCALE_CHOICES = (MODEL_RULE, *segment_settings.SCALE_RULES, SLIDER_LEVEL)


def _row(*widgets: QWidget) -> QHBoxLayout:
  row = QHBoxLayout()
  for widget in widgets:
    row.addWidget(widget)
  return row


def _spin_box(low: int, high: int, value: int) -> QSpinBox:
  box = QSpinBox()
  box.setRange(low, high)
  box.setValue(value)
  return box


class Controls(QWidget):
  """Image and workdir pickers, the training and segmenting controls, and a status line."""

  def __init__(self):
    super().__init__()
    self._image = QComboBox()
    self._workdir = QLineEdit()
    self._workdir.setPlaceholderText("a training workdir (holds config.json)")
    self._config_file = QLineEdit()
    self._config_file.setPlaceholderText("empty: the paper's model")
    self._steps = _spin_box(1, 1_000_000, 100)
    self._crop = _spin_box(0, 8192, 64)
    self._crop.setToolTip("Train on random square crops of this side (0: whole images).")
    self._train_button = QPushButton("Train")
    self._cancel_button = QPushButton("Cancel")
    self._cancel_button.setEnabled(False)
    self._progress_bar = QProgressBar()
    self._progress_text = QLabel("")
    # Until a model is loaded the box reads "model's": its lowest value (k = 1 segments
    # nothing) stands for the model's own k, which the box shows once a model is loaded.
    self._clusters = _spin_box(MODEL_K, 256, MODEL_K)
    self._clusters.setSpecialValueText("model's")
    self._clusters.setToolTip("k, the clusters of the segmentation; \"model's\": the k the "
                              "model was trained with (its config).")
    self._segment_button = QPushButton("Segment")
    self._level = QSlider(Qt.Orientation.Horizontal)
    self._level.setMinimum(0)
    self._rule = QComboBox()
    self._rule.addItems(SCALE_CHOICES)
    self._rule.setToolTip("How a click's scale is chosen: by a label-free rule (the model's "
                          "own by default) among the image's segmentations at k = 2..15, or "
                          "the slider's level for every click.")
    self._segment_cancel = QPushButton("Cancel")
    self._segment_cancel.setEnabled(False)
    self._segment_progress = QProgressBar()
    self._segment_progress.setVisible(False)
    self._segment_progress_text = QLabel("")
    self._undo_button = QPushButton("Undo (Ctrl+Z)")
    self._reset_button = QPushButton("Reset")
    self._scale_text = QLabel("")
    self._scale_text.setWordWrap(True)
    self._scale_text.setToolTip("Move the Level slider to override the rule's choice.")
    self._save_button = QPushButton("Save mask…")
    self._target = QComboBox()
    self._target.setToolTip("The Labels layer Commit writes into (a new one is added when "
                            "needed); paint over it with napari's own tools.")
    self._label_value = _spin_box(0, 65535, 0)
    self._label_value.setSpecialValueText("next free")
    self._label_value.setToolTip("The label Commit writes; \"next free\": one above the "
                                 "largest in the target layer.")
    self._over_labels = QCheckBox("over other labels")
    self._over_labels.setToolTip("Unchecked, Commit leaves pixels that already hold a label as "
                                 "they are.")
    self._commit_button = QPushButton("Commit (Ctrl+Enter)")
    self._save_labels_button = QPushButton("Save labels…")
    self._status = QLabel("Pick an image and a workdir, then Segment.")
    self._status.setWordWrap(True)
    self._layout_controls()

  def _layout_controls(self):
    workdir_row = QHBoxLayout()
    workdir_row.addWidget(self._workdir)
    browse = QPushButton("Browse…")
    browse.clicked.connect(self._pick_workdir)
    workdir_row.addWidget(browse)
    config_row = QHBoxLayout()
    config_row.addWidget(self._config_file)
    browse_config = QPushButton("Browse…")
    browse_config.clicked.connect(self._pick_config_file)
    config_row.addWidget(browse_config)

    source = QFormLayout()
    source.addRow("Image", self._image)
    source.addRow("Workdir", workdir_row)

    training = QGroupBox("Train on this image (no labels)")
    training_form = QFormLayout(training)
    training_form.addRow("Config", config_row)
    training_form.addRow("Steps", self._steps)
    training_form.addRow("Crop size", self._crop)
    training_form.addRow(_row(self._train_button, self._cancel_button))
    training_form.addRow(self._progress_bar)
    training_form.addRow(self._progress_text)

    segmenting = QGroupBox("Segment, then click the image")
    segmenting_form = QFormLayout(segmenting)
    segmenting_form.addRow("Segments", self._clusters)
    segmenting_form.addRow(_row(self._segment_button, self._segment_cancel))
    segmenting_form.addRow(self._segment_progress)
    segmenting_form.addRow(self._segment_progress_text)
    segmenting_form.addRow("Scale", self._rule)
    segmenting_form.addRow("Level", self._level)
    segmenting_form.addRow(self._scale_text)
    segmenting_form.addRow(QLabel("Click: the segment under it. Shift-click: add one. "
                                  "Ctrl-click (Cmd on macOS): remove one."))
    segmenting_form.addRow(_row(self._undo_button, self._reset_button))
    segmenting_form.addRow(self._save_button)

    committing = QGroupBox("Commit the selection to a Labels layer")
    committing_form = QFormLayout(committing)
    committing_form.addRow("Layer", self._target)
    committing_form.addRow("Label", _row(self._label_value, self._over_labels))
    committing_form.addRow(_row(self._commit_button, self._save_labels_button))

    layout = QVBoxLayout(self)
    layout.addLayout(source)
    layout.addWidget(training)
    layout.addWidget(segmenting)
    layout.addWidget(committing)
    layout.addWidget(self._status)
    layout.addStretch(1)

  def _pick_workdir(self):
    folder = QFileDialog.getExistingDirectory(self, "Training workdir", self._workdir.text())
    if folder:
      self._workdir.setText(folder)

  def _pick_config_file(self):
    path, _ = QFileDialog.getOpenFileName(self, "Config file", self._config_file.text(),
                                          "Python config (*.py)")
    if path:
      self._config_file.setText(path)
