"""Pictures: segment overlays, selected-vs-expert contours, grids, training curves.

Needs matplotlib (`pip install "cuts_jax[viz]"`); without a display it
draws with its headless backend, so figures can be written on any machine.
"""

from __future__ import annotations

import json
import pathlib
from typing import Optional, Sequence

import numpy as np
from skimage import measure
from skimage import segmentation

from cuts_jax import _optional
from cuts_jax import _validation
from cuts_jax import scales

__all__ = ["methods_figure", "overlay_segments", "pyplot", "save",
           "scales_figure", "segmentation_figure", "training_curves"]

_matplotlib = _optional.module("matplotlib", extra="viz", purpose="drawing figures")
_pyplot = _optional.module("matplotlib.pyplot", extra="viz", purpose="drawing figures")


def pyplot():
  """`matplotlib.pyplot`, imported now.

  Raises:
    ImportError: naming the extra to install, when matplotlib is missing.
  """
  return _optional.require(_pyplot)[0]


def _as_rgb(image: np.ndarray) -> np.ndarray:
  """(H, W), (H, W, 1) or (H, W, C >= 3) -> float32 (H, W, 3) clipped to [0, 1]."""
  image = _validation.check_image(image).astype(np.float32)
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return np.clip(image[..., :3], 0.0, 1.0)


def _label_colours(num_labels: int) -> np.ndarray:
  """A fixed (num_labels, 3) palette, so the same label has the same colour everywhere."""
  cmap = _matplotlib.colormaps["tab10" if num_labels <= 10 else "tab20"]
  return np.array([cmap(i % cmap.N)[:3] for i in range(num_labels)], np.float32)


def overlay_segments(image: np.ndarray, labels: np.ndarray, *, alpha: float = 0.45,
                     boundaries: bool = True) -> np.ndarray:
  """The image (H, W[, C]) in [0, 1] tinted by segment colour, with segment borders.

  Returns:
    float32 (H, W, 3) RGB in [0, 1].
  """
  rgb = _as_rgb(image)
  labels = _validation.check_label_map(labels)
  _validation.check_same_shape(labels.shape, rgb.shape[:2], names=("labels", "the image"))
  _, dense = np.unique(labels, return_inverse=True)
  dense = dense.reshape(labels.shape)
  tinted = (1 - alpha) * rgb + alpha * _label_colours(int(dense.max()) + 1)[dense]
  if boundaries:
    tinted = segmentation.mark_boundaries(tinted, dense, color=(1, 1, 1), mode="inner")
  return np.clip(tinted, 0, 1).astype(np.float32)


def _draw_contours(axis, mask: np.ndarray, *, colour: str, label: Optional[str] = None,
                  linewidth: float = 1.5) -> None:
  """Draws the outline of a binary mask on a matplotlib axis."""
  mask = np.asarray(mask, dtype=float)
  contours = measure.find_contours(np.pad(mask, 1), 0.5)
  if not contours:
    return
  # One line broken by NaN rows: a label map can have thousands of specks, and one
  # matplotlib artist per speck made figures of noisy segmentations take seconds.
  gap = np.full((1, 2), np.nan)
  joined = np.concatenate([part for contour in contours for part in (contour, gap)])
  axis.plot(joined[:, 1] - 1, joined[:, 0] - 1, color=colour, linewidth=linewidth, label=label)


def segmentation_figure(rows: Sequence[dict], *, title: Optional[str] = None):
  """A grid like the paper's Figs. 2, 3 and 5: one row per image.

  Args:
    rows: dicts with "image" (H, W[, C]), "labels" (H, W), and optionally
      "name", "selected" (bool mask of the chosen segment), "expert" (bool
      mask of the expert region), "pixel" ((row, col) that was clicked) and
      "caption" (text under the last panel, e.g. the Dice).
    title: figure title.

  Returns:
    A matplotlib Figure with columns image | segments | selected vs expert
    (the last only when some row has masks).
  """
  plt = pyplot()
  with_masks = any(r.get("selected") is not None or r.get("expert") is not None for r in rows)
  columns = 3 if with_masks else 2
  figure, axes = plt.subplots(len(rows), columns, figsize=(3.0 * columns, 3.0 * len(rows)),
                              squeeze=False)
  for axis_row, row in zip(axes, rows):
    axis_row[0].imshow(_as_rgb(row["image"]))
    axis_row[0].set_title(row.get("name", ""), fontsize=9)
    axis_row[1].imshow(overlay_segments(row["image"], row["labels"]))
    axis_row[1].set_title(f"{len(np.unique(row['labels']))} segments", fontsize=9)
    if with_masks:
      axis_row[2].imshow(_as_rgb(row["image"]))
      if row.get("expert") is not None:
        _draw_contours(axis_row[2], row["expert"], colour="yellow", label="expert")
      if row.get("selected") is not None:
        _draw_contours(axis_row[2], row["selected"], colour="red", label="selected")
      if row.get("pixel") is not None:
        axis_row[2].plot(row["pixel"][1], row["pixel"][0], "c+", markersize=10, mew=2)
      axis_row[2].set_title(row.get("caption", "selected (red) vs expert (yellow)"),
                            fontsize=9)
    for axis in axis_row:
      axis.set_axis_off()
  if title:
    figure.suptitle(title)
  figure.tight_layout()
  return figure


def methods_figure(images: Sequence[np.ndarray], rows: Sequence[Sequence[dict]], *,
                   experts: Optional[Sequence[np.ndarray]] = None):
  """Compares methods: one row per image, one column per method.

  Args:
    images: the images (H, W[, C]) in [0, 1].
    rows: per image, per method, a dict with "method", "labels" and optionally
      "selected" (bool mask), "pixel" ((row, col) clicked) and "dice".
    experts: per image, the expert mask to outline (or None).

  Returns:
    A matplotlib Figure: the segments of each method, with the selected
    segment (red) and the expert region (yellow) outlined when given.
  """
  plt = pyplot()
  columns = 1 + max(len(r) for r in rows)
  figure, axes = plt.subplots(len(rows), columns, figsize=(2.4 * columns, 2.4 * len(rows)),
                              squeeze=False)
  for index, (axis_row, image, row) in enumerate(zip(axes, images, rows)):
    axis_row[0].imshow(_as_rgb(image))
    axis_row[0].set_title("image", fontsize=8)
    for axis, cell in zip(axis_row[1:], row):
      axis.imshow(overlay_segments(image, cell["labels"], boundaries=False))
      if experts is not None and experts[index] is not None:
        _draw_contours(axis, experts[index], colour="yellow", linewidth=1.0)
      if cell.get("selected") is not None:
        _draw_contours(axis, cell["selected"], colour="red", linewidth=1.0)
      title = cell["method"]
      if cell.get("dice") is not None:
        title += f"\nDice {cell['dice']:.2f}"
      axis.set_title(title, fontsize=8)
    for axis in axis_row:
      axis.set_axis_off()
  figure.tight_layout()
  return figure


def scales_figure(rows: Sequence[dict], *, num_columns: int = 5):
  """A scale stack's levels side by side with the clicked segment at each, and the rule's region.

  Args:
    rows: per image a dict with "image" (H, W[, C]), "stack" (a 2-D
      `cuts_jax.scales.ScaleStack`), "pixel" ((row, col) clicked) and
      optionally "expert" (bool mask to outline).
    num_columns: levels drawn per image, spread evenly from coarse to fine.

  Returns:
    A matplotlib Figure: per row the image, the levels' segments with the
    clicked segment (red) and the expert region (yellow), then the region
    the stack's rule chooses (`cuts_jax.select`).
  """
  plt = pyplot()
  figure, axes = plt.subplots(len(rows), num_columns + 2,
                              figsize=(2.3 * (num_columns + 2), 2.4 * len(rows)), squeeze=False)
  for axis_row, row in zip(axes, rows):
    stack, pixel = row["stack"], tuple(row["pixel"])
    shown = sorted(set(np.linspace(0, len(stack) - 1, num_columns).round().astype(int)))
    axis_row[0].imshow(_as_rgb(row["image"]))
    axis_row[0].plot(pixel[1], pixel[0], "c+", markersize=10, mew=2)
    axis_row[0].set_title("image and click", fontsize=8)
    panels = [(stack.labels[level], stack.labels[level] == stack.labels[level][pixel],
               f"k = {stack.num_clusters[level]}") for level in shown]
    chosen = scales.choose_region(stack, pixel)
    panels.append((stack.labels[stack.level_of(stack.fixed_clusters)], chosen,
                   f"rule: {stack.rule}"))
    for axis, (labels, mask, title) in zip(axis_row[1:], panels):
      axis.imshow(overlay_segments(row["image"], labels, boundaries=False))
      if row.get("expert") is not None:
        _draw_contours(axis, row["expert"], colour="yellow", linewidth=1.0)
      _draw_contours(axis, mask, colour="red", linewidth=1.0)
      axis.set_title(title, fontsize=8)
    for axis in axis_row:
      axis.set_axis_off()
  figure.tight_layout()
  return figure


def training_curves(metrics_path: str | pathlib.Path, *,
                    keys: Sequence[str] = ("loss", "contrastive_loss", "reconstruction_loss",
                                           "valid_anchor_fraction")):
  """Plots the curves of `workdir/metrics.jsonl` against the step; returns the Figure."""
  plt = pyplot()
  records = [json.loads(line) for line in pathlib.Path(metrics_path).read_text().splitlines()
             if line.strip()]
  # A resumed run logs again the steps after its checkpoint: keep the last of each.
  latest = {}
  for record in records:
    latest.setdefault(record["step"], {}).update(record)
  records = [latest[step] for step in sorted(latest)]
  keys = [k for k in keys if any(k in r for r in records)]
  figure, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.5 * max(len(keys), 1), 3.0),
                              squeeze=False)
  for axis, key in zip(axes[0], keys):
    points = [(r["step"], r[key]) for r in records if key in r]
    axis.plot(*zip(*points), marker=".")
    axis.set_xlabel("step")
    axis.set_title(key, fontsize=9)
  figure.tight_layout()
  return figure


def save(figure, path: str | pathlib.Path, *, dpi: int = 110) -> pathlib.Path:
  """Writes a figure to PNG (creating folders) and closes it."""
  plt = pyplot()
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(path, dpi=dpi, bbox_inches="tight")
  plt.close(figure)
  return path
