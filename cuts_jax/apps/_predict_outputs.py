"""What `predict` writes: label maps, masks, overlays and figures, and its summary.

Every output path goes through `Writer.path`, which refuses a path that is
one of the inputs, so a run can never overwrite what it reads.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Callable, Iterable, Optional

from absl import logging
import numpy as np
from skimage import io as skimage_io
from skimage import segmentation as skimage_segmentation

from cuts_jax.evaluation import viz

SUMMARY_FILE = "summary.json"


@dataclasses.dataclass
class Summary:
  """What `predict_path` did.

  Attributes:
    output_dir: where the outputs were written.
    succeeded: per input that worked, {"input": path, "outputs": [paths]}.
    failed: per input that did not, {"input": path, "reason": text}.
    skipped: files in the folder that are not images, volumes or DICOM.
  """

  output_dir: pathlib.Path
  succeeded: list[dict] = dataclasses.field(default_factory=list)
  failed: list[dict] = dataclasses.field(default_factory=list)
  skipped: list[str] = dataclasses.field(default_factory=list)

  @property
  def ok(self) -> bool:
    """Whether no input failed."""
    return not self.failed

  def line(self) -> str:
    """One line for the console: how many inputs succeeded and failed."""
    total = len(self.succeeded) + len(self.failed)
    text = (f"{len(self.succeeded)} of {total} input(s) segmented, {len(self.failed)} "
            f"failed; outputs in {self.output_dir}")
    if self.skipped:
      text += f" ({len(self.skipped)} other file(s) ignored)"
    return text

  def to_json(self) -> dict:
    """The lists of `summary.json`: succeeded, failed and skipped inputs."""
    return {"succeeded": self.succeeded, "failed": self.failed, "skipped": self.skipped}


class Writer:
  """Writes outputs, refusing any path that is one of the inputs."""

  def __init__(self, output_dir: pathlib.Path, inputs: Iterable[pathlib.Path]):
    self.output_dir = output_dir
    self.inputs = {p.resolve() for p in inputs}
    self.overlays = True

  def path(self, file_name: str) -> pathlib.Path:
    path = self.output_dir / file_name
    if path.resolve() in self.inputs:
      raise FileExistsError(f"{path} is an input; choose another --output folder.")
    return path

  def figure(self, draw: Callable[[], object], file_name: str) -> Optional[pathlib.Path]:
    """Saves the figure `draw()` makes; None without matplotlib (warned once)."""
    if not self.overlays:
      return None
    try:
      figure = draw()
    except ImportError:
      logging.warning("matplotlib is not installed: no figures (pip install 'cuts_jax[viz]').")
      self.overlays = False
      return None
    path = self.path(file_name)
    viz.save(figure, path)
    return path

  def overlay(self, image: np.ndarray, labels: np.ndarray, mask: Optional[np.ndarray],
              file_name: str) -> Optional[pathlib.Path]:
    """Segments drawn on the image (selected segment outlined in red); None without matplotlib."""
    if not self.overlays:
      return None
    try:
      rgb = viz.overlay_segments(image, labels)
    except ImportError:
      logging.warning("matplotlib is not installed: no overlay PNGs (pip install "
                      "'cuts_jax[viz]').")
      self.overlays = False
      return None
    if mask is not None:
      rgb[skimage_segmentation.find_boundaries(mask, mode="inner")] = (1.0, 0.0, 0.0)
    path = self.path(file_name)
    skimage_io.imsave(path, np.round(rgb * 255).astype(np.uint8), check_contrast=False)
    return path

  def mask_png(self, mask: np.ndarray, file_name: str) -> pathlib.Path:
    """A 2-D mask as a 0/255 PNG."""
    path = self.path(file_name)
    skimage_io.imsave(path, np.asarray(mask, bool).astype(np.uint8) * 255, check_contrast=False)
    return path

  def summary(self, summary: Summary) -> pathlib.Path:
    """`summary` as SUMMARY_FILE in the output folder."""
    path = self.path(SUMMARY_FILE)
    path.write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return path
