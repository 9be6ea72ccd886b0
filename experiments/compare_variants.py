"""Paired comparison of training variants on the same images: each variant's `cuts` minus the default's.

    python experiments/compare_variants.py --results_dir=experiments/results \
        --default=retina_tune_default --variant=sum=retina_tune_sum \
        --variant=augment=retina_tune_augment

Each name refers to a `<name>_per_image.csv` written by `experiments/run_cuts.py` (with
`--cluster_seeds`), one per trained variant, all on the same part, seeds and clustering seeds.
For every variant the `cuts` rows of both files are paired by (run, image); the table gives
the variant minus the default, averaged per image over the runs, with a bootstrap 95%
interval over images (`cuts_jax.evaluation.paired`). A default should change only when the
interval lies above 0.

With `--control=colour_segments` (repeatable), a second table pairs the default's and each
variant's `cuts` with that control row of the default's file (a row with no network, or an
untrained one, scored on the same runs), so a variant's margin over the controls is read
with the same pairing.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cuts_jax.evaluation import paired  # pylint: disable=g-import-not-at-top

DEFAULT = "default"


def _rows(path: pathlib.Path, method: str, label: str) -> list[dict]:
  with path.open() as stream:
    return [dict(row, method=label) for row in csv.DictReader(stream) if row["method"] == method]


def compare(results_dir: pathlib.Path, default: str, variants: dict[str, str], *,
            metric: str = "dice", controls: tuple[str, ...] = ()) -> str:
  """Markdown table: one row per variant, its mean, the default's, and the paired difference.

  With `controls` (method names in the default's file), a second table gives the default's
  and each variant's `cuts` minus each control, paired by (run, image) in the same way.
  """
  reference = _rows(results_dir / f"{default}_per_image.csv", "cuts", DEFAULT)
  lines = [f"| variant | default {metric} | variant {metric} | variant - default "
           "[95% interval over images] | images | runs |",
           "| --- | --- | --- | --- | --- | --- |"]
  for label, name in variants.items():
    rows = reference + _rows(results_dir / f"{name}_per_image.csv", "cuts", label)
    row = paired.paired_differences(rows, metric=metric, reference=label,
                                    methods=[DEFAULT])[DEFAULT]
    lines.append(f"| {label} | {row.method_mean:.3f} | {row.reference_mean:.3f} | "
                 f"{row.difference:+.3f} [{row.low:+.3f}, {row.high:+.3f}] | "
                 f"{row.num_images} | {row.num_runs} |")
  if controls:
    lines += ["", f"| cuts of | control | cuts {metric} | control {metric} | cuts - control "
              "[95% interval over images] | images | runs |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
  for control in controls:
    control_rows = _rows(results_dir / f"{default}_per_image.csv", control, control)
    if not control_rows:
      raise ValueError(f"No '{control}' rows in {default}_per_image.csv; score the default "
                       "with that method in run_cuts.py's --methods.")
    for label, name in {DEFAULT: default, **variants}.items():
      rows = _rows(results_dir / f"{name}_per_image.csv", "cuts", label) + control_rows
      row = paired.paired_differences(rows, metric=metric, reference=label,
                                      methods=[control])[control]
      lines.append(f"| {label} | {control} | {row.reference_mean:.3f} | {row.method_mean:.3f} | "
                   f"{row.difference:+.3f} [{row.low:+.3f}, {row.high:+.3f}] | "
                   f"{row.num_images} | {row.num_runs} |")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--results_dir", default=str(REPO_ROOT / "experiments" / "results"))
  parser.add_argument("--default", required=True, help="results name of the default's run")
  parser.add_argument("--variant", action="append", default=[],
                      help="label=results name of a variant's run (repeatable)")
  parser.add_argument("--metric", default="dice")
  parser.add_argument("--control", action="append", default=[],
                      help="a control row of the default's file to pair every cuts with "
                      "(repeatable), e.g. colour_segments")
  args = parser.parse_args()
  variants = dict(item.split("=", 1) for item in args.variant)
  print(compare(pathlib.Path(args.results_dir), args.default, variants, metric=args.metric,
                controls=tuple(args.control)))


if __name__ == "__main__":
  main()
