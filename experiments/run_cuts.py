"""Reproduce the paper's tables: train CUTS with several seeds, score it and the baselines.

    python experiments/run_cuts.py --dataset=retina            # Tables II, III
    python experiments/run_cuts.py --dataset=berkeley          # Table I (+ PRI/VoI/covering)
    python experiments/run_cuts.py --dataset=brain             # Tables V, VI
    python experiments/run_cuts.py --dataset=retina --name=retina_ablation \
        --ablations=no_contrastive,no_reconstruction --seeds=0,1   # Table IV
    python experiments/run_cuts.py --dataset=retina --part=tune     # settings are chosen here
    python experiments/run_cuts.py --dataset=retina --cluster_seeds=0,1,2 \
        --methods=cuts,cuts_untrained,patch_segments,colour_segments   # controls, paired

`--part` follows experiments/splits.json: `report` (the default) trains and scores on the
report part, `tune` on the tuning part, on which every setting is chosen. As in a user's
run (and in the checks on data the project never sees), CUTS is trained without labels on
the images it then segments: retina on the part's 14 images, BSDS500 on its split (`train`
to tune, `val` to report), the brain volume on every slice; the brain is scored on the
slices of the part's hemisphere that cross the ventricles.

For each seed the dataset's config is trained with `cuts_jax.train` in
`--workdir_root/<dataset>_<part>_<ablation>_<preset>[_<hash of --set>]/seed<k>` (a finished
run is reused, an interrupted one resumed; the brain's training reads every slice whatever
the part, so both its parts use the models under `brain_report_...`), then
`cuts_jax.evaluation.evaluate` segments every image with CUTS and every baseline. The table
gives, per method and metric, the mean and standard deviation over seeds of the per-seed mean
over images (the paper's "mean and standard deviation across three independent trials").
Results go to experiments/results/<name>.md and .csv, with the figures of the first seed.
Any config field can be changed with --set=field=value (repeatable).

With `--cluster_seeds`, every trained model is scored once per clustering seed (the
evaluation's seed: clustering and the metrics' patch sample), and the table's mean +- std
is over all training x clustering seed runs. The results file then also holds the paired
table (`cuts_jax.evaluation.paired`): per image, `cuts` minus each other row, averaged over
the runs, with a bootstrap 95% interval over images; and `<name>_per_image.csv`.
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime
import hashlib
import json
import os
import pathlib
import platform
import shutil
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from configs import berkeley  # pylint: disable=g-import-not-at-top
from configs import brain_ventricles
from configs import retina
from cuts_jax import train
from cuts_jax.evaluation import evaluate
from cuts_jax.evaluation import paired
from cuts_jax.evaluation import report
from cuts_jax.runs import console

SHARED = REPO_ROOT.parent / "shared" / "data"
SPLITS = json.loads((REPO_ROOT / "experiments" / "splits.json").read_text())
PARTS = ("tune", "report")
DATASETS = {
    "retina": (retina.get_config, SHARED / "retina_ga"),
    "berkeley": (berkeley.get_config, SHARED / "bsds500"),
    "brain": (brain_ventricles.get_config, SHARED / "brain_mri" / "test_scan.npz"),
}
ABLATIONS = {
    "none": {},
    "no_contrastive": {"loss.lambda_contrastive": 0.0},
    "no_reconstruction": {"loss.lambda_reconstruction": 0.0},
}
COLUMNS = ("dice", "dice_majority", "hd95", "ssim_within", "ergas_within", "rmse_within",
           "pri", "voi", "covering", "num_segments")
HIGHER_IS_BETTER = {"dice": True, "dice_majority": True, "hd95": False, "ssim_within": True,
                    "ergas_within": False, "rmse_within": False, "pri": True, "voi": False,
                    "covering": True}


def _set(config, dotted: str, value) -> None:
  *parents, leaf = dotted.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value


def _parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _settings_suffix(assignments: list[str]) -> str:
  # Runs trained with other --set values must not be reused for these.
  if not assignments:
    return ""
  return "_" + hashlib.sha1("\n".join(sorted(assignments)).encode()).hexdigest()[:8]


def _completed_checkpoint_step(workdir: pathlib.Path) -> int:
  """The newest complete checkpoint's step in workdir (0 when it has none)."""
  steps = [int(path.name) for path in (workdir / "checkpoints").glob("*")
           if path.name.isdigit() and (path / "commit_success.txt").exists()]
  return max(steps, default=0)


def _training_origin(timing: dict) -> str:
  # Results files must not pass off a resumed or reused run's time as a full training.
  if timing["start_step"] >= timing["num_steps"]:
    return " (a finished run reused)"
  if timing["start_step"]:
    return f" (resumed at step {timing['start_step']})"
  return ""


def trained_part(dataset: str, part: str) -> str:
  """The part named in a run's workdir: the brain's models, trained on every slice, are the
  same for both parts, so its tune part reads the report part's (no second training)."""
  return "report" if dataset == "brain" else part


def part_assignments(dataset: str, part: str, *, evaluation: bool) -> dict:
  """Config fields that restrict a run to one part of experiments/splits.json."""
  if dataset == "retina":
    return {"data.include": tuple(SPLITS["retina"][part])}
  if dataset == "berkeley":
    return {"data.splits": tuple(SPLITS["bsds500"][part])}
  # Trained on every slice; scored on the part's hemisphere where it crosses the ventricles.
  if not evaluation:
    return {}
  return {"data.min_target_pixels": 1, "data.slice_range": tuple(SPLITS["brain"][part])}


def build_config(args, ablation: str, seed: int, extra_assignments: tuple[str, ...] = (), *,
                 evaluation: bool = False, cluster_seed: int | None = None):
  get_config, default_root = DATASETS[args.dataset]
  config = get_config(args.preset)
  config.data.root = str(args.data_root or default_root)
  config.seed = seed
  config.evaluation.seed = seed if cluster_seed is None else cluster_seed
  config.training.num_figure_images = 0
  for field, value in part_assignments(args.dataset, args.part, evaluation=evaluation).items():
    _set(config, field, value)
  if evaluation and args.dataset != "berkeley":
    # With expert masks: also what a label-free choice of granularity leaves on the table.
    config.evaluation.cuts_rows = (*config.evaluation.cuts_rows, *evaluate.CLICK_ROWS[1:])
  for field, value in ABLATIONS[ablation].items():
    _set(config, field, value)
  for assignment in (*args.set, *extra_assignments):
    field, value = assignment.split("=", 1)
    _set(config, field, _parse_value(value))
  return config


def summarise(per_seed: list[dict]) -> dict:
  """method -> metric -> (mean over seeds, std over seeds, number of seeds)."""
  summary = {}
  for table in per_seed:
    for method, metrics in table.items():
      for metric, (mean, _, count) in metrics.items():
        if count:
          summary.setdefault(method, {}).setdefault(metric, []).append(mean)
  return {method: {metric: (float(np.mean(v)), float(np.std(v)), len(v))
                   for metric, v in metrics.items()} for method, metrics in summary.items()}


def markdown_table(summary: dict) -> str:
  methods = list(summary)
  columns = [c for c in COLUMNS if any(c in summary[m] for m in methods)]
  best = {}
  for column in columns:
    if column in HIGHER_IS_BETTER:
      scored = {m: summary[m][column][0] for m in methods if column in summary[m]}
      best[column] = (max if HIGHER_IS_BETTER[column] else min)(scored, key=scored.get)
  lines = ["| method | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
  for method in methods:
    cells = []
    for column in columns:
      if column not in summary[method]:
        cells.append("-")
        continue
      mean, std, _ = summary[method][column]
      digits = 1 if column in ("ergas_within", "hd95") else 3
      text = f"{mean:.{digits}f} +- {std:.{digits}f}"
      cells.append(f"**{text}**" if best.get(column) == method else text)
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def ablation_table(summaries: dict) -> str:
  """One row per ablation: CUTS's metrics (both clustering spaces)."""
  rows = {}
  for ablation, summary in summaries.items():
    for method in ("cuts", "cuts_raw_embedding"):
      if method in summary:
        rows[f"{method} ({ablation})"] = summary[method]
  return markdown_table(rows)


def paired_section(records: list[dict], ablations: list[str]) -> list[str]:
  """Markdown lines: per ablation, `cuts` minus every other row, paired per image."""
  lines = []
  for ablation in ablations:
    rows = [r for r in records if r["ablation"] == ablation]
    metric = next((m for m in ("dice", "pri") if any(m in r for r in rows)), None)
    if metric is None or not any(r["method"] == "cuts" for r in rows):
      continue
    table = paired.paired_differences(rows, metric=metric)
    lines += [f"## Paired differences{'' if len(ablations) == 1 else f' ({ablation})'}: "
              f"cuts minus each row, {metric}", "",
              "Per image, `cuts`'s score minus the row's, averaged over every run (training x "
              "clustering seeds) that scored both; the interval is a bootstrap over images "
              "(10,000 resamples, 2.5th-97.5th percentiles). Positive: `cuts` is better.", "",
              paired.markdown(table, metric=metric), ""]
  return lines


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
  parser.add_argument("--name", default=None,
                      help="results name (default: the dataset, with _tune for --part=tune)")
  parser.add_argument("--part", choices=PARTS, default="report",
                      help="the part of experiments/splits.json to train and score on")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--cluster_seeds", default="",
                      help="comma-separated clustering seeds per trained model (default: the "
                           "training seed); the paired table is over all their runs")
  parser.add_argument("--methods", default="",
                      help="comma-separated rows to score (default: every configured one)")
  parser.add_argument("--ablations", default="none", help=f"comma-separated of {list(ABLATIONS)}")
  parser.add_argument("--preset", default="paper", help="model preset (paper, authors_code)")
  parser.add_argument("--data_root", default=None)
  parser.add_argument("--set", action="append", default=[], help="config field=value")
  parser.add_argument("--eval_set", action="append", default=[],
                      help="config field=value for the evaluation only (e.g. a data subset)")
  parser.add_argument("--workdir_root", default="/tmp/cuts_experiments")
  parser.add_argument("--results_dir", default=str(REPO_ROOT / "experiments" / "results"))
  args = parser.parse_args()
  console.setup_logging()
  name = args.name or (args.dataset + ("_tune" if args.part == "tune" else ""))
  seeds = [int(s) for s in args.seeds.split(",")]
  cluster_seeds = [int(s) for s in args.cluster_seeds.split(",")] if args.cluster_seeds else [None]
  methods = args.methods.split(",") if args.methods else None
  records = []
  ablations = args.ablations.split(",")
  results_dir = pathlib.Path(args.results_dir)
  results_dir.mkdir(parents=True, exist_ok=True)
  started = time.perf_counter()
  summaries, timings = {}, []
  for ablation in ablations:
    per_seed = []
    for seed in seeds:
      config = build_config(args, ablation, seed)
      workdir = pathlib.Path(args.workdir_root) / (
          f"{args.dataset}_{trained_part(args.dataset, args.part)}_{ablation}_{args.preset}"
          f"{_settings_suffix(args.set)}"
      ) / f"seed{seed}"
      start_step = _completed_checkpoint_step(workdir)
      tick = time.perf_counter()
      if start_step < config.training.num_steps:
        # A finished run is only read (its config.json and checkpoints are left as they are).
        train.train_and_evaluate(config, workdir, report=report.segment_report(config, workdir))
      trained = time.perf_counter()
      for cluster_seed in cluster_seeds:
        eval_config = build_config(args, ablation, seed, tuple(args.eval_set), evaluation=True,
                                   cluster_seed=cluster_seed)
        outcome = evaluate.evaluate(eval_config, workdir, methods=methods,
                                    figures=seed == seeds[0] and cluster_seed == cluster_seeds[0])
        per_seed.append(outcome["table"])
        run = f"seed{seed}" + ("" if cluster_seed is None else f"_cluster{cluster_seed}")
        records += [dict(ablation=ablation, run=run, image=r.image_name, method=r.method,
                         **r.scores) for r in outcome["results"]]
      timings.append(dict(ablation=ablation, seed=seed, start_step=start_step,
                          num_steps=config.training.num_steps, train_s=trained - tick,
                          evaluate_s=time.perf_counter() - trained))
      if seed == seeds[0]:
        # The baselines do not change with an ablation: their figure is kept once.
        for figure in (("cuts.png",) if ablation != "none"
                       else ("cuts.png", "methods.png", "scales.png")):
          source = outcome["directory"] / figure
          if source.exists():
            suffix = "" if ablation == "none" else f"_{ablation}"
            shutil.copy(source, results_dir / f"{name}{suffix}_{figure}")
    summaries[ablation] = summarise(per_seed)
  wall = time.perf_counter() - started

  config = build_config(args, ablations[0], seeds[0])
  command = "python experiments/run_cuts.py " + " ".join(sys.argv[1:])
  lines = [f"# CUTS on {args.dataset}: {name}", "",
           f"Produced on {datetime.date.today().isoformat()} by", "", "```bash", command, "```",
           "",
           f"- **Part: {args.part}** of experiments/splits.json"
           + (" (settings were chosen on this part; these numbers are not a held-out result)"
              if args.part == "tune" else
              " (no setting was chosen on it: the settings come from the tuning part)")
           + f"; {len(SPLITS['retina'][args.part]) if args.dataset == 'retina' else ''}"
           + {"retina": " images, trained and scored on them without labels.",
              "berkeley": f" BSDS500 split {SPLITS['bsds500'][args.part]}, trained and scored "
                          "on it without labels.",
              "brain": " trained on every slice, scored on the slices that cross the "
                       "ventricles."}[args.dataset],
           (f"- Seeds: {seeds} (training, pair sampling, clustering and the metrics' patch "
            "sample); mean +- std over seeds of each seed's mean over images." if
            cluster_seeds == [None] else
            f"- Seeds: training {seeds} x clustering {cluster_seeds} (the clustering seed "
            "also draws the metrics' patch sample); mean +- std over these "
            f"{len(seeds) * len(cluster_seeds)} runs of each run's mean over images."),
           f"- Hardware: {console.processor_name()}, {os.cpu_count()} cores, "
           f"{jax.devices()[0].platform}; "
           f"jax {jax.__version__}; Python {platform.python_version()}.",
           f"- Wall time: {wall / 60:.1f} min for this command; per run: " + "; ".join(
               f"{t['ablation']} seed {t['seed']}: train {t['train_s'] / 60:.1f} min"
               f"{_training_origin(t)}, evaluate {t['evaluate_s'] / 60:.1f} min"
               for t in timings) + ".",
           f"- Data: {config.data.kind} at {config.data.root}, {tuple(config.data.image_size)}"
           + (f"; evaluation with {', '.join(args.eval_set)}" if args.eval_set else "") + ".",
           f"- Model: {config.model.preset} preset, kernels {tuple(config.model.kernel_sizes)}, "
           f"features {tuple(config.model.features)}, embedding {config.model.embedding_dim}, "
           f"padding {config.model.padding}.",
           f"- Training: {config.training.num_steps} steps, batch {config.training.batch_size}, "
           f"crop {config.training.crop_size or 'none'}, AdamW lr {config.optim.learning_rate}; "
           f"sampling: patch {config.sampling.patch_size}, {config.sampling.num_anchors} "
           f"anchors, SSIM threshold {config.sampling.ssim_threshold}; loss: lambda_c "
           f"{config.loss.lambda_contrastive}, lambda_r {config.loss.lambda_reconstruction}.",
           f"- Evaluation: k = {config.evaluation.num_clusters} ({config.evaluation.clustering});"
           f" `cuts` (the default `segment`) clusters the {config.evaluation.cluster_space}-space "
           f"embeddings beside the smoothed image (weight {config.evaluation.image_weight}, "
           f"sigma {config.evaluation.image_sigma} px) and cuts clusters into connected segments "
           + (f"(pieces under {config.evaluation.min_segment_pixels} px at the segmenting size "
              if config.evaluation.min_segment_pixels else
              f"(pieces under {config.evaluation.min_segment_fraction:.1%} of the image ")
           + f"join a neighbour); `cuts_reconstruction_clusters`, `cuts_raw_embedding` (the paper's "
           f"literal row) and `cuts_cosine` are the plain clusters of the embeddings in each "
           f"space; `cuts_scale` (and `colour_scale`, `felzenszwalb_scale`) is the region the "
           f"scale rule `{config.evaluation.scale_rule}` chooses under the click among the "
           f"scales (levels snapped to the image's superpixels: `snap_scale` "
           f"{config.evaluation.get('snap_scale', 0) or 'off'}); rows "
           f"ending in `_oracle` pick the granularity per image with the expert mask (not "
           f"label-free). Dice with the paper's one-pixel protocol "
           f"(`dice_majority`: the optimistic majority protocol); SSIM/ERGAS/RMSE within "
           f"segments over M = {config.evaluation.patch_pixels} sampled pixels with "
           f"{config.evaluation.patch_size}x{config.evaluation.patch_size} patches (ERGAS floor "
           f"{config.evaluation.ergas_floor}). Best of each column in bold.", ""]
  if len(ablations) > 1:
    lines += ["## CUTS per ablation", "", ablation_table(summaries), ""]
  for ablation in ablations:
    if len(ablations) > 1:
      lines += [f"## {ablation}: every method", ""]
    lines += [markdown_table(summaries[ablation]), ""]
  lines += paired_section(records, ablations)
  (results_dir / f"{name}.md").write_text("\n".join(lines))
  with (results_dir / f"{name}.csv").open("w", newline="") as stream:
    writer = csv.writer(stream)
    writer.writerow(["ablation", "method", "metric", "mean", "std", "seeds"])
    for ablation, summary in summaries.items():
      for method, metrics in summary.items():
        for metric, (mean, std, count) in metrics.items():
          writer.writerow([ablation, method, metric, mean, std, count])
  if records:
    names = list(dict.fromkeys(k for r in records for k in r))
    with (results_dir / f"{name}_per_image.csv").open("w", newline="") as stream:
      writer = csv.DictWriter(stream, fieldnames=names)
      writer.writeheader()
      writer.writerows(records)
  if args.dataset == "retina" and "none" in summaries and name == "retina":
    dice = summaries["none"]["cuts"]["dice"][0]
    (results_dir / "retina_cuts_dice.txt").write_text(f"{dice:.4f}\n")
  print("\n".join(lines))
  print(json.dumps({"wall_s": wall, "name": name}))


if __name__ == "__main__":
  main()
