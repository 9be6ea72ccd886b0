"""Command line entry point for training: `cuts_jax.apps.train` under its usual name.

    python -m cuts_jax.main --config=configs/retina.py --workdir=/tmp/retina
"""

from absl import app

from cuts_jax.apps import train

__all__ = []

if __name__ == "__main__":
  app.run(train.main)
