"""The experiment scripts run end to end on tiny settings (no result is asserted)."""

import csv
import importlib.util
import sys

import pytest

from conftest import REPO_ROOT
from conftest import shared_data

TINY = ("data.limit=2", "training.num_steps=2", "training.batch_size=2",
        "training.crop_size=24", "training.log_every=1", "training.checkpoint_every=2",
        "model.kernel_sizes=(3,)", "model.features=(4,)", "model.embedding_dim=4",
        "sampling.num_anchors=4", "evaluation.patch_pixels=10",
        "evaluation.oracle_num_clusters=(2, 3)", "evaluation.scale_num_clusters=(2, 3)")


def _load(relative: str):
  spec = importlib.util.spec_from_file_location(relative.replace("/", "_")[:-3],
                                                REPO_ROOT / relative)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _run_cuts(tmp_path, ablations, monkeypatch):
  # In-process (not a subprocess): the suite's time goes to compiling, not to importing jax.
  run_cuts = _load("experiments/run_cuts.py")
  monkeypatch.setattr(sys, "argv", [
      "run_cuts.py", "--dataset=retina", "--seeds=0", f"--ablations={ablations}", "--name=tiny",
      f"--data_root={shared_data('retina_ga')}", f"--workdir_root={tmp_path / 'runs'}",
      f"--results_dir={tmp_path / 'results'}", *[f"--set={s}" for s in TINY]])
  run_cuts.main()
  return (tmp_path / "results" / "tiny.md").read_text()


@pytest.mark.slow  # Two ablations trained and evaluated: one to two minutes.
def test_run_cuts_writes_tables_per_ablation_and_marks_reused_runs(tmp_path, monkeypatch):
  first = _run_cuts(tmp_path, "none,no_contrastive", monkeypatch)
  assert "## CUTS per ablation" in first
  assert "| cuts (no_contrastive) |" in first and "| kmeans_smoothed |" in first
  assert "reused" not in first and "resumed" not in first
  with (tmp_path / "results" / "tiny.csv").open() as stream:
    rows = list(csv.DictReader(stream))
  dice = [r for r in rows if r["method"] == "cuts" and r["metric"] == "dice"]
  assert {r["ablation"] for r in dice} == {"none", "no_contrastive"}
  assert all(r["seeds"] == "1" for r in dice)
  # A second invocation reuses the finished runs and says so instead of timing them as new.
  second = _run_cuts(tmp_path, "none", monkeypatch)
  assert second.count("(a finished run reused)") == 1
  assert not (tmp_path / "results" / "retina_cuts_dice.txt").exists()


def test_training_origin_tells_fresh_resumed_and_reused_runs_apart(tmp_path):
  run_cuts = _load("experiments/run_cuts.py")
  assert run_cuts._completed_checkpoint_step(tmp_path) == 0
  for step, complete in ((100, True), (200, True), (300, False)):
    (tmp_path / "checkpoints" / str(step)).mkdir(parents=True)
    if complete:
      (tmp_path / "checkpoints" / str(step) / "commit_success.txt").write_text("")
  assert run_cuts._completed_checkpoint_step(tmp_path) == 200
  assert run_cuts._training_origin({"start_step": 0, "num_steps": 300}) == ""
  assert "resumed at step 200" in run_cuts._training_origin({"start_step": 200,
                                                             "num_steps": 300})
  assert "reused" in run_cuts._training_origin({"start_step": 300, "num_steps": 300})


def test_unet_plot_only_puts_cuts_line_into_the_results_file(tmp_path):
  unet_experiment = _load("experiments/supervised_unet.py")
  path = tmp_path / "supervised_unet.md"
  path.write_text(
      "- CUTS's Dice: none (source: not given).\n\n"
      "| noise | p | GA labels kept | held-out Dice (mean +- std over splits) | per split "
      "| min / max image |\n| --- | --- | --- | --- | --- | --- |\n"
      "| multiply | 1 | 1.0000 | 0.843 +- 0.069 | 0.851, 0.754, 0.923 | 0.515 / 0.960 |\n"
      "| multiply | 0.2 | 0.2018 | 0.207 +- 0.065 | 0.229, 0.119, 0.272 | 0.000 / 0.509 |\n")
  unet_experiment.refresh_cuts_line(path, 0.7, "a test")
  text = path.read_text()
  assert "- CUTS's Dice: 0.7 (source: a test" in text
  assert "| 0.843 +- 0.069 |" in text and "| 0.207 +- 0.065 (below CUTS) |" in text
  unet_experiment.refresh_cuts_line(path, 0.1, "again")
  assert "(below CUTS)" not in path.read_text()


def test_brain_volume_clicks_and_target_line():
  import numpy as np  # pylint: disable=import-outside-toplevel
  brain_volume = _load("experiments/brain_volume.py")
  target = np.zeros((5, 7, 9), bool)
  target[1:4, 1:4, 4:7] = True
  assert brain_volume._interior_voxel(target, (1.0, 1.0, 1.0)) == (2, 2, 5)  # The centre.
  target[1:4, 1:6, 1:4] = True
  # 2 voxels deep: (2, 2..4, 2) and (2, 2, 5); the first in raster order is the click.
  assert brain_volume._interior_voxel(target, (1.0, 1.0, 1.0)) == (2, 2, 2)
  rows = [{"method": brain_volume.TARGET_ROW, "selection": "component", "dice": 0.3},
          {"method": "cuts_slices", "selection": "slice-wise", "dice": 0.2},
          {"method": "slic_3d", "selection": "component", "dice": 0.4}]
  text = "\n".join(brain_volume._target_lines(rows))
  assert "Target missed" in text and "`slic_3d` 0.400" in text
  rows[2]["dice"] = 0.1  # Above every other row, but under the 0.50 the target asks for.
  assert "Target missed" in "\n".join(brain_volume._target_lines(rows))
  rows[0]["dice"] = 0.6
  assert "Target met" in "\n".join(brain_volume._target_lines(rows))


def test_the_kept_sweep_clicks_the_largest_pieces_rim():
  import numpy as np  # pylint: disable=import-outside-toplevel
  tune_volume = _load("experiments/tune_volume.py")
  target = np.zeros((7, 7, 7), bool)
  target[1:6, 1:6, 1:6] = True  # 125 voxels, 98 of them on its rim.
  target[0, 6, 6] = True  # A piece of its own: never clicked.
  clicks = tune_volume.rim_clicks(target, 10)
  assert len(set(clicks)) == 10 and clicks == sorted(clicks)
  assert all(min(c) == 1 or max(c) == 5 for c in clicks)
  assert tune_volume.rim_clicks(target, 10) == clicks  # Seeded.
  assert len(tune_volume.rim_clicks(target, 500)) == 98


def test_each_hemisphere_is_clicked_at_its_own_largest_piece():
  import numpy as np  # pylint: disable=import-outside-toplevel
  brain_volume = _load("experiments/brain_volume.py")
  start, stop = brain_volume.BRAIN_SPLIT["tune"]
  middle = brain_volume.BRAIN_SPLIT["report"][0]
  target = np.zeros((stop + 80, 9, 9), bool)
  target[start + 10:start + 20, 2:7, 2:7] = True  # The tune side's larger piece.
  target[start + 40:start + 42, 0:2, 0:2] = True  # A small one on the same side.
  target[middle - 3:middle + 4, 4, 4] = True  # Across the midline: split between the sides.
  target[middle + 30:middle + 33, 1:3, 1:3] = True
  inside, part, click = brain_volume.hemisphere_protocol(target, "tune")
  assert inside[:middle].all() and not inside[middle:].any()
  np.testing.assert_array_equal(part, target & inside)
  assert target[click] and start + 10 <= click[0] < start + 20  # Not the small piece.
  inside, part, click = brain_volume.hemisphere_protocol(target, "report")
  assert part.sum() == 4 + 12 and middle + 30 <= click[0] < middle + 33
  target[middle:] = False
  with pytest.raises(ValueError, match="report hemisphere holds no target"):
    brain_volume.hemisphere_protocol(target, "report")
