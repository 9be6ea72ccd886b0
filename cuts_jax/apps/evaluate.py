"""Command line: score a trained model and every baseline on a data set.

    python -m cuts_jax.apps.evaluate --workdir=/tmp/retina \
        [--config=configs/retina.py --config.data.root=...]

Without --config the run's own `workdir/config.json` is used. Results go to
`workdir/evaluation/` (see `cuts_jax.evaluation.evaluate`).
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from cuts_jax.apps import _cli
from cuts_jax.evaluation import evaluate
from cuts_jax.runs import checkpointing
from cuts_jax.runs import console

__all__ = ["main"]


def _define_flags() -> None:
  """The CLI's flags; defined only when run as a program (no clash with cuts_jax.main)."""
  config_flags.DEFINE_config_file("config", None, "Config file; default: the workdir's "
                                  "config.json.", lock_config=True)
  flags.DEFINE_string("workdir", None, "A training workdir (holds config.json, checkpoints).")
  flags.mark_flag_as_required("workdir")


def main(argv):
  """Scores the workdir's model and every baseline (absl entry point; `argv` holds no more)."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  console.setup_logging()
  workdir, config = flags.FLAGS.workdir, flags.FLAGS.config
  with _cli.exit_on_user_error():
    evaluate.evaluate(config if config is not None else checkpointing.read_config(workdir),
                      workdir)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
