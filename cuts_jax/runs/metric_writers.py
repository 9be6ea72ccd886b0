"""Where training metrics go: JSON lines always, TensorBoard when it is installed.

    writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
    writer.write_scalars(step, {"loss": 0.3})
    writer.write_images(step, {"segments": overlay})   # (H, W, 3) float in [0, 1]
    writer.close()

`workdir/metrics.jsonl` gets one JSON object per `write_scalars` call, e.g.
{"step": 25, "loss": 0.3}; `cuts_jax.evaluation.viz.training_curves` plots it. With
`tensorboardX` installed (or PyTorch with `tensorboard`), scalars and images
also go to TensorBoard event files in `workdir/tensorboard`
(`tensorboard --logdir=workdir`). TensorFlow is never needed.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Mapping, Optional

import jax
import numpy as np

from cuts_jax import _optional
from cuts_jax import _validation

__all__ = ["METRICS_FILE", "TENSORBOARD_DIR", "MetricWriter"]

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"

# Either writes TensorBoard events; PyTorch's needs both torch and the tensorboard package.
_TENSORBOARD_WRITERS = (
    _optional.module("tensorboardX", extra="tensorboard", purpose="writing TensorBoard events"),
    _optional.module("torch.utils.tensorboard", extra=None, purpose="writing TensorBoard events"),
)


def _summary_writer_class() -> Optional[type]:
  """tensorboardX's SummaryWriter, else PyTorch's, else None."""
  for writers in _TENSORBOARD_WRITERS:
    try:
      return writers.SummaryWriter
    except ImportError:
      continue
  return None


def _as_float(name: str, value: Any) -> float:
  try:
    return float(np.asarray(value))
  except (TypeError, ValueError):
    raise TypeError(f"scalar {name!r} is {value!r}; write_scalars takes numbers (Python, "
                    "numpy or jax scalars).") from None


def _as_image(name: str, image: Any) -> np.ndarray:
  """(H, W), (H, W, 1) or (H, W, 3) -> float32 (H, W, 3) clipped to [0, 1]."""
  array = _validation.check_image(
      np.asarray(image, dtype=np.float32), what=f"image {name!r}", channels=(1, 3),
      hint=" Images are RGB (H, W, 3) (or gray (H, W) / (H, W, 1)) with values in [0, 1].")
  if array.shape[-1] == 1:
    array = np.repeat(array, 3, axis=-1)
  return np.clip(np.nan_to_num(array), 0.0, 1.0)


class MetricWriter:
  """Appends metrics to `workdir/metrics.jsonl` and, when possible, TensorBoard.

  Only the writer with `enabled=True` writes (in a multi-host run, pass
  `jax.process_index() == 0`); a disabled writer accepts the same calls and
  does nothing. Usable as a context manager.

  Args:
    workdir: the run's folder (created when missing).
    enabled: whether this process writes; None means "process 0 of a JAX
      run" (`jax.process_index() == 0`).
    tensorboard: also write TensorBoard events when a writer library is
      installed; False: JSON lines only.
  """

  def __init__(self, workdir: str | pathlib.Path, *, enabled: Optional[bool] = None,
               tensorboard: bool = True):
    if enabled is None:
      enabled = jax.process_index() == 0
    self.enabled = bool(enabled)
    self.workdir = pathlib.Path(workdir).expanduser()
    self.metrics_path = self.workdir / METRICS_FILE
    self._stream = None
    self._summary_writer = None
    self._closed = False
    if not self.enabled:
      return
    self.workdir.mkdir(parents=True, exist_ok=True)
    writer_class = _summary_writer_class() if tensorboard else None
    if writer_class is not None:
      self._summary_writer = writer_class(str(self.workdir / TENSORBOARD_DIR))

  @property
  def has_tensorboard(self) -> bool:
    """Whether TensorBoard events are being written."""
    return self._summary_writer is not None

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Appends {"step": step, **scalars} as one JSON line (and TensorBoard scalars).

    Args:
      step: the training step (an integer).
      scalars: name -> number (Python, numpy or jax scalar). Non-finite
        values are written as NaN/Infinity, which Python's json reads.
    """
    if not self.enabled:
      return
    self._check_open()
    values = {str(k): _as_float(k, v) for k, v in scalars.items()}
    if "step" in values:
      raise ValueError("'step' is reserved for the step number; rename that scalar.")
    if self._stream is None:
      self._stream = self.metrics_path.open("a")
    self._stream.write(json.dumps({"step": int(step), **values}) + "\n")
    # Flushed per call: logging is rare, and a crash must not lose lines.
    self._stream.flush()
    if self._summary_writer is not None:
      for name, value in values.items():
        if math.isfinite(value):
          self._summary_writer.add_scalar(name, value, int(step))
      self._summary_writer.flush()

  def write_images(self, step: int, images: Mapping[str, Any]) -> None:
    """Writes images to TensorBoard (nothing without it; the JSON file holds scalars only).

    Args:
      step: the training step.
      images: name -> float (H, W, 3) RGB in [0, 1] (gray (H, W) or (H, W, 1)
        is repeated to RGB; values outside [0, 1] are clipped), e.g. from
        `cuts_jax.evaluation.viz.overlay_segments`.

    Raises:
      ValueError: an image has another shape.
    """
    if not self.enabled:
      return
    self._check_open()
    checked = {str(k): _as_image(k, v) for k, v in images.items()}
    if self._summary_writer is None:
      return
    for name, image in checked.items():
      self._summary_writer.add_image(name, image, int(step), dataformats="HWC")
    self._summary_writer.flush()

  def _check_open(self) -> None:
    if self._closed:
      raise RuntimeError(f"this MetricWriter of {self.workdir} is closed; make a new one.")

  def flush(self) -> None:
    """Writes what is buffered to `metrics.jsonl` and TensorBoard."""
    if self._stream is not None:
      self._stream.flush()
    if self._summary_writer is not None:
      self._summary_writer.flush()

  def close(self) -> None:
    """Flushes and closes the files; the writer cannot be used afterwards."""
    self._closed = True
    if self._stream is not None:
      self._stream.close()
      self._stream = None
    if self._summary_writer is not None:
      self._summary_writer.close()
      self._summary_writer = None

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
