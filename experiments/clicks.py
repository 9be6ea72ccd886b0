"""Clicks to quality: a simulated user clicks until the selected region matches the expert's.

    python experiments/clicks.py --dataset=retina --part=report --seeds=0,1,2 \
        --clustering_seeds=0,1,2 --workdir_root=/work/runs
    python experiments/clicks.py --dataset=brain --part=report --seeds=0

The simulated user of interactive segmentation papers: the first click is the paper's (the
expert region's median pixel, `metrics.centre_pixel`); each next click goes to the point
farthest inside the largest error region (by the Euclidean distance transform, the image
border counting as border), positive where the target is missed, negative where the mask
spills over, until 10 clicks. Each click goes through `cuts_jax.select(stack, clicks,
negative=...)` on a pipeline's scale stack: CUTS (`cuts_jax.segment_hierarchy`), the smoothed
colours through the same clustering (`baselines.colour_stack`) and Felzenszwalb's graph
segmentation at 14 scales (`baselines.felzenszwalb_stack`), each with the same scale rule;
"fixed" is the flat k = 10 map of `segment` (the paper's). How the clicks combine is
`select`'s `negatives` (the default "bounded": each later click edits the mask it finds;
"both": every click's region chosen on its own, the former default). Reported: Dice after
1, 2, 3 and 5 clicks, and NoC@80/85/90 (clicks to reach that Dice; 10 when never reached),
mean over images, then mean +- std over the runs (training seed x clustering seed); the one-click
oracle (the best level per image, chosen with the mask) beside them.

The trained models are `--workdir_root/<dataset>_<part>_none_paper/seed<k>` (the brain is
trained on every slice, so `brain_report_none_paper` serves both brain parts). Training reads
no label; the labels are read here only to score and to place the simulated clicks.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import pathlib
import sys
import time
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "experiments"))

import cuts_jax  # pylint: disable=g-import-not-at-top
from cuts_jax import scales
from cuts_jax.evaluation import baselines
from cuts_jax.evaluation import metrics
import run_cuts  # pylint: disable=g-import-not-at-top,g-bad-import-order

MAX_CLICKS = 10
DICE_AFTER = (1, 2, 3, 5)
NOC_THRESHOLDS = (0.80, 0.85, 0.90)
PIPELINES = ("cuts", "colour", "felzenszwalb")


def next_click(mask: np.ndarray, target: np.ndarray) -> tuple[tuple[int, ...], bool]:
  """(point, positive): the point farthest inside the largest error region, and its sign.

  Missed target pixels and spilled pixels are cut into connected regions; the
  largest one is clicked at its interior point farthest from its border (the
  image's edge counts as border), positive when it is missed target.
  """
  best = None
  for positive, error in ((True, target & ~mask), (False, mask & ~target)):
    components, count = ndimage.label(error)
    if not count:
      continue
    sizes = np.bincount(components.ravel())[1:]
    label = int(np.argmax(sizes)) + 1
    if best is None or sizes[label - 1] > best[0]:
      best = (sizes[label - 1], components == label, positive)
  if best is None:
    raise ValueError("the mask equals the target; there is nothing left to click.")
  _, region, positive = best
  distance = ndimage.distance_transform_edt(np.pad(region, 1))[(slice(1, -1),) * region.ndim]
  point = np.unravel_index(int(np.argmax(distance)), region.shape)
  return tuple(int(i) for i in point), positive


def simulate(select: Callable[[list, list], np.ndarray], target: np.ndarray, first: Sequence[int],
             *, max_clicks: int = MAX_CLICKS) -> list[float]:
  """Dice after each of up to `max_clicks` simulated clicks (stops early at a perfect mask).

  Args:
    select: (positive clicks, negative clicks) -> bool mask, e.g. a partial of
      `cuts_jax.select` on a stack.
    target: bool expert mask.
    first: the first (positive) click.
    max_clicks: clicks at most.

  Returns:
    Dice after click 1, 2, ...; a perfect mask is repeated to `max_clicks`.
  """
  target = np.asarray(target, bool)
  positive, negative, dices = [tuple(first)], [], []
  while True:
    mask = select(positive, negative)
    dices.append(metrics.dice(mask, target))
    if len(dices) == max_clicks or dices[-1] == 1.0:
      break
    point, sign = next_click(mask, target)
    (positive if sign else negative).append(point)
  return dices + [dices[-1]] * (max_clicks - len(dices))


def number_of_clicks(dices: Sequence[float], threshold: float) -> int:
  """Clicks until the Dice reaches `threshold` (len(dices) when it never does)."""
  return next((i + 1 for i, d in enumerate(dices) if d >= threshold), len(dices))


def summary_row(runs: list[dict]) -> dict:
  """Per run (a dict of per-image Dice lists), the means; then mean and std over runs."""
  per_run = []
  for images in runs:
    curves = np.array(list(images.values()))
    row = {f"dice@{n}": curves[:, n - 1].mean() for n in DICE_AFTER}
    for t in NOC_THRESHOLDS:
      row[f"noc@{round(t * 100)}"] = np.mean([number_of_clicks(c, t) for c in curves])
    per_run.append(row)
  return {key: (float(np.mean([r[key] for r in per_run])),
                float(np.std([r[key] for r in per_run])), len(per_run))
          for key in per_run[0]}


@dataclasses.dataclass
class Case:
  """One scored image: its name, the image in [0, 1] and the expert mask."""

  name: str
  image: np.ndarray
  target: np.ndarray


def load_cases(dataset: str, part: str) -> tuple[list[Case], object]:
  """The part's scored images and the config they are loaded with (run_cuts's)."""
  from cuts_jax.io import datasets  # pylint: disable=import-outside-toplevel
  args = argparse.Namespace(dataset=dataset, part=part, preset="paper", data_root=None, set=[])
  config = run_cuts.build_config(args, "none", 0, evaluation=True)
  data = datasets.load_dataset(config.data)
  cases = [Case(name, np.asarray(image), np.asarray(mask, bool))
           for name, image, mask in zip(data.names, data.images, data.masks) if np.any(mask)]
  return cases, config


def tune_models(dataset: str, seeds: Sequence[int], workdir_root: str):
  """(seed, params) of each trained model a tuning script reads (the brain's models are
  trained on every slice, so `brain_report_none_paper` serves its tune part too)."""
  trained_part = run_cuts.trained_part(dataset, "tune")
  for seed in seeds:
    yield seed, cuts_jax.load(pathlib.Path(workdir_root) /
                              f"{dataset}_{trained_part}_none_paper" / f"seed{seed}")


def stacks_for(params, case: Case, config, *, pipelines: Sequence[str] = PIPELINES,
               seed: int = 0) -> dict[str, scales.ScaleStack]:
  """Each pipeline's scale stack of one image (clustering seeded with `seed`)."""
  settings = cuts_jax.SegmentSettings.from_config(config.evaluation)
  settings = dataclasses.replace(settings, seed=seed)
  size = tuple(config.data.image_size)
  stacks = {}
  if "cuts" in pipelines:
    stacks["cuts"] = cuts_jax.segment_hierarchy(params, case.image, settings=settings)
  if "colour" in pipelines:
    stacks["colour"] = dataclasses.replace(
        baselines.colour_stack(case.image, num_clusters=settings.scale_num_clusters,
                               smoothing_sigma=config.evaluation.oracle_smoothing_sigma,
                               min_size=settings.fold_threshold(int(np.prod(size))), size=size,
                               seed=seed, snap=settings.snap_scale),
        rule=settings.scale_rule, max_fraction=settings.scale_max_fraction,
        fixed_clusters=settings.num_clusters)
  if "felzenszwalb" in pipelines:
    stacks["felzenszwalb"] = dataclasses.replace(
        baselines.felzenszwalb_stack(case.image), rule=settings.scale_rule,
        max_fraction=settings.scale_max_fraction)
  return stacks


def one_click_oracle(stack: scales.ScaleStack, target: np.ndarray, click) -> float:
  """The best one-click Dice over the stack's levels (chosen with the mask: not label-free)."""
  return max(metrics.dice(cuts_jax.select(stack, click, level=level), target)
             for level in range(len(stack)))


def rows_to_score(variants: Sequence[str]) -> list[tuple[str, str, dict]]:
  """(row name, pipeline, select options): each pipeline with each rule variant
  ("rule:max_fraction:negatives"); CUTS and colour also at k = 10 with each
  variant's way of combining clicks (`negatives`)."""
  rows, modes = [], []
  for variant in variants:
    rule, fraction, negatives = variant.split(":")
    options = dict(rule=rule, max_fraction=float(fraction), negatives=negatives)
    suffix = f"{rule}{round(float(fraction) * 100)}_{negatives}"
    rows += [(f"{p}_{suffix}", p, options) for p in PIPELINES]
    modes += [negatives] if negatives not in modes else []
  for negatives in modes:
    rows += [(f"{p}_fixed_k10_{negatives}", p, dict(rule="fixed", negatives=negatives))
             for p in ("cuts", "colour")]
  return rows


def _format(mean: float, std: float, key: str) -> str:
  return f"{mean:.3f} +- {std:.3f}" if key.startswith("dice") else f"{mean:.2f} +- {std:.2f}"


def combine(csv_paths: Sequence[str]) -> tuple[list[str], dict[str, list[dict]]]:
  """Rows and per-run curves ({image: dices}) read back from the per-image CSVs of runs."""
  curves: dict[str, dict[tuple, dict]] = {}
  for path in csv_paths:
    with open(path, newline="") as stream:
      for record in csv.DictReader(stream):
        run = (path, record["seed"], record["clustering_seed"])
        dices = [float(record[f"dice_{i + 1}"]) for i in range(MAX_CLICKS)]
        curves.setdefault(record["row"], {}).setdefault(run, {})[record["image"]] = dices
  return list(curves), {row: list(runs.values()) for row, runs in curves.items()}


def combined_table(csv_paths: Sequence[str]) -> str:
  """The Markdown table of several runs' per-image CSVs (mean over images, then over runs)."""
  keys = [f"dice@{n}" for n in DICE_AFTER] + [f"noc@{round(t * 100)}" for t in NOC_THRESHOLDS]
  rows, curves = combine(csv_paths)
  lines = ["| row | runs | " + " | ".join(keys) + " |", "| --- | --- |" + " --- |" * len(keys)]
  for row in rows:
    summary = summary_row(curves[row])
    lines.append(f"| {row} | {len(curves[row])} | "
                 + " | ".join(_format(*summary[k][:2], k) for k in keys) + " |")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", choices=("retina", "brain"))
  parser.add_argument("--combine", default="",
                      help="comma-separated per-image CSVs of earlier runs: print their table "
                           "(mean over images, then mean +- std over the runs) and exit")
  parser.add_argument("--part", choices=("tune", "report"), default="report")
  parser.add_argument("--seeds", default="0", help="training seeds (trained workdirs)")
  parser.add_argument("--clustering_seeds", default="0")
  parser.add_argument("--variants", default=None,
                      help="comma-separated rule:max_fraction:negatives (default: the config's "
                           "rule and max fraction, negatives bounded, select's default)")
  parser.add_argument("--workdir_root", default="/work/runs")
  parser.add_argument("--limit", type=int, default=0, help="only the first N images (smoke runs)")
  parser.add_argument("--stride", type=int, default=1,
                      help="score every stride-th image of the part (to save time)")
  parser.add_argument("--name", default=None)
  parser.add_argument("--results_dir", default=str(REPO_ROOT / "experiments" / "results"))
  args = parser.parse_args()
  if args.combine:
    print(combined_table(args.combine.split(",")))
    return
  if args.dataset is None:
    parser.error("--dataset is required (or --combine)")
  started = time.perf_counter()
  cases, config = load_cases(args.dataset, args.part)
  cases = cases[::args.stride][:args.limit] if args.limit else cases[::args.stride]
  variants = (args.variants.split(",") if args.variants else
              [f"{config.evaluation.scale_rule}:{config.evaluation.scale_max_fraction}:bounded"])
  trained_part = run_cuts.trained_part(args.dataset, args.part)
  rows = rows_to_score(variants)
  curves = {name: [] for name, _, _ in rows}  # row -> runs -> {image: dices}
  oracle = {p: [] for p in PIPELINES}
  per_image = []
  for seed in [int(s) for s in args.seeds.split(",")]:
    workdir = pathlib.Path(args.workdir_root) / f"{args.dataset}_{trained_part}_none_paper" / \
        f"seed{seed}"
    params = cuts_jax.load(workdir)
    for clustering_seed in [int(s) for s in args.clustering_seeds.split(",")]:
      run = {name: {} for name, _, _ in rows}
      run_oracle = {p: [] for p in PIPELINES}
      for case in cases:
        stacks = stacks_for(params, case, config, seed=clustering_seed)
        first = metrics.centre_pixel(case.target, percentile=config.evaluation.click_percentile)
        for name, pipeline, options in rows:
          stack = stacks[pipeline]
          dices = simulate(lambda p, n, s=stack, o=options: cuts_jax.select(s, p, negative=n,
                                                                            **o),
                           case.target, first)
          run[name][case.name] = dices
          per_image.append([seed, clustering_seed, case.name, name] +
                           [f"{d:.4f}" for d in dices])
        for pipeline in PIPELINES:
          run_oracle[pipeline].append(one_click_oracle(stacks[pipeline], case.target, first))
      for name in run:
        curves[name].append(run[name])
      for pipeline in PIPELINES:
        oracle[pipeline].append(float(np.mean(run_oracle[pipeline])))
      print(f"seed {seed}, clustering seed {clustering_seed}: " + ", ".join(
          f"{name} {np.mean([d[0] for d in run[name].values()]):.3f}" for name, _, _ in rows),
            flush=True)
  wall = time.perf_counter() - started
  name = args.name or f"clicks_{args.dataset}_{args.part}"
  keys = [f"dice@{n}" for n in DICE_AFTER] + [f"noc@{round(t * 100)}" for t in NOC_THRESHOLDS]
  lines = [f"# Clicks to quality: {args.dataset}, {args.part} part", "",
           f"Produced on {datetime.date.today().isoformat()} by", "", "```bash",
           "python experiments/clicks.py " + " ".join(sys.argv[1:]), "```", "",
           f"- **Part: {args.part}** of experiments/splits.json"
           + (" (the scale rule and its settings were chosen on this part)" if args.part == "tune"
              else " (nothing was chosen on it: the rule and settings come from the tune part)")
           + f"; {len(cases)} scored images"
           + (f" (one in {args.stride} of the part's images)" if args.stride > 1 else "")
           + f"; models from {args.workdir_root}/"
           f"{args.dataset}_{trained_part}_none_paper (training seeds {args.seeds}, trained "
           "without labels), clustering seeds " + args.clustering_seeds + ".",
           f"- Rows `<pipeline>_<rule><max fraction %>_<negatives>` (`negatives`: how clicks "
           "combine, `select`'s option): the scale rule over k = 2..15 "
           f"for CUTS and the colours (fold threshold {config.evaluation.min_segment_pixels} px "
           f"at {tuple(config.data.image_size)}; levels snapped to the image's superpixels: "
           f"`snap_scale` {config.evaluation.get('snap_scale', 0) or 'off'}), 14 Felzenszwalb "
           "scales; `*_fixed_k10_*` is the stack's k = 10 level (the paper's flat map, snapped "
           "as the stack is). Simulated "
           f"user: first click the median pixel, then the farthest point inside the largest "
           f"error region, at most {MAX_CLICKS} clicks; NoC = {MAX_CLICKS} when never reached.",
           "- Mean over images per run, then mean +- std over the "
           f"{len(curves[rows[0][0]])} runs (training seed x clustering seed). "
           f"Wall time {wall / 60:.1f} min.", "",
           "| row | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
  for row_name, _, _ in rows:
    summary = summary_row(curves[row_name])
    lines.append(f"| {row_name} | " + " | ".join(_format(*summary[k][:2], k) for k in keys)
                 + " |")
  lines += ["", "One click, the best level per image chosen with the mask (an oracle, not "
            "label-free):", "", "| pipeline | dice@1 |", "| --- | --- |"]
  for pipeline in PIPELINES:
    lines.append(f"| {pipeline}_oracle | {np.mean(oracle[pipeline]):.3f} +- "
                 f"{np.std(oracle[pipeline]):.3f} |")
  results_dir = pathlib.Path(args.results_dir)
  results_dir.mkdir(parents=True, exist_ok=True)
  (results_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
  with (results_dir / f"{name}.csv").open("w", newline="") as stream:
    writer = csv.writer(stream)
    writer.writerow(["seed", "clustering_seed", "image", "row"] +
                    [f"dice_{i + 1}" for i in range(MAX_CLICKS)])
    writer.writerows(per_image)
  print("\n".join(lines))
  print(json.dumps({"wall_s": wall, "name": name}))


if __name__ == "__main__":
  main()
