"""Choosing the 3-D settings on the brain's tune hemisphere: the scale rule's cap and the fold.

    python experiments/tune_volume.py --workdirs=/work/runs/brain_report_none_paper/seed0,\
/work/runs/brain_report_none_paper/seed1,/work/runs/brain_report_none_paper/seed2 \
        --cache=/tmp/cuts_features      # about 15 min on 2 shared cores (features: 1 min a model)

The 2-D settings the 3-D path inherits were never chosen for a volume: the scale
rule's largest share (`scale_max_fraction`, 25% of a slice) and the fold
threshold (30 px at the segmenting size). Here each is tried on the tune
hemisphere of experiments/splits.json (axis-0 slices [0, 80)) with the
protocol of `brain_volume.py --part=tune`: one click at `metrics.centre_pixel`
of the hemisphere's lateral ventricle (the largest 6-connected piece of its
ventricle mask), the mask kept inside the hemisphere and scored against the
hemisphere's ventricle mask. For each model (a training seed; clustering seed
= its index), the volume's features are computed once (`--cache` keeps them
on disk), their spectral coordinates once, and for every fold threshold
(`volume_min_segment_voxels`, grid voxels) one 3-D stack (k = 2..15) and one
k = 10 segmentation (the clicked piece kept); every cap
(`volume_max_fraction`, a share of the volume) is a selection on the stack.
Rows go to experiments/results/tuning_volume.md; the chosen pair is set in
`SegmentSettings` (its defaults for a volume), not here.

`--sweep=kept` tries the smallest clicked piece kept out of the fold
(`volume_min_kept_voxels`) at the committed fold and cap, on the protocol's
click and on `RIM_CLICKS` voxels of the lateral ventricle's rim (where the
report hemisphere's click fell on a 3-voxel piece for one model), and
writes its own section of the same file.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import os
import pathlib
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "experiments"))

import numpy as np  # pylint: disable=g-import-not-at-top
from scipy import ndimage  # pylint: disable=g-import-not-at-top

import brain_volume  # pylint: disable=g-import-not-at-top
import tune_scale  # pylint: disable=g-import-not-at-top
from configs import brain_ventricles  # pylint: disable=g-import-not-at-top
from cuts_jax import regions
from cuts_jax import segmentation
from cuts_jax import volume as volume_lib
from cuts_jax import volume_features
from cuts_jax.evaluation import metrics
from cuts_jax.runs import console

# 30: the 2-D fold threshold (about the encoder's receptive field across); 160 ~ 30^1.5, the
# same reach in 3-D; 1000: a piece about 10 voxels a side.
FOLD_VOXELS = (30, 160, 1000)
# 0.25: the 2-D cap; the smaller ones leave room for one structure of a volume, not a half.
MAX_FRACTIONS = (0.25, 0.05, 0.02, 0.01)
RULES = ("stability", "consensus")
# 1: every clicked piece kept (the former rule); 27: a 3 x 3 x 3 block, about the smallest
# patch a 2-D encoder's features tell apart across 3 slices; 125: 5 voxels a side; 1000: the
# fold threshold itself, so no clicked piece is kept.
KEPT_VOXELS = (1, 27, 125, 1000)
RIM_CLICKS = 16  # Rim voxels of the tune lateral ventricle clicked for the kept sweep.
KEPT_HEADING = "## The smallest clicked piece kept"


def _dice(mask: np.ndarray, inside: np.ndarray, part_target: np.ndarray) -> tuple[float, int]:
  kept = mask & inside
  return metrics.dice(kept, part_target), int(kept.sum())


def _choice(rows: list[dict], rule: str) -> list[str]:
  """The rule for choosing, and its answer: the highest mean tune Dice of `cuts_3d_scales`
  (the committed rule); ties (within 0.001) go to the fold whose `cuts_3d_segments` scores
  best, then to the largest cap (the least restrictive)."""
  def mean(row, **where):
    return float(np.mean([r["dice"] for r in rows if r["row"] == row and all(
        r[k] == v for k, v in where.items())]))

  scored = {(r["fold"], r["max_fraction"]): mean("cuts_3d_scales", rule=rule, fold=r["fold"],
                                                 max_fraction=r["max_fraction"])
            for r in rows if r["row"] == "cuts_3d_scales" and r["rule"] == rule}
  top = max(scored.values())
  tied = [key for key, value in scored.items() if value >= top - 1e-3]
  fold, cap = max(tied, key=lambda key: (mean("cuts_3d_segments", fold=key[0]), key[1]))
  return ["## Choice", "",
          "The rule (written down after a first run of this script on the same tune part had "
          "been read; no report number had been seen): the highest mean tune Dice of "
          "`cuts_3d_scales` "
          f"with the committed rule (`{rule}`); ties (within 0.001) go to the fold threshold "
          "whose `cuts_3d_segments` row scores best, then to the largest cap.", "",
          f"Chosen: `volume_min_segment_voxels` = {fold}, `volume_max_fraction` = {cap} "
          f"(tune Dice {scored[(fold, cap)]:.3f}; {len(tied)} pair(s) within 0.001 of the "
          f"best; `cuts_3d_segments` at this fold {mean('cuts_3d_segments', fold=fold):.3f}). "
          "They are the defaults of `SegmentSettings` and `config.evaluation` "
          "(cuts_jax/defaults.py); the report hemisphere is run once with them "
          "(brain_volume_3d_report.md)."]


def rim_clicks(part_target: np.ndarray, count: int) -> list[tuple[int, int, int]]:
  """`count` voxels of the part's lateral ventricle (largest 6-connected piece) with a face
  outside it, drawn with seed 0 and sorted: the kind of voxel the protocol's click is."""
  pieces, _ = ndimage.label(part_target)
  largest = pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
  rim = np.argwhere(largest & ~ndimage.binary_erosion(largest))
  chosen = np.random.default_rng(0).choice(len(rim), size=min(count, len(rim)), replace=False)
  return sorted(tuple(int(v) for v in rim[i]) for i in chosen)


def protocol_and_rim_clicks(part_target: np.ndarray, click) -> list[tuple[int, ...]]:
  """The protocol's click, then `RIM_CLICKS` rim voxels of the part's lateral ventricle."""
  return [tuple(click)] + [c for c in rim_clicks(part_target, RIM_CLICKS) if c != tuple(click)]


def _kept_choice(rows: list[dict], fold: int) -> list[str]:
  """The rule, written before the sweep was run: among the floors above 1 (1 is the former
  rule, shown for comparison), the highest mean tune Dice of `cuts_3d_scales` over all the
  clicks (per model, then over the models); ties (within 0.001) go to the smallest floor."""
  def mean(floor):
    return float(np.mean([np.mean([r["dice"] for r in rows if r["row"] == "cuts_3d_scales"
                                   and r["kept"] == floor and r["seed"] == seed])
                          for seed in sorted({r["seed"] for r in rows})]))

  scored = {floor: mean(floor) for floor in sorted({r["kept"] for r in rows}) if floor > 1}
  top = max(scored.values())
  chosen = min(floor for floor, value in scored.items() if value >= top - 1e-3)
  return ["The rule (written before this sweep was run): among the floors above 1 (1, the "
          "former rule, is shown for comparison), the highest mean tune Dice of "
          "`cuts_3d_scales` over all the clicks (per model, then over the models); ties "
          "(within 0.001) go to the smallest floor, the least change.", "",
          f"Chosen: `volume_min_kept_voxels` = {chosen} (tune Dice {scored[chosen]:.3f}; "
          + ", ".join(f"{floor}: {value:.3f}" for floor, value in scored.items())
          + f"; 1: {mean(1):.3f})"
          + (", the fold threshold itself: a click never takes a piece below the fold"
             if chosen >= fold else "")
          + ". It is the default of `SegmentSettings` and `config.evaluation` "
          "(cuts_jax/defaults.py); the report hemisphere is run once with it "
          "(brain_volume_3d_report.md)."]


def sweep_kept(args, workdirs, volume, inside, part_target, click) -> list[str]:
  """The `--sweep=kept` section's lines (see the module doc)."""
  started, cpu_started = time.perf_counter(), time.process_time()
  floors = [int(v) for v in args.kept_voxels.split(",")]
  clicks = protocol_and_rim_clicks(part_target, click)
  cache = volume_features.FeatureCache(directory=args.cache or None)
  rows = []
  for index, (workdir, _, params, training_config) in enumerate(
      brain_volume.trained_models(workdirs, brain_ventricles.get_config())):
    settings = segmentation.resolve_settings(params, seed=index)
    kept = volume_features.volume_features(params, volume, axis=int(training_config.data.axis),
                                           cache=cache, settings=settings)
    stack = volume_lib.stack_from_volume_features(kept, settings=settings, cache=cache)
    clusters = volume_lib.volume_clusters(kept, settings, cache=cache)
    fold = stack.folded_below
    for floor in floors:
      tried = dataclasses.replace(stack, min_kept=floor)
      for number, voxel in enumerate(clicks):
        mask = volume_lib.select_voxels(kept, tried, [voxel])
        dice, voxels = _dice(mask, inside, part_target)
        rows.append(dict(row="cuts_3d_scales", seed=index, kept=floor, click=number, dice=dice,
                         voxels=voxels))
        grid = kept.to_grid(voxel)
        segments = regions.pieces_and_segments(clusters, min_size=fold, spacing=kept.grid_spacing,
                                               keep=[grid], min_kept=floor)[1]
        mask = kept.to_volume(segments == segments[grid])
        dice, voxels = _dice(mask, inside, part_target)
        rows.append(dict(row="cuts_3d_segments", seed=index, kept=floor, click=number,
                         dice=dice, voxels=voxels))
      print(json.dumps([r for r in rows if r["kept"] == floor and r["seed"] == index
                        and r["click"] == 0]), flush=True)

  def per_model(group, column, where):
    return [float(np.mean([r[column] for r in group if r["seed"] == seed and where(r)]))
            for seed in sorted({r["seed"] for r in group})]

  def cell(values, digits):
    return f"{np.mean(values):.{digits}f} +- {np.std(values):.{digits}f}"

  command = "python experiments/tune_volume.py " + " ".join(sys.argv[1:])
  lines = [KEPT_HEADING, "",
           f"Produced on {datetime.date.today().isoformat()} by", "", "```bash", command, "```",
           "",
           "- Why: on the report hemisphere, the protocol's click (a rim voxel of intensity 0.28 "
           "where its ventricles' median is 0.075) fell on a 3-voxel piece for model seed1, kept "
           "out of the fold at k = 7, 8, 9 and 13, and the scale rule chose it (Dice 0). The "
           "defect was first seen on the report part (brain_volume_3d_report.md of 2026-12-06); "
           "the floor is chosen here, on the tune hemisphere only.",
           f"- **Part: tune**. Clicks: the protocol's click {tuple(click)} and {len(clicks) - 1} "
           "voxels of the tune lateral ventricle's rim (in it, a face outside it; drawn with "
           "seed 0), each scored as the protocol's click is (inside the hemisphere, against its "
           f"ventricle mask of {int(part_target.sum())} voxels).",
           f"- Committed fold {fold} grid voxels, cap {settings.volume_max_fraction}, rule "
           f"`{settings.scale_rule}`, k = {settings.num_clusters} for `cuts_3d_segments` (its "
           "clicked piece kept from this floor up); 3 models, clustering seed = the model's "
           "index; mean +- std over the models of each model's mean over the clicks. `specks`: "
           "clicks (of all models) whose mask has fewer than 27 voxels.",
           f"- Wall time {(time.perf_counter() - started) / 60:.1f} min, {os.cpu_count()} shared "
           f"cores, {(time.process_time() - cpu_started) / 60:.1f} CPU min in this process.", "",
           "| row | floor (voxels) | Dice, protocol click | Dice, rim clicks | Dice, all clicks | "
           "voxels, all clicks | specks |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  for row in ("cuts_3d_scales", "cuts_3d_segments"):
    for floor in floors:
      group = [r for r in rows if r["row"] == row and r["kept"] == floor]
      lines.append(
          f"| {row} | {floor} | {cell(per_model(group, 'dice', lambda r: r['click'] == 0), 3)} | "
          f"{cell(per_model(group, 'dice', lambda r: r['click'] > 0), 3)} | "
          f"{cell(per_model(group, 'dice', lambda r: True), 3)} | "
          f"{cell(per_model(group, 'voxels', lambda r: True), 0)} | "
          f"{sum(r['voxels'] < 27 for r in group)} / {len(group)} |")
  lines += [""] + _kept_choice(rows, fold) + [""]
  with pathlib.Path(args.output).with_name("tuning_volume_kept.csv").open(
      "w", newline="") as stream:
    writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  return lines


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdirs", required=True, help="comma-separated trained brain runs")
  parser.add_argument("--data_root", default=str(brain_volume.DEFAULT_DATA))
  parser.add_argument("--cache", default="", help="keep the volume's features on disk here")
  parser.add_argument("--fold_voxels", default=",".join(map(str, FOLD_VOXELS)))
  parser.add_argument("--max_fractions", default=",".join(map(str, MAX_FRACTIONS)))
  parser.add_argument("--sweep", default="fold_cap", choices=("fold_cap", "kept"),
                      help="fold_cap: fold threshold x cap (the file's first part); kept: the "
                      "smallest clicked piece kept (its own section)")
  parser.add_argument("--kept_voxels", default=",".join(map(str, KEPT_VOXELS)))
  parser.add_argument("--output", default=str(REPO_ROOT / "experiments" / "results" /
                                              "tuning_volume.md"))
  args = parser.parse_args()
  console.setup_logging()
  started, cpu_started = time.perf_counter(), time.process_time()
  workdirs = [pathlib.Path(w) for w in args.workdirs.split(",")]
  folds = [int(v) for v in args.fold_voxels.split(",")]
  fractions = [float(v) for v in args.max_fractions.split(",")]
  volume, target = brain_volume.load_scan(args.data_root)
  inside, part_target, click = brain_volume.hemisphere_protocol(target, "tune")
  if args.sweep == "kept":
    lines = sweep_kept(args, workdirs, volume, inside, part_target, click)
    tune_scale.write_section(pathlib.Path(args.output), KEPT_HEADING, lines)
    print("\n".join(lines))
    return
  cache = volume_features.FeatureCache(directory=args.cache or None)
  rows = []
  for index, (workdir, _, params, training_config) in enumerate(
      brain_volume.trained_models(workdirs, brain_ventricles.get_config())):
    axis = int(training_config.data.axis)
    settings = segmentation.resolve_settings(params, seed=index)
    kept = volume_features.volume_features(params, volume, axis=axis, cache=cache,
                                           settings=settings)
    for fold in folds:
      tried = dataclasses.replace(settings, volume_min_segment_voxels=fold)
      tick = time.perf_counter()
      stack = volume_lib.stack_from_volume_features(kept, settings=tried, cache=cache)
      build_s = time.perf_counter() - tick
      for rule in RULES:
        for fraction in fractions:
          tick = time.perf_counter()
          mask = volume_lib.select_voxels(kept, stack, [click], rule=rule, max_fraction=fraction)
          dice, voxels = _dice(mask, inside, part_target)
          rows.append(dict(row="cuts_3d_scales", workdir=str(workdir), seed=index, fold=fold,
                           rule=rule, max_fraction=fraction, dice=dice, voxels=voxels,
                           build_s=build_s, click_s=time.perf_counter() - tick))
          print(json.dumps(rows[-1]), flush=True)
      labels = volume_lib.segments_from_volume_features(kept, keep=[click], cache=cache,
                                                        settings=tried)
      dice, voxels = _dice(segmentation.select(labels, click), inside, part_target)
      rows.append(dict(row="cuts_3d_segments", workdir=str(workdir), seed=index, fold=fold,
                       rule="-", max_fraction="-", dice=dice, voxels=voxels))
      print(json.dumps(rows[-1]), flush=True)

  def cell(group, column, digits):
    values = [r[column] for r in group]
    mean = float(np.mean(values))
    return f"{mean:.{digits}f}" + (f" +- {float(np.std(values)):.{digits}f}"
                                   if len(values) > 1 else "")

  keys = []
  for r in rows:
    key = (r["row"], r["fold"], r["rule"], r["max_fraction"])
    if key not in keys:
      keys.append(key)
  command = "python experiments/tune_volume.py " + " ".join(sys.argv[1:])
  lines = [
      "# Choosing the 3-D settings on the brain's tune hemisphere", "",
      f"Produced on {datetime.date.today().isoformat()} by", "", "```bash", command, "```", "",
      "- **Part: tune** (experiments/splits.json: the brain's axis-0 slices [0, 80)). "
      f"Click {click}: `metrics.centre_pixel` of the hemisphere's lateral ventricle (its "
      f"ventricle mask's largest 6-connected piece); the mask is kept inside the hemisphere "
      f"and scored against the hemisphere's ventricle mask ({int(part_target.sum())} voxels). "
      "No report-hemisphere voxel is read.",
      f"- Models: {', '.join(str(w) for w in workdirs)} (trained on every slice, no label "
      "read), segmenting with the committed config's evaluation settings (the runs' "
      "config.json were written before the scale rule was chosen and still name "
      "`consensus`); clustering seed = the model's index; mean +- std over the models. "
      f"The committed rule is `{settings.scale_rule}` (chosen on the 2-D tune parts, "
      "tuning_scale.md); `consensus` is shown beside it.",
      "- `fold`: `volume_min_segment_voxels` (grid voxels; the grid is 160 x 128 x 128); "
      "`cap`: `volume_max_fraction` (share of the volume a level's clicked segment may cover).",
      f"- Wall time {(time.perf_counter() - started) / 60:.1f} min, {os.cpu_count()} shared "
      f"cores, {(time.process_time() - cpu_started) / 60:.1f} CPU min in this process.", "",
      "| row | fold (voxels) | rule | cap | Dice (tune) | voxels |",
      "| --- | --- | --- | --- | --- | --- |"]
  for key in keys:
    group = [r for r in rows if (r["row"], r["fold"], r["rule"], r["max_fraction"]) == key]
    lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {cell(group, 'dice', 3)} | "
                 f"{cell(group, 'voxels', 0)} |")
  lines += [""] + _choice(rows, settings.scale_rule) + [""]
  output = pathlib.Path(args.output)
  output.write_text("\n".join(lines))
  with output.with_suffix(".csv").open("w", newline="") as stream:
    writer = csv.DictWriter(stream, fieldnames=list(rows[0]), restval="")
    writer.writeheader()
    writer.writerows(rows)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
