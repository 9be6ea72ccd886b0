r"""Segments image files with a trained model: one file, or every file in a folder.

    python -m cuts_jax.apps.predict --workdir=/tmp/retina --input=scans/ --output=out/ \
        --pixel=64,40
    python -m cuts_jax.apps.predict --workdir=/tmp/brain --input=scan.nii.gz --output=out/ \
        --pixel=80,96,112

Inputs: 2-D images (PNG/JPG/TIFF/BMP/NPY, or a single .dcm file), NIfTI
volumes (.nii/.nii.gz) and DICOM series (a folder of .dcm slices: the input
folder itself or its subfolders). For each input `NAME` the output folder
receives:

- 2-D: `NAME_labels.png` (the label values, uint8/uint16), `NAME_overlay.png`
  (segments drawn on the image) and, with a pixel, `NAME_mask.png` (0/255).
- volumes: `NAME_labels.nii.gz` (in the scan's space; one clustering of the
  whole volume, so a label means the same on every slice),
  `NAME_overlay_sliceK.png` for three slices (and the clicked one) and, with
  a voxel `--pixel=I,J,K`, `NAME_mask.nii.gz` (0/1, the scan's affine): the
  3-D connected part of the segment under that voxel (`cuts_jax.select`).
  A two-number `--pixel=ROW,COL` is refused for a volume: on a volume it
  used to mean "the segment under (row, col) on every slice", which is a
  different structure on most slices.

plus `summary.json` listing every input, its outputs or why it failed. A file
that cannot be read is reported and skipped; the exit status is 1 when any
input failed. Overlays need matplotlib (the `viz` extra), volumes the
`medical` extra.

Every option not given is the model's own (its `SegmentSettings`, from its
config): k, the clustering, and the size images are segmented at (the
training image size under the shipped configs; `--segment_size=own` segments
each image at its own size). The input kinds are `_predict_inputs.INPUT_KINDS`;
the outputs are written by `_predict_outputs.Writer`.
"""

from __future__ import annotations

import errno
import pathlib
import sys
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from absl import app
from absl import flags
from absl import logging
import numpy as np

from cuts_jax import _optional
from cuts_jax import _validation
from cuts_jax import pixels
from cuts_jax import scales
from cuts_jax import segmentation
from cuts_jax import trained
from cuts_jax import volume as volume_lib
from cuts_jax import volume_features
from cuts_jax.apps import _cli
from cuts_jax.apps import _predict_inputs
from cuts_jax.apps import _predict_outputs
from cuts_jax.evaluation import viz
from cuts_jax.io import medical
from cuts_jax.runs import checkpointing
from cuts_jax.runs import console

__all__ = ["SUMMARY_FILE", "Item", "Summary", "find_inputs", "main", "parse_pixel",
           "parse_scale", "parse_segment_size", "predict_path"]

_tqdm = _optional.module("tqdm.auto", extra=None, purpose="a progress bar")

# Where the inputs and outputs are defined; named here, as before the split.
SUMMARY_FILE = _predict_outputs.SUMMARY_FILE
Item = _predict_inputs.Item
Summary = _predict_outputs.Summary
find_inputs = _predict_inputs.find_inputs

# Write errors after which no later input could be written either: the run
# stops instead of failing every remaining input one by one.
_FATAL_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)

# Slices drawn for a volume, as fractions of its extent along the slicing axis.
_OVERLAY_SLICE_FRACTIONS = (0.25, 0.5, 0.75)


def parse_pixel(text: str) -> tuple[int, ...]:
  """"ROW,COL" (a pixel of an image) -> (row, col); "I,J,K" (a voxel of a volume) -> (i, j, k).

  Every entry is a non-negative integer.
  """
  parts = text.replace(" ", "").split(",")
  try:
    index = tuple(int(p) for p in parts)
  except ValueError:
    index = ()
  if len(index) not in (2, 3):
    raise ValueError(f"--pixel is {text!r}; expected two integers ROW,COL (an image's pixel, "
                     "e.g. --pixel=64,40) or three I,J,K (a volume's voxel, e.g. "
                     "--pixel=80,96,112).")
  return _validation.check_pixel(index, what="--pixel", ndim=len(index))


def parse_segment_size(text: str) -> dict[str, Any]:
  """--segment_size as `SegmentSettings` overrides: "" (the model's), "training", "own" or "H,W".

  Raises:
    ValueError: for any other text.
  """
  text = text.replace(" ", "")
  if not text:
    return {}
  if text == "training":
    return {"at_training_size": True}
  if text == "own":
    return {"at_training_size": False}
  try:
    size = tuple(int(p) for p in text.split(","))
  except ValueError:
    size = ()
  if len(size) != 2:
    raise ValueError(f"--segment_size is {text!r}; expected 'training' (the model's training "
                     "image size), 'own' (each image's own size) or H,W (e.g. 128,128).")
  return {"resize_to": _validation.check_size(size, what="--segment_size", minimum=2)}


def _predict_image(params, item: Item, image: Any, writer: _predict_outputs.Writer, *,
                   clicks, negative, settings: segmentation.SegmentSettings, scale) -> list:
  image = pixels.match_channels(np.asarray(image), params.channels, source=item.path)
  for click in (*clicks, *negative):
    if len(click) != 2:
      raise ValueError(f"--pixel/--negative {tuple(click)} is a voxel (I,J,K), but this is a "
                       "2-D image; give its pixels as ROW,COL.")
    _validation.check_pixel(click, shape=image.shape, what="--pixel", where="image")
  image = segmentation.prepare_image(image, channels=params.channels)
  rule = settings.scale_rule if scale is None else scale
  flat = rule == "fixed" or isinstance(rule, int)
  if clicks and not flat:
    # The stack's level at k is `segment`'s map at k: one embedding serves both.
    stack = scales.segment_hierarchy(params, image, settings=settings)
    labels = (stack.labels[stack.level_of(settings.num_clusters)]
              if settings.num_clusters in stack.num_clusters and settings.connected
              else segmentation.segment(params, image, settings=settings))
  else:
    k = rule if isinstance(rule, int) else None
    labels = segmentation.segment(params, image, settings=settings, num_clusters=k)
  outputs = [medical.write_label_png(labels, writer.path(f"{item.name}_labels.png"))]
  mask = None
  if clicks:
    mask = (segmentation.select(labels, clicks, negative=negative) if flat
            else segmentation.select(stack, clicks, negative=negative, rule=rule))
    outputs.append(writer.mask_png(mask, f"{item.name}_mask.png"))
  outputs.append(writer.overlay(image, labels, mask, f"{item.name}_overlay.png"))
  return outputs


def _predict_volume(params, item: Item, volume: medical.Volume,
                    writer: _predict_outputs.Writer, *, clicks, negative, axis,
                    settings: segmentation.SegmentSettings, scale, feature_cache) -> list:
  if scale is not None and scale != "fixed":
    raise ValueError("--scale chooses among a 2-D image's scales; a volume is segmented at "
                     "one k (use --num_clusters).")
  if not -3 <= axis < 3:
    raise ValueError(f"--axis is {axis}; a volume has axes 0, 1 and 2.")
  for click in (*clicks, *negative):
    if len(click) != 3:
      raise ValueError(f"--pixel/--negative {tuple(click)} is a pixel (ROW,COL), but this is a "
                       "volume; click a voxel with --pixel=I,J,K (indices along the volume's "
                       "own axes, as stored). Its labels are the same on every slice, so one "
                       "voxel selects the structure in 3-D.")
    _validation.check_pixel(click, shape=volume.data.shape, what="--pixel",
                            where="volume", ndim=3)
  # The file's voxel sizes; the clicked pieces are kept out of the fold from the settings'
  # volume_min_kept_voxels up; features kept in the cache.
  labels = volume_lib.segment_volume(params, volume.data, axis=axis, spacing=volume.spacing,
                                     keep=[*clicks, *negative], cache=feature_cache,
                                     settings=settings)
  outputs = [medical.write_nifti_labels(labels, writer.path(f"{item.name}_labels.nii.gz"),
                                        like=volume)]
  slices = np.moveaxis(labels, axis, 0)
  masks = None
  count = len(slices)
  drawn = {min(int(f * count), count - 1) for f in _OVERLAY_SLICE_FRACTIONS}
  if clicks:
    mask = segmentation.select(labels, clicks, negative=negative)
    outputs.append(medical.write_nifti_labels(
        mask.astype(np.uint8), writer.path(f"{item.name}_mask.nii.gz"), like=volume,
        dtype=np.uint8))
    masks = np.moveaxis(mask, axis, 0)
    drawn.add(clicks[0][axis % 3])
  images = np.moveaxis(pixels.to_unit_range(volume.data), axis, 0)
  for index in sorted(drawn):
    outputs.append(writer.overlay(images[index], slices[index],
                                  None if masks is None else masks[index],
                                  f"{item.name}_overlay_slice{index:03d}.png"))
  return outputs


def _predict_item(params, item: Item, writer: _predict_outputs.Writer, **options) -> list:
  """Reads `item` by its kind (`INPUT_KINDS`) and segments it as an image or a volume."""
  kind = _predict_inputs.INPUT_KINDS[item.kind]
  data = kind.read(item.path)
  if kind.is_volume:
    return _predict_volume(params, item, data, writer, **options)
  options.pop("axis")
  options.pop("feature_cache")
  return _predict_image(params, item, data, writer, **options)


def _progress(items: list, enabled: bool) -> Iterable:
  """tqdm when installed, else a plain 'k/n name' line on stderr."""
  if not enabled or len(items) < 2:
    yield from items
    return
  try:
    progress_bar = _tqdm.tqdm
  except ImportError:
    progress_bar = None
  if progress_bar is not None:
    yield from progress_bar(items, unit="input", file=sys.stderr)
    return
  for index, item in enumerate(items):
    print(f"\r[{index + 1}/{len(items)}] {item.path.name[:60]:<60}", end="", file=sys.stderr,
          flush=True)
    yield item
  print(file=sys.stderr, flush=True)


def predict_path(params: segmentation.SegmentationParams, input_path: str | pathlib.Path,
                 output_dir: str | pathlib.Path, *, pixel: Any = None, negative: Any = (),
                 scale: Optional[Union[str, int]] = None, axis: int = 2,
                 show_progress: bool = True,
                 on_failure: Optional[Callable[[pathlib.Path, str], None]] = None,
                 feature_cache: Optional[volume_features.FeatureCache] = None,
                 settings: Optional[segmentation.SegmentSettings] = None,
                 **overrides: Any) -> Summary:
  """Segments one file or every input in a folder, writing labels, masks and overlays.

  Images are scaled as `cuts_jax.segment` does (volumes once over the whole
  volume); a grayscale image given to a model trained on colour is repeated
  in 3 channels, and a colour image with identical channels is read as gray.
  Volumes are embedded slice by slice along `axis` and clustered as a whole
  (`cuts_jax.segment_volume`), so a label means the same on every slice.

  Args:
    params: a `SegmentationParams` (from `cuts_jax.load`).
    input_path: a file (image, .dcm, .nii/.nii.gz) or a folder of them; a
      folder of .dcm files is one DICOM series.
    output_dir: created when missing; must not be the input folder.
    pixel: the positive click(s) whose region is written as the mask: one
      (row, col) of an image or (i, j, k) of a volume (whose 3-D connected
      part of the clicked segment is the mask), or a list of them. An input
      of the other kind fails with the reason (a folder's other inputs are
      still segmented).
    negative: click(s) on what the mask must not hold, in the same form
      (`cuts_jax.select`'s `negative`).
    scale: for 2-D images, how the region under each click is chosen: a
      rule of `cuts_jax.segment_settings.SCALE_RULES` among the scales of
      `cuts_jax.segment_hierarchy` ("fixed": the segments at the model's
      k), or an int k (the segments at that k). None: the model's
      `scale_rule`. Volumes take only None or "fixed".
    axis: the axis volumes are sliced along.
    show_progress: draw a progress line for more than one input.
    on_failure: called with (path, reason) when an input fails (default:
      a warning in the log).
    feature_cache: a `volume_features.FeatureCache` that keeps volumes'
      features (with a directory: across runs), so segmenting a volume again
      with another k or other clicks skips the embedding. Volumes use the
      voxel sizes of their file (smoothing across slices, folding).
    settings, **overrides: as in `cuts_jax.segment`, resolved once for every
      input; the model's by default. E.g. `num_clusters`, `method`, `seed`;
      the size images (and volume slices) are segmented at: `resize_to=(H, W)`,
      or `at_training_size` (True: the model's training image size, False:
      each image's own size; by default the model's choice, the training
      size under the shipped configs). Labels are always written at each
      input's own size.

  Returns:
    A `Summary`; it is also written to `output_dir/summary.json`.

  Raises:
    FileNotFoundError: `input_path` does not exist.
    pixels.DataError: it holds nothing to segment.
    ValueError: `output_dir` is the input folder, `pixel` is malformed, or
      an option is invalid.
    OSError: `output_dir` cannot be written (checked before any input is
      segmented), or the disk filled up during the run (it stops there).
  """
  settings = segmentation.resolve_settings(params, settings=settings, **overrides)
  input_path = pathlib.Path(input_path).expanduser()
  output_dir = pathlib.Path(output_dir).expanduser()
  if input_path.is_dir() and output_dir.exists() and output_dir.resolve() == input_path.resolve():
    raise ValueError(f"--output {output_dir} is the input folder; choose another folder so the "
                     "results do not mix with (or get read as) inputs.")
  clicks = _clicks(pixel, "--pixel")
  negative = _clicks(negative, "--negative")
  if negative and not clicks:
    raise ValueError("--negative needs at least one --pixel: negative clicks only remove from "
                     "what positive clicks select.")
  if scale is not None and not (isinstance(scale, int) and not isinstance(scale, bool)
                                and scale >= 1) and scale not in scales.RULES:
    raise ValueError(f"--scale is {scale!r}; expected one of {', '.join(scales.RULES)} or a "
                     "number of clusters k >= 1.")
  items, others = find_inputs(input_path, exclude=output_dir)
  checkpointing.check_writable(output_dir, flag="--output")
  writer = _predict_outputs.Writer(output_dir, _predict_inputs.input_files(input_path, items))
  summary = Summary(output_dir=output_dir, skipped=others)
  for item in _progress(items, show_progress):
    try:
      outputs = _predict_item(params, item, writer, clicks=clicks, negative=negative,
                              axis=axis, settings=settings, scale=scale,
                              feature_cache=feature_cache)
    except Exception as error:  # One bad input must not stop the others.
      if isinstance(error, OSError) and error.errno in _FATAL_WRITE_ERRORS:
        raise OSError(f"cannot write to {output_dir} ({error.strerror}); stopped at "
                      f"{item.path} after {len(summary.succeeded)} segmented input(s). Free "
                      "space or choose another --output.") from error
      reason = str(error) if isinstance(error, (ValueError, ImportError)) else (
          f"{type(error).__name__}: {error}")
      summary.failed.append({"input": str(item.path), "reason": reason})
      if on_failure is not None:
        on_failure(item.path, reason)
      else:
        logging.warning("skipped %s: %s", item.path, reason)
      continue
    summary.succeeded.append({"input": str(item.path),
                              "outputs": [str(p) for p in outputs if p is not None]})
  writer.summary(summary)
  return summary


def _clicks(clicks: Any, what: str) -> list[tuple[int, ...]]:
  """One click or a list of them (pixels or voxels, not mixed) as a list of tuples."""
  if clicks is None:
    return []
  array = np.asarray(clicks, dtype=object)
  items = [clicks] if array.ndim == 1 and len(array) and not isinstance(
      array[0], (tuple, list, np.ndarray)) else list(clicks)
  checked = [_validation.check_pixel(c, what=what, ndim=3 if len(c) == 3 else 2)
             if isinstance(c, (tuple, list, np.ndarray)) else
             _validation.check_pixel(c, what=what) for c in items]
  if len({len(c) for c in checked}) > 1:
    raise ValueError(f"{what} mixes pixels (ROW,COL) and voxels (I,J,K); an input is either an "
                     "image or a volume.")
  return checked


def parse_scale(text: Optional[str]) -> Optional[Union[str, int]]:
  """--scale as `predict_path`'s `scale`: None, a rule name, or a k ("10" -> 10)."""
  if text is None or not text.strip():
    return None
  text = text.strip()
  if text.isdigit() and int(text) >= 1:
    return int(text)
  if text in scales.RULES:
    return text
  raise ValueError(f"--scale is {text!r}; expected one of {', '.join(scales.RULES)} (how the "
                   "region under a click is chosen among the scales k = 2..15) or a number of "
                   "clusters, e.g. --scale=10.")


def _define_flags() -> None:
  """The CLI's flags; defined only when run as a program (no clash with cuts_jax.main)."""
  flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints/).")
  flags.DEFINE_string("input", None, "An image, .nii/.nii.gz, .dcm, or a folder of them.")
  flags.DEFINE_string("output", None, "Folder for the results (created when missing).")
  flags.DEFINE_multi_string("pixel", [], "ROW,COL of an image's pixel, or I,J,K of a "
                            "volume's voxel, whose region is written as a mask (for a volume: "
                            "the segment's 3-D connected part that holds the voxel); repeat "
                            "for more positive clicks.")
  flags.DEFINE_multi_string("negative", [], "ROW,COL (or I,J,K) the mask must not hold; "
                            "repeatable. On an image the region under each --pixel is then "
                            "chosen at a scale that leaves these out.")
  flags.DEFINE_string("scale", None, "How the region under a 2-D image's click is chosen: "
                      "consensus, medoid, stability (label-free rules over the scales "
                      "k = 2..15), fixed (the segments at the model's k) or a number k. "
                      "Default: the model's (config.evaluation.scale_rule).")
  flags.DEFINE_integer("num_clusters", None, "k of the clustering (default: the model's, "
                       "from its config).")
  flags.DEFINE_integer("seed", None, "Seed of the clustering (default: the model's, "
                       "config.evaluation.seed).")
  flags.DEFINE_integer("axis", 2, "Axis along which volumes are sliced.")
  flags.DEFINE_string("feature_cache", None, "Folder that keeps volumes' per-voxel features "
                      "(keyed by model and volume), so another k or click on the same volume "
                      "skips the embedding.")
  flags.DEFINE_integer("step", None, "Checkpoint step to load (default: the latest).")
  flags.DEFINE_string("segment_size", "", "The size images (and volume slices) are segmented "
                      "at; labels are written at each input's own size. 'training': the "
                      "model's training image size; 'own': each image's own size; H,W: that "
                      "size (e.g. 128,128). Default: the model's choice "
                      "(config.evaluation.segment_at_training_size; the training size under "
                      "the shipped configs).")
  flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv: Sequence[str]) -> None:
  """Segments --input into --output (absl entry point; `argv` holds no more)."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  console.setup_logging()
  values = flags.FLAGS

  def report(path, reason):
    where = "" if reason.startswith(str(path)) else f"{path}: "
    print(f"\n{_cli.program_name()}: FAILED {where}{reason}", file=sys.stderr, flush=True)

  with _cli.exit_on_user_error():
    clicks = [parse_pixel(text) for text in values.pixel]
    negative = [parse_pixel(text) for text in values.negative]
    scale = parse_scale(values.scale)
    size = parse_segment_size(values.segment_size)
    find_inputs(values.input)  # A wrong path fails before the model loads.
    params = trained.load(values.workdir, step=values.step)
    summary = predict_path(
        params, values.input, values.output, pixel=clicks or None, negative=negative,
        scale=scale, num_clusters=values.num_clusters,
        seed=values.seed, axis=values.axis, on_failure=report,
        feature_cache=(volume_features.FeatureCache(directory=values.feature_cache)
                       if values.feature_cache else None),
        **size)
  print(f"{_cli.program_name()}: {summary.line()}", flush=True)
  if not summary.ok:
    sys.exit(1)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
