"""Scores `segment` settings on the tuning part of experiments/splits.json (never the report part).

    python experiments/tune_segment.py --dataset=retina \
        --workdirs=/tmp/cuts_experiments/retina_tune_none_paper/seed0,...   # models trained
    python experiments/tune_segment.py --dataset=berkeley --workdirs=... --limit=40

Each workdir is a model trained without labels on the tuning part (e.g. by
`python experiments/run_cuts.py --dataset=retina --part=tune`). Every setting in the grid
below is one `cuts_jax.segment` call per image with the other options at the model's
defaults, scored like the independent scorers in ../shared/tools: retina by the one-pixel
Dice (the expert-region pixel nearest the median row and column picks the segment), BSDS500
by PRI and VoI (log2) against every human segmentation at the image's own size. The table
(mean over workdirs and clustering seeds of the mean over images) goes to
experiments/results/tuning_<dataset>.md; the chosen settings are recorded there and in
configs/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time

import numpy as np
from PIL import Image

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import cuts_jax  # pylint: disable=g-import-not-at-top
from cuts_jax import pixels
from cuts_jax.evaluation import baselines
from cuts_jax.evaluation import metrics
from cuts_jax.io import datasets

SHARED = REPO_ROOT.parent / "shared" / "data"
SPLITS = json.loads((REPO_ROOT / "experiments" / "splits.json").read_text())

# name -> segment() options; "colour:" rows are the colour baselines in the same pipeline.
GRID = {
    "retina": {
        "paper literal (raw embedding clusters)": dict(space="embedding", image_weight=0.0,
                                                       connected=False),
        "reconstruction-space clusters (previous default)": dict(image_weight=0.0,
                                                                 connected=False),
        "cosine clusters": dict(space="cosine", image_weight=0.0, connected=False),
        "+ connected segments": dict(image_weight=0.0),
        "+ smoothed image, weight 0.5": dict(image_weight=0.5),
        "+ smoothed image, weight 1 (default)": dict(),
        "default, clustering on the host": dict(on_device=False),
        "default, clustering on the device": dict(on_device=True),
        "+ smoothed image, weight 2": dict(image_weight=2.0),
        "default, image sigma 1": dict(image_sigma=1.0),
        "default, image sigma 3": dict(image_sigma=3.0),
        "default, k = 8": dict(num_clusters=8),
        "default, k = 12": dict(num_clusters=12),
        "default, min segment 2%": dict(min_segment_fraction=0.02),
        "default, clusters not cut (connected=False)": dict(connected=False),
        "colour: spectral k-means of smoothed colour, connected": "colour_spectral",
        "colour: k-means of smoothed colour, connected": "colour_kmeans_connected",
        "colour: k-means of smoothed colour (the scorer's baseline)": "colour_kmeans",
    },
    "berkeley": {
        "reconstruction-space clusters (previous default, own size)": dict(
            image_weight=0.0, connected=False, at_training_size=False),
        "k 10, min segment 0.5% (the retina settings)": dict(num_clusters=10,
                                                             min_segment_fraction=0.005),
        "k 10, min segment 2%": dict(min_segment_fraction=0.02),
        "k 6, min segment 2%": dict(num_clusters=6, min_segment_fraction=0.02),
        "k 6, min segment 2%, clustering on the host": dict(
            num_clusters=6, min_segment_fraction=0.02, on_device=False),
        "k 6, min segment 2%, clustering on the device": dict(
            num_clusters=6, min_segment_fraction=0.02, on_device=True),
        "k 6, min segment 2%, own size": dict(num_clusters=6, min_segment_fraction=0.02,
                                              at_training_size=False),
        "k 6, min segment 4%": dict(num_clusters=6, min_segment_fraction=0.04),
        "k 4, min segment 2%": dict(num_clusters=4, min_segment_fraction=0.02),
        "k 8, min segment 2%": dict(num_clusters=8, min_segment_fraction=0.02),
        "k 6, min segment 2%, no image values": dict(num_clusters=6, min_segment_fraction=0.02,
                                                     image_weight=0.0),
        "colour: k-means of smoothed colour (the scorer's baseline)": "colour_kmeans",
    },
}


def _colour(name: str, image: np.ndarray, seed: int) -> np.ndarray:
  unit = pixels.to_unit_range(image)
  options = dict(num_clusters=10, smoothing_sigma=2.0, seed=seed)
  if name == "colour_spectral":
    options.update(method="spectral", connected=True, min_segment_fraction=0.005)
  elif name == "colour_kmeans_connected":
    options.update(connected=True, min_segment_fraction=0.005)
  return baselines.kmeans_pixels(unit, **options)


def _retina_items(part: str):
  root = SHARED / "retina_ga"
  for name in SPLITS["retina"][part]:
    number = name.removeprefix("image")
    image = np.asarray(Image.open(root / "image_with_GA" / f"{name}.png").convert("RGB"))
    yield name, image, np.load(root / "label_with_GA" / f"label{number}.npy") > 0


def _bsds_items(part: str, limit: int):
  data = datasets.load_bsds500(SHARED / "bsds500", (128, 128), splits=SPLITS["bsds500"][part],
                               limit=limit)
  for name, original, humans in zip(data.names, data.original_images,
                                    data.human_segmentations):
    yield name, (np.clip(original, 0, 1) * 255).round().astype(np.uint8), humans


def _scores(dataset: str, labels: np.ndarray, truth) -> dict[str, float]:
  if dataset == "retina":
    return {"dice": metrics.dice_one_pixel(labels, truth.astype(np.uint8))}
  return {"pri": metrics.probabilistic_rand_index(labels, truth),
          "voi": metrics.variation_of_information(labels, truth),
          "segments": float(len(np.unique(labels)))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", choices=sorted(GRID), required=True)
  parser.add_argument("--workdirs", required=True, help="comma-separated trained workdirs")
  parser.add_argument("--seeds", default="0,1", help="clustering seeds")
  parser.add_argument("--limit", type=int, default=0, help="BSDS500: first N tuning images")
  parser.add_argument("--settings", default="",
                      help="texts separated by |: only the settings whose names contain one")
  parser.add_argument("--results_dir", default=str(REPO_ROOT / "experiments" / "results"))
  args = parser.parse_args()
  workdirs = args.workdirs.split(",")
  seeds = [int(s) for s in args.seeds.split(",")]
  items = list(_retina_items("tune") if args.dataset == "retina"
               else _bsds_items("tune", args.limit))
  started = time.perf_counter()
  grid = {name: options for name, options in GRID[args.dataset].items()
          if any(text in name for text in args.settings.split("|"))}
  if not grid:
    parser.error(f"no setting of {args.dataset} contains {args.settings!r}")
  table: dict[str, list[dict]] = {name: [] for name in grid}
  for workdir in workdirs:
    params = cuts_jax.load(workdir)
    for seed in seeds:
      per_setting = {name: [] for name in table}
      for _, image, truth in items:
        for name, options in grid.items():
          labels = (_colour(options, image, seed) if isinstance(options, str)
                    else cuts_jax.segment(params, image, seed=seed, **options))
          per_setting[name].append(_scores(args.dataset, labels, truth))
      for name, rows in per_setting.items():
        table[name].append({k: float(np.mean([r[k] for r in rows])) for k in rows[0]})
  wall = time.perf_counter() - started
  keys = list(next(iter(table.values()))[0])
  lines = [f"# Tuning `segment` on {args.dataset}: the tuning part only", "",
           f"Produced on {datetime.date.today().isoformat()} by", "", "```bash",
           "python experiments/tune_segment.py " + " ".join(sys.argv[1:]), "```", "",
           f"- **Part: tune** of experiments/splits.json ({len(items)} images); every number "
           "here is from the tuning part, on which the settings were chosen.",
           f"- {len(workdirs)} models trained without labels on the tuning part "
           f"(seeds of the config), x {len(seeds)} clustering seeds: mean +- std over the "
           f"{len(workdirs) * len(seeds)} runs of each run's mean over images. Wall time "
           f"{wall / 60:.1f} min.", "",
           "| setting | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
  for name, runs in table.items():
    cells = [f"{np.mean([r[k] for r in runs]):.3f} +- {np.std([r[k] for r in runs]):.3f}"
             for k in keys]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  output = pathlib.Path(args.results_dir) / f"tuning_{args.dataset}.md"
  output.write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
