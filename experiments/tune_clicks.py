"""Choosing how several clicks combine (`select`'s `negatives`, `grow`, `shrink`) on the tune parts.

    python experiments/tune_clicks.py --dataset=retina --cache_dir=/tmp/cuts_clusterings
    python experiments/tune_clicks.py --dataset=brain --stride=2 --cache_dir=/tmp/cuts_clusterings

The stacks are tune_scale.py's (the tune part's images, the seed 0 model, clustering seed 0,
k = 2..15, fold threshold 30 px with small clicked pieces kept; the clusterings are shared
through `--cache_dir`). The scale rule is the chosen one (stability, 25%), and "fixed" is the
flat k = 10 map. Each variant runs the simulated user of experiments/clicks.py; reported:
Dice after 1/2/3/5 clicks, NoC@80/85/90 (at most 10 clicks) and the share of clicks 2..5 that
lower the Dice. For the former mode ("both") and the chosen one, each click kind
(positive/negative) is described: how often it is the second click, how much it changes the
Dice, and how large what it adds or removes is against the mask it finds and the target. The
tables replace this script's section of the data set in experiments/results/tuning_scale.md.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
import time

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "experiments"))

import clicks  # pylint: disable=g-import-not-at-top
import tune_scale
from cuts_jax import scales
from cuts_jax.scales import _choosing as scales_choosing  # pylint: disable=protected-access
from cuts_jax.evaluation import metrics

FOLD = 30
REACHES = (1.0, 1.5, 2.0, 3.0)


def variants() -> dict[str, dict]:
  """Variant name -> options of `scales.choose_region` (plus "reach": scales_choosing._REACH)."""
  table = {}
  for rule, prefix in (("stability", "stability 25%"), ("fixed", "fixed k=10")):
    base = dict(rule=rule, max_fraction=0.25, fixed_clusters=10)
    for mode in ("both", "exclude", "subtract"):
      table[f"{prefix}, {mode}"] = dict(base, negatives=mode)
    for grow in (0.1, 0.25, 0.5, 1.0):
      for shrink in (0.25, 0.5, 1.0):
        if rule == "fixed" and (grow, shrink) != (0.25, 0.5):
          continue
        table[f"{prefix}, bounded, grow {grow}, shrink {shrink}"] = dict(
            base, negatives="bounded", grow=grow, shrink=shrink)
  for reach in REACHES:
    if reach != scales_choosing._REACH:  # pylint: disable=protected-access
      table[f"stability 25%, bounded, grow 0.25, shrink 0.5, local reach {reach}"] = dict(
          rule="stability", max_fraction=0.25, negatives="bounded", grow=0.25, shrink=0.5,
          reach=reach)
  return table


def run_user(stack, target, first, options) -> tuple[list[float], list[tuple]]:
  """The simulated user's Dice curve and, per later click, (kind, Dice before, after,
  |mask before|, |target|, pixels added, pixels removed, added outside the target,
  removed inside the target)."""
  reach = options.pop("reach", None)
  default_reach = scales_choosing._REACH  # pylint: disable=protected-access
  if reach is not None:
    scales_choosing._REACH = reach  # pylint: disable=protected-access
  steps, state = [], {}

  def select(positive, negative):
    mask = scales.choose_region(stack, positive, negative=negative, **options)
    if "mask" in state:
      before = state["mask"]
      kind = "positive" if len(positive) > state["positives"] else "negative"
      steps.append((kind, metrics.dice(before, target), metrics.dice(mask, target),
                    int(before.sum()), int(target.sum()), int((mask & ~before).sum()),
                    int((before & ~mask).sum()), int((mask & ~before & ~target).sum()),
                    int((before & ~mask & target).sum())))
    state.update(mask=mask, positives=len(positive))
    return mask

  try:
    curve = clicks.simulate(select, target, first)
  finally:
    scales_choosing._REACH = default_reach  # pylint: disable=protected-access
  return curve, steps


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", choices=("retina", "brain"), required=True)
  parser.add_argument("--workdir_root", default="/work/runs")
  parser.add_argument("--cache_dir", default="", help="tune_scale.py's clusterings cache")
  parser.add_argument("--stride", type=int, default=1)
  parser.add_argument("--output", default=str(REPO_ROOT / "experiments" / "results" /
                                              "tuning_scale.md"))
  args = parser.parse_args()
  started = time.perf_counter()
  table = variants()
  curves = {name: [] for name in table}
  steps = {name: [] for name in table}
  cases = tune_scale.tune_cases(args.dataset, workdir_root=args.workdir_root,
                                cache_dir=args.cache_dir, stride=args.stride)
  count = 0
  for case, clusterings, first in cases:
    count += 1
    stack = tune_scale._stack(  # pylint: disable=protected-access
        clusterings, case.image.shape[:2], FOLD, True)
    for name, options in table.items():
      curve, described = run_user(stack, case.target, first, dict(options))
      curves[name].append(curve)
      steps[name] += [(index + 2,) + step for index, step in enumerate(described)]
  wall = time.perf_counter() - started
  command = (f"python experiments/tune_clicks.py --dataset={args.dataset}"
             + (f" --stride={args.stride}" if args.stride > 1 else "")
             + " --cache_dir=<tune_scale.py's cache>")
  lines = [f"## multi-click, {args.dataset}: tune part ({count} images), model seed 0, "
           "clustering seed 0", "",
           f"{datetime.date.today().isoformat()}, `{command}` ({wall / 60:.1f} min). Stacks as in "
           f"tune_scale.py (fold {FOLD} px, small clicked pieces kept); the simulated user of "
           "experiments/clicks.py; `drops`: share of clicks 2..5 that lower the Dice.", "",
           "| variant | dice@1 | dice@2 | dice@3 | dice@5 | NoC@80 | NoC@85 | NoC@90 | drops |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for name, rows in curves.items():
    array = np.array(rows)
    cells = [f"{array[:, n - 1].mean():.3f}" for n in clicks.DICE_AFTER]
    cells += [f"{np.mean([clicks.number_of_clicks(c, t) for c in array]):.2f}"
              for t in clicks.NOC_THRESHOLDS]
    cells.append(f"{np.mean(np.diff(array[:, :5], axis=1) < -1e-9):.2f}")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", "Clicks 2 and 3 by kind (mean over the images' clicks of that kind; sizes as "
            "shares of the mask the click found and of the target):", "",
            "| variant | click | kind | count | Dice change | lowered | added / mask | "
            "added outside target / target | removed / mask | removed inside target / target |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for name in ("stability 25%, both", "stability 25%, bounded, grow 0.25, shrink 0.5",
               "fixed k=10, both", "fixed k=10, bounded, grow 0.25, shrink 0.5"):
    for number in (2, 3):
      for kind in ("positive", "negative"):
        chosen = [s for s in steps[name] if s[0] == number and s[1] == kind]
        if not chosen:
          continue
        data = np.array([s[2:] for s in chosen], float)
        change = data[:, 1] - data[:, 0]
        mask_size, target_size = np.maximum(data[:, 2], 1), data[:, 3]
        lines.append(
            f"| {name} | {number} | {kind} | {len(chosen)} | {change.mean():+.3f} | "
            f"{int(np.sum(change < 0))} | {np.mean(data[:, 4] / mask_size):.2f} | "
            f"{np.mean(data[:, 6] / target_size):.2f} | {np.mean(data[:, 5] / mask_size):.2f} | "
            f"{np.mean(data[:, 7] / target_size):.2f} |")
  tune_scale.write_section(pathlib.Path(args.output), f"## multi-click, {args.dataset}:", lines)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
