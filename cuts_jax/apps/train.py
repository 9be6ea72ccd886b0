"""Command line: train CUTS (also run as `python -m cuts_jax.main`).

    python -m cuts_jax.main --config=configs/retina.py --workdir=/tmp/retina \
        --config.data.root=/path/to/retina_ga --config.training.num_steps=500

Any config field can be overridden with --config.<path>=<value>. Re-running
with the same --workdir resumes from its latest checkpoint. Every
`config.training.eval_every` steps and at the end the run is shown a segment
report (`cuts_jax.evaluation.report`): Dice on data with masks, and
`workdir/segments.png`.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from cuts_jax import train
from cuts_jax.apps import _cli
from cuts_jax.evaluation import report
from cuts_jax.runs import console

__all__ = ["main"]

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (e.g. configs/retina.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and "
                               "config.json; reused to resume.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  """Trains with --config into --workdir (absl entry point; `argv` holds no more)."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  console.setup_logging()
  with _cli.exit_on_user_error():
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                             report=report.segment_report(_CONFIG.value, _WORKDIR.value))
  logging.info("Done; results are in %s.", _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
