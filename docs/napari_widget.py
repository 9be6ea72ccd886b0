r"""Draws docs/napari_widget.png (the widget after clicks) and times Segment and clicks in it.

    python -m cuts_jax.main --config=configs/demo.py --workdir=/tmp/cuts_demo
    QT_QPA_PLATFORM=xcb xvfb-run -a python docs/napari_widget.py --workdir=/tmp/cuts_demo
    xvfb-run -a python docs/napari_widget.py --workdir=/tmp/cuts_demo --output= --image \
        --volume=../shared/data/brain_mri/test_scan.npz

The picture needs a real (virtual) window, hence xcb; the times are taken in
the offscreen viewer the tests use (QT_QPA_PLATFORM=offscreen, the default
here; OpenGL from the X display xvfb-run gives it). A time is from pressing
Segment to the Labels layer being shown: the first press includes loading the
model and compiling for the image's size; the second, with another k, clusters
the kept features again. A click (a positive one, then a ctrl-click that
removes a segment) and a granularity change (the slider moved one level) are
timed from the call to the updated layers being drawn.
"""

import argparse
import os
import pathlib
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import napari  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from qtpy.QtWidgets import QApplication  # pylint: disable=g-import-not-at-top,wrong-import-position
from skimage import io  # pylint: disable=g-import-not-at-top,wrong-import-position

from cuts_jax import pixels  # pylint: disable=g-import-not-at-top,wrong-import-position
from cuts_jax.io import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position

_HERE = pathlib.Path(__file__).resolve().parent


def _wait(widget, timeout_s=1800.0):
  start = time.perf_counter()
  while widget.busy:
    if time.perf_counter() - start > timeout_s:
      raise TimeoutError("the widget is still busy")
    QApplication.processEvents()
    time.sleep(0.005)
  QApplication.processEvents()


def _press_segment(widget):
  """Seconds from pressing Segment to the segments being shown."""
  widget._segment_button.click()  # pylint: disable=protected-access
  _wait(widget)
  if widget.last_segment_seconds is None:
    raise RuntimeError(widget._status.text())  # pylint: disable=protected-access
  return widget.last_segment_seconds


def _open_widget(viewer, workdir):
  _, widget = viewer.window.add_plugin_dock_widget("cuts_jax", "Click to segment")
  widget._workdir.setText(str(workdir))  # pylint: disable=protected-access
  return widget


def _timed(action):
  """Seconds from calling `action` to the viewer having processed what it changed."""
  start = time.perf_counter()
  action()
  QApplication.processEvents()
  return time.perf_counter() - start


def _time_layer(workdir, data, name, **layer_kwargs):
  """Seconds of: first Segment, Segment with another k, a click, a negative click, a level change.

  Each from a fresh viewer; the clicks land on the middle of the layer (the
  negative one a quarter of the way in); the level change is None for a
  volume (no granularity slider).
  """
  viewer = napari.Viewer(show=False)
  layer = viewer.add_image(data, name=name, **layer_kwargs)
  widget = _open_widget(viewer, workdir)
  first = _press_segment(widget)
  widget.last_segment_seconds = None
  widget._clusters.setValue(widget._clusters.value() + 1)  # pylint: disable=protected-access
  again = _press_segment(widget)
  shape = np.array(widget._segments.labels.shape)  # pylint: disable=protected-access
  world = layer.data_to_world
  click = _timed(lambda: widget.select_at(world(shape // 2)))
  negative = _timed(lambda: widget.select_at(world(shape // 4), negative=True))
  level = None
  if widget._level.maximum() > 0:  # pylint: disable=protected-access
    slider = widget._level  # pylint: disable=protected-access
    level = _timed(lambda: slider.setValue((slider.value() + 1) % (slider.maximum() + 1)))
  viewer.close()
  return first, again, click, negative, level


def _screenshot(workdir, output):
  names, images = datasets.demo_images()
  fundus = pixels.resize_image(images[names.index("retina")], (256, 256))
  viewer = napari.Viewer(show=True)
  viewer.window._qt_window.resize(1500, 800)  # pylint: disable=protected-access
  viewer.add_image(fundus, name="fundus", rgb=True)
  widget = _open_widget(viewer, workdir)
  _press_segment(widget)
  widget.select_at((118, 42))  # The optic disc, committed as label 1.
  widget.commit()
  widget.select_at((150, 150))  # Then two positive clicks and a negative one.
  widget.select_at((170, 110), add=True)
  widget.select_at((135, 175), negative=True)
  viewer.reset_view()
  QApplication.processEvents()
  picture = viewer.screenshot(canvas_only=False, flash=False)
  io.imsave(output, picture[..., :3], check_contrast=False)
  viewer.close()
  print(f"wrote {output} ({pathlib.Path(output).stat().st_size // 1024} KB)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="a trained workdir (configs/demo.py)")
  parser.add_argument("--volume", default="", help="a .npz holding a volume 'vol' to time")
  parser.add_argument("--output", default=str(_HERE / "napari_widget.png"),
                      help="the picture (empty: none)")
  parser.add_argument("--image", action="store_true", help="time a 128x128 image too")
  args = parser.parse_args()
  if args.output:
    _screenshot(args.workdir, args.output)
  if not (args.image or args.volume):
    return
  rows = []
  if args.image:
    _, images = datasets.demo_images()
    image = pixels.resize_image(images[2], (128, 128))
    rows.append(("128x128 RGB image", *_time_layer(args.workdir, image, "coffee", rgb=True)))
  if args.volume:
    with np.load(args.volume, allow_pickle=False) as archive:
      volume = archive["vol"]
    shape = "x".join(str(s) for s in volume.shape)
    rows.append((f"{shape} volume, {volume.shape[0]} slices along axis 0",
                 *_time_layer(args.workdir, volume, "volume")))
  print("| layer | first Segment (loads and compiles) | Segment again, another k | click | "
        "ctrl-click (remove) | granularity change |")
  print("| --- | --- | --- | --- | --- | --- |")
  for name, *seconds in rows:
    print(f"| {name} | " + " | ".join("-" if t is None else f"{t:.2f} s" for t in seconds)
          + " |")


if __name__ == "__main__":
  main()
