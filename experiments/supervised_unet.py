"""Fig. 4: a supervised U-Net with fewer and fewer labels against label-free CUTS.

The paper (section III.B.2.c) trains a U-Net on a 90/10 split of the retina GA
images, "multiplying the training labels by a salt-and-pepper vector of 0s and
1s pulled from a binomial with decreasing probability of a 1", and plots its
held-out Dice against that probability p beside CUTS's Dice.

CPU configuration (the committed results; about 20 minutes on 2 shared cores): both
readings of the label noise, the paper's literal one ("multiply") first:

    python experiments/supervised_unet.py

Larger GPU configuration (documented, not run here): a wider U-Net on whole
images, longer training, all 9 disjoint held-out sets, both noise modes:

    python experiments/supervised_unet.py --features=32,64,128,256 --crop_size=0 \
        --num_steps=3000 --learning_rate=1e-3 --num_splits=9 \
        --noise_modes=multiply,drop --output_dir=/tmp/supervised_unet_gpu

Writes `supervised_unet.md` (command, config, seeds, hardware, wall time, the
table), `supervised_unet.csv` (one row per held-out image, split and p) and
`supervised_unet.png` (held-out Dice against p) to --output_dir.
"""

from __future__ import annotations

import csv
import datetime
import os
import pathlib
import platform
import shlex
import sys
import time
from typing import Optional

from absl import app
from absl import flags
from absl import logging

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Run as a plain script from anywhere: the library is imported from this checkout.
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from cuts_jax.evaluation import supervised_unet as unet  # pylint: disable=g-import-not-at-top
from cuts_jax.io import datasets as data_lib  # pylint: disable=g-import-not-at-top
from cuts_jax.runs import console  # pylint: disable=g-import-not-at-top

RESULTS = REPO_ROOT / "experiments" / "results"
NAME = "supervised_unet"

FLAGS = flags.FLAGS
flags.DEFINE_string("data_root", str(REPO_ROOT.parent / "shared" / "data" / "retina_ga"),
                    "Retina GA folder (image_with_GA/, label_with_GA/).")
flags.DEFINE_string("output_dir", str(RESULTS), "Where the .md, .csv and .png go.")
flags.DEFINE_list("ps", ["1.0", "0.5", "0.2", "0.1", "0.05", "0.01", "0.001"],
                  "Probabilities of a 1 in the salt-and-pepper label mask.")
flags.DEFINE_list("noise_modes", ["multiply", "drop"],
                  "multiply: labels x mask, the paper's literal wording (deleted foreground "
                  "becomes background); drop: only pixels whose mask bit is 1 are labelled.")
flags.DEFINE_integer("num_splits", 3, "Train/held-out splits with disjoint held-out sets.")
flags.DEFINE_float("held_out_fraction", 0.1, "Fraction of the images each split holds out.")
flags.DEFINE_integer("seed", 0, "Base seed: splits, label noise, weights, batches.")
flags.DEFINE_integer("image_size", 128, "Images are resized to this side (the paper's 128).")
flags.DEFINE_list("features", ["8", "16", "32", "64"], "U-Net filters per level.")
flags.DEFINE_integer("num_steps", 300, "Adam updates per trained U-Net.")
flags.DEFINE_integer("batch_size", 8, "Images per update.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam's peak learning rate (cosine decay).")
flags.DEFINE_integer("crop_size", 64, "Train on random crops of this side (0: whole images).")
flags.DEFINE_float("dice_weight", 1.0, "Weight of the soft-Dice term beside the BCE.")
flags.DEFINE_float("threshold", 0.5, "Probability threshold of the predicted mask.")
flags.DEFINE_bool("plot_only", False, "Redraw the figure from --output_dir's CSV (e.g. with a "
                  "new --cuts_dice) without training; the .md keeps its figures and gets "
                  "the new CUTS line.")
flags.DEFINE_float("cuts_dice", None, "CUTS's label-free Dice for the horizontal line "
                   "(default: read experiments/results/retina_cuts_dice.txt if it exists).")


def read_cuts_dice() -> tuple[Optional[float], str]:
  """CUTS's Dice from --cuts_dice or the results file, and where it came from."""
  if FLAGS.cuts_dice is not None:
    return FLAGS.cuts_dice, "--cuts_dice"
  path = RESULTS / "retina_cuts_dice.txt"
  if not path.exists():
    return None, f"not given (no --cuts_dice and no {path.relative_to(REPO_ROOT)})"
  for token in path.read_text().replace(",", " ").split():
    try:
      return float(token), str(path.relative_to(REPO_ROOT))
    except ValueError:
      continue
  raise ValueError(f"{path} holds no number; write CUTS's Dice in it (e.g. 0.665) or pass "
                   "--cuts_dice.")


def hardware() -> str:
  model = console.processor_name()
  usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
  return (f"{model}, {usable} usable cores ({os.cpu_count()} online); JAX {jax.__version__} "
          f"on {jax.devices()[0].platform} ({devices}); Python {platform.python_version()}")


def load_average() -> str:
  try:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
  except OSError:
    return "unknown"


def run(ps: list[float], modes: list[str]) -> list[dict]:
  """Trains and scores one U-Net per (noise mode, split, p); one row per held-out image."""
  dataset = data_lib.load_retina(FLAGS.data_root, (FLAGS.image_size, FLAGS.image_size))
  splits = unet.held_out_splits(len(dataset), num_splits=FLAGS.num_splits,
                                held_out_fraction=FLAGS.held_out_fraction, seed=FLAGS.seed)
  base_key = jax.random.key(FLAGS.seed)
  rows = []
  for mode in modes:
    for split_index, (train, held_out) in enumerate(splits):
      logging.info("split %d: training on %d images, holding out %s", split_index, len(train),
                   [dataset.names[i] for i in held_out])
      # The same weights, batches and augmentations for every p of a split, so
      # the curve shows the labels' effect and not a different initialisation.
      run_key = jax.random.fold_in(base_key, split_index)
      for p_index, p in enumerate(ps):
        rng = np.random.default_rng([FLAGS.seed, split_index, p_index])
        targets, weights = unet.corrupt_labels(rng, dataset.masks[train], p, mode=mode)
        foreground = dataset.masks[train] != 0
        kept = float(np.sum(targets * weights * foreground) / np.sum(foreground))
        tick = time.perf_counter()
        state = unet.fit(run_key, dataset.images[train], targets, weights,
                         num_steps=FLAGS.num_steps, batch_size=FLAGS.batch_size,
                         features=[int(f) for f in FLAGS.features],
                         learning_rate=FLAGS.learning_rate, crop_size=FLAGS.crop_size,
                         dice_weight=FLAGS.dice_weight, log_every=FLAGS.num_steps // 2)
        scores = unet.held_out_dice(state, dataset.images[held_out], dataset.masks[held_out],
                                    threshold=FLAGS.threshold)
        seconds = time.perf_counter() - tick
        logging.info("%s p=%g split %d: kept %.4f of the foreground labels; held-out Dice %s "
                     "(%.0f s)", mode, p, split_index, kept, np.round(scores, 3), seconds)
        for index, score in zip(held_out, scores):
          rows.append(dict(noise_mode=mode, p=p, split=split_index,
                           image=dataset.names[index], dice=float(score),
                           kept_foreground_fraction=kept, train_seconds=seconds))
  return rows


def summarise(rows: list[dict], mode: str, p: float) -> dict:
  """Mean +- std over splits of the splits' mean held-out Dice."""
  selected = [r for r in rows if r["noise_mode"] == mode and r["p"] == p]
  split_means = [np.mean([r["dice"] for r in selected if r["split"] == s])
                 for s in sorted({r["split"] for r in selected})]
  dice = np.array([r["dice"] for r in selected])
  return dict(mean=float(np.mean(split_means)), std=float(np.std(split_means)),
              split_means=split_means, image_min=float(dice.min()),
              image_max=float(dice.max()), num_images=len(dice),
              kept=float(np.mean([r["kept_foreground_fraction"] for r in selected])))


def write_csv(rows: list[dict], path: pathlib.Path) -> None:
  with path.open("w", newline="") as file:
    writer = csv.DictWriter(file, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
      writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def read_csv(path: pathlib.Path) -> list[dict]:
  """The rows `write_csv` wrote, with their numbers parsed."""
  if not path.exists():
    raise app.UsageError(f"--plot_only needs {path}; run the experiment first.")
  types = dict(p=float, split=int, dice=float, kept_foreground_fraction=float,
               train_seconds=float)
  with path.open(newline="") as file:
    return [{k: types.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(file)]


def plot(rows: list[dict], ps: list[float], modes: list[str], cuts_dice: Optional[float],
         cuts_source: str, path: pathlib.Path) -> None:
  from cuts_jax.evaluation import viz  # pylint: disable=g-import-not-at-top
  plt = viz.pyplot()
  figure, axis = plt.subplots(figsize=(6, 4))
  labels = {"multiply": "U-Net, labels x Bernoulli(p) (paper's wording)",
            "drop": "U-Net, only a Bernoulli(p) subset of pixels labelled"}
  for mode in modes:
    stats = [summarise(rows, mode, p) for p in ps]
    axis.errorbar(ps, [s["mean"] for s in stats], yerr=[s["std"] for s in stats], marker="o",
                  capsize=3, label=labels.get(mode, mode))
  if cuts_dice is not None:
    axis.axhline(cuts_dice, color="tab:red", linestyle="--",
                 label=f"CUTS, no labels ({cuts_dice:.3f})")
    title = "Retina GA: supervised U-Net vs label-free CUTS"
  else:
    title = f"Retina GA: supervised U-Net\nno CUTS line: its Dice is {cuts_source}"
  axis.set_xscale("log")
  axis.set_xlabel("p, probability of a 1 in the salt-and-pepper label mask")
  num_splits = len({r["split"] for r in rows})
  axis.set_ylabel(f"held-out Dice (mean +- std over {num_splits} splits)")
  axis.set_ylim(0.0, 1.0)
  axis.set_title(title, fontsize=9)
  axis.grid(True, which="both", alpha=0.3)
  axis.legend(fontsize=8, loc="best")
  viz.save(figure, path)


def write_markdown(rows: list[dict], ps: list[float], modes: list[str],
                   cuts_dice: Optional[float], cuts_source: str, wall_seconds: float,
                   machine: str, loads: tuple[str, str], path: pathlib.Path) -> None:
  command = "python " + " ".join(shlex.quote(a) for a in
                                 [os.path.relpath(sys.argv[0], REPO_ROOT)] + sys.argv[1:])
  held_out = sorted({(r["split"], r["image"]) for r in rows if r["noise_mode"] == modes[0]
                     and r["p"] == ps[0]})
  by_split = {}
  for split, image in held_out:
    by_split.setdefault(split, []).append(image)
  lines = [
      "# Supervised U-Net with noisy labels vs label-free CUTS (paper Fig. 4)",
      "",
      "Produced by `experiments/supervised_unet.py` on "
      f"{datetime.date.today().isoformat()}:",
      "",
      "```bash",
      command,
      "```",
      "",
      f"- Wall time: {wall_seconds / 60:.1f} min ({wall_seconds:.0f} s) for "
      f"{len(modes) * FLAGS.num_splits * len(ps)} U-Nets.",
      f"- Hardware: {machine}. Load average (1, 5, 15 min) at the start {loads[0]}, at the "
      f"end {loads[1]}: other jobs shared the cores, so times are pessimistic.",
      f"- Data: {len({r['image'] for r in rows})} distinct held-out retina GA images "
      f"({os.path.relpath(FLAGS.data_root, REPO_ROOT)}), resized to "
      f"{FLAGS.image_size}x{FLAGS.image_size}.",
      f"- Seeds: --seed={FLAGS.seed}. Splits: the images are shuffled once with this seed; "
      f"split i holds out the i-th block of round({FLAGS.held_out_fraction} x N) images and "
      "trains on the rest, so held-out sets never overlap. Label noise of split i, p_j: "
      f"numpy default_rng([{FLAGS.seed}, i, j]), drawn once per run. Weights, batch order "
      f"and augmentations: jax.random.fold_in(key({FLAGS.seed}), i), the same for every p "
      "of a split.",
      "- Held-out images per split: " + "; ".join(
          f"{split}: {', '.join(images)}" for split, images in sorted(by_split.items())) + ".",
      "",
      "## Config",
      "",
      f"- U-Net: filters {','.join(FLAGS.features)} per level (last = bottleneck), two 3x3 "
      "conv + batch norm + ReLU per level, 2x2 max-pool down, 2x2 stride-2 transposed conv "
      "up, skip connections, one logit per pixel.",
      f"- Training: {FLAGS.num_steps} Adam steps, batch {FLAGS.batch_size}, peak learning "
      f"rate {FLAGS.learning_rate} with cosine decay to 5%, random "
      + (f"{FLAGS.crop_size}x{FLAGS.crop_size} crops" if FLAGS.crop_size else "whole images")
      + " with random horizontal and vertical flips.",
      f"- Loss: per-pixel sigmoid binary cross-entropy + {FLAGS.dice_weight} x (1 - soft "
      "Dice pooled over the batch), both over labelled pixels only.",
      f"- Noise modes: {', '.join(modes)}. `multiply` is the paper's literal wording: "
      "training labels = mask x Bernoulli(p); every pixel keeps a label, so a fraction "
      "1 - p of the GA pixels is relabelled as background (false negatives) and the "
      "background is untouched. `drop` (sparse supervision) keeps the labels true but only "
      "a Bernoulli(p) subset of pixels is labelled; the rest are left out of the loss.",
      f"- Evaluation: prediction = sigmoid > {FLAGS.threshold} on the whole held-out "
      "image (batch-norm running statistics), Dice against the expert mask. Mean +- std: "
      "over splits, of each split's mean held-out Dice.",
      f"- CUTS's Dice: {cuts_dice if cuts_dice is not None else 'none'} (source: "
      f"{cuts_source}).",
      "",
      "## Results",
      "",
      "| noise | p | GA labels kept | held-out Dice (mean +- std over splits) | per split "
      "| min / max image |",
      "| --- | --- | --- | --- | --- | --- |",
  ]
  for mode in modes:
    for p in ps:
      s = summarise(rows, mode, p)
      beaten = ""
      if cuts_dice is not None:
        beaten = " (below CUTS)" if s["mean"] < cuts_dice else ""
      lines.append(
          f"| {mode} | {p:g} | {s['kept']:.4f} | {s['mean']:.3f} +- {s['std']:.3f}{beaten} | "
          + ", ".join(f"{m:.3f}" for m in s["split_means"])
          + f" | {s['image_min']:.3f} / {s['image_max']:.3f} |")
  lines += [
      "",
      "Reading the `multiply` rows: every pixel keeps a label and a GA pixel is labelled 1 "
      "with probability p, so a calibrated per-pixel model (the cross-entropy's optimum) "
      "predicts about p on GA pixels and thresholding at 0.5 empties its prediction once p "
      "is well below 0.5; the soft-Dice term pulls the other way. `drop` keeps every label "
      "true and only removes them, so it degrades with the number of labelled pixels instead.",
      "",
      f"`{NAME}.csv` has one row per held-out image, split and p; `{NAME}.png` plots the "
      "table (log p axis) with CUTS's Dice as a horizontal line when it is known. To redraw "
      "the figure with CUTS's line once its Dice is known, without training again: "
      "`python experiments/supervised_unet.py --plot_only --cuts_dice=DICE`.",
      "",
      "## Larger GPU configuration (documented, not run)",
      "",
      "```bash",
      "python experiments/supervised_unet.py --features=32,64,128,256 --crop_size=0 \\",
      "    --num_steps=3000 --learning_rate=1e-3 --num_splits=9 \\",
      "    --noise_modes=multiply,drop --output_dir=/tmp/supervised_unet_gpu",
      "```",
      "",
      "A 4x wider U-Net on whole 128x128 images, 10x longer training, all 9 disjoint "
      "held-out sets (27 of the 28 images scored) and both readings of the label noise.",
      "",
  ]
  path.write_text("\n".join(lines))


def refresh_cuts_line(path: pathlib.Path, cuts_dice: Optional[float], cuts_source: str) -> None:
  """Puts CUTS's Dice, and which rows fall below it, into an existing results file."""
  if not path.exists():
    return
  lines = []
  for line in path.read_text().splitlines():
    if line.startswith("- CUTS's Dice:"):
      line = (f"- CUTS's Dice: {cuts_dice if cuts_dice is not None else 'none'} (source: "
              f"{cuts_source}; added by --plot_only).")
    cells = line.split(" | ")
    if line.startswith("| ") and len(cells) == 6 and cells[3][:1].isdigit():
      mean = float(cells[3].split("+-")[0])
      cells[3] = cells[3].replace(" (below CUTS)", "")
      if cuts_dice is not None and mean < cuts_dice:
        cells[3] += " (below CUTS)"
      line = " | ".join(cells)
    lines.append(line)
  path.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}; all settings are --flags.")
  console.setup_logging()
  ps = [float(p) for p in FLAGS.ps]
  modes = list(FLAGS.noise_modes)
  for mode in modes:
    if mode not in unet.NOISE_MODES:
      raise app.UsageError(f"--noise_modes: {mode!r} is not one of {unet.NOISE_MODES}.")
  cuts_dice, cuts_source = read_cuts_dice()
  output_dir = pathlib.Path(FLAGS.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  if FLAGS.plot_only:
    rows = read_csv(output_dir / f"{NAME}.csv")
    ps = list(dict.fromkeys(r["p"] for r in rows))
    modes = list(dict.fromkeys(r["noise_mode"] for r in rows))
    plot(rows, ps, modes, cuts_dice, cuts_source, output_dir / f"{NAME}.png")
    refresh_cuts_line(output_dir / f"{NAME}.md", cuts_dice, cuts_source)
    logging.info("Redrew %s from %s.", output_dir / f"{NAME}.png", output_dir / f"{NAME}.csv")
    return
  machine, start_load = hardware(), load_average()
  logging.info("Hardware: %s; load average %s", machine, start_load)
  tick = time.perf_counter()
  rows = run(ps, modes)
  wall = time.perf_counter() - tick
  write_csv(rows, output_dir / f"{NAME}.csv")
  plot(rows, ps, modes, cuts_dice, cuts_source, output_dir / f"{NAME}.png")
  write_markdown(rows, ps, modes, cuts_dice, cuts_source, wall, machine,
                 (start_load, load_average()), output_dir / f"{NAME}.md")
  for mode in modes:
    for p in ps:
      s = summarise(rows, mode, p)
      logging.info("%s p=%g: held-out Dice %.3f +- %.3f", mode, p, s["mean"], s["std"])
  logging.info("Wrote %s.{md,csv,png} in %.1f min.", output_dir / NAME, wall / 60)


if __name__ == "__main__":
  app.run(main)
