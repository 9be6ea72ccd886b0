"""MetricWriter: JSON lines always, TensorBoard events when a writer library is installed."""

import json
import struct
import sys

import numpy as np
import pytest

from cuts_jax.runs import metric_writers


def _read_json_lines(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def _read_events(folder):
  """(tag, step, kind) of every summary value in the TFRecord event files under folder."""
  event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2",
                                  reason="tensorboardX is not installed")
  found = []
  for path in folder.rglob("events.out.tfevents.*"):
    raw = path.read_bytes()
    offset = 0
    while offset < len(raw):
      # A TFRecord: uint64 length, uint32 CRC, payload, uint32 CRC.
      (length,) = struct.unpack("<Q", raw[offset:offset + 8])
      event = event_pb2.Event.FromString(raw[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        found.append((value.tag, event.step, value.WhichOneof("value")))
  return found


def test_scalars_are_appended_as_one_json_line_per_call(tmp_path):
  workdir = tmp_path / "run"
  with metric_writers.MetricWriter(workdir, enabled=True, tensorboard=False) as writer:
    writer.write_scalars(1, {"loss": np.float32(0.5), "steps_per_s": 2})
    writer.write_scalars(2, {"loss": 0.25})
  with metric_writers.MetricWriter(workdir, enabled=True, tensorboard=False) as writer:
    writer.write_scalars(3, {"eval_dice": np.array(0.75)})
  assert _read_json_lines(workdir / "metrics.jsonl") == [
      {"step": 1, "loss": 0.5, "steps_per_s": 2.0},
      {"step": 2, "loss": 0.25},
      {"step": 3, "eval_dice": 0.75},
  ]


def test_tensorboard_events_hold_scalars_and_images(tmp_path):
  if metric_writers._summary_writer_class() is None:  # pylint: disable=protected-access
    pytest.skip("neither tensorboardX nor torch.utils.tensorboard is installed")
  writer = metric_writers.MetricWriter(tmp_path, enabled=True)
  assert writer.has_tensorboard
  writer.write_scalars(5, {"loss": 1.5, "contrastive_loss": float("nan")})
  writer.write_images(5, {"segments": np.random.default_rng(0).random((8, 12, 3)),
                          "gray": np.zeros((8, 12))})
  writer.close()
  events = _read_events(tmp_path / metric_writers.TENSORBOARD_DIR)
  assert ("loss", 5, "simple_value") in events
  assert ("segments", 5, "image") in events and ("gray", 5, "image") in events
  # A NaN goes to the JSON file (where it marks the failure) but not to TensorBoard's plots.
  assert not any(tag == "contrastive_loss" for tag, _, _ in events)
  line = _read_json_lines(tmp_path / "metrics.jsonl")[0]
  assert line["loss"] == 1.5 and np.isnan(line["contrastive_loss"])


def test_without_tensorboard_libraries_only_json_is_written(tmp_path, monkeypatch):
  # None in sys.modules makes the import fail, as if the packages were absent.
  for module in ("tensorboardX", "torch", "torch.utils.tensorboard"):
    monkeypatch.setitem(sys.modules, module, None)
  writer = metric_writers.MetricWriter(tmp_path, enabled=True)
  assert not writer.has_tensorboard
  writer.write_scalars(1, {"loss": 0.1})
  writer.write_images(1, {"segments": np.zeros((4, 4, 3))})  # Accepted, nowhere to go.
  writer.close()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_a_disabled_writer_writes_nothing(tmp_path):
  workdir = tmp_path / "other_process"
  writer = metric_writers.MetricWriter(workdir, enabled=False)
  writer.write_scalars(1, {"loss": 0.1})
  writer.write_images(1, {"segments": np.zeros((4, 4, 3))})
  writer.close()
  assert not workdir.exists()


def test_default_enabled_means_process_zero(tmp_path):
  writer = metric_writers.MetricWriter(tmp_path, tensorboard=False)
  assert writer.enabled  # A single-process run is process 0.
  writer.close()


def test_bad_input_is_refused_clearly(tmp_path):
  writer = metric_writers.MetricWriter(tmp_path, enabled=True, tensorboard=False)
  with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
    writer.write_images(1, {"batch": np.zeros((2, 4, 4, 3))})
  with pytest.raises(ValueError, match="reserved"):
    writer.write_scalars(1, {"step": 3})
  with pytest.raises(TypeError, match="numbers"):
    writer.write_scalars(1, {"loss": "low"})
  writer.close()
  with pytest.raises(RuntimeError, match="closed"):
    writer.write_scalars(2, {"loss": 0.1})


def test_training_curves_reads_what_the_writer_wrote(tmp_path):
  viz = pytest.importorskip("cuts_jax.evaluation.viz")
  pytest.importorskip("matplotlib", reason="matplotlib is not installed (the viz extra)")
  with metric_writers.MetricWriter(tmp_path, enabled=True, tensorboard=False) as writer:
    for step in (2, 4, 6):
      writer.write_scalars(step, {"loss": 1.0 / step, "valid_anchor_fraction": 0.9})
  figure = viz.training_curves(tmp_path / "metrics.jsonl")
  assert len(figure.axes) == 2
  viz.pyplot().close(figure)
