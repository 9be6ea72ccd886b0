"""The defaults alone (`cuts_jax.defaults`), runnable as `--config=configs/default.py`.

It has no data set of its own (`data.kind=folder`, `data.root` unset), so pass one:

    python -m cuts_jax.main --config=configs/default.py --workdir=/tmp/cuts \
        --config.data.root=/path/to/images

The other configs in this folder start from the same defaults.
"""

from cuts_jax import defaults


def get_config(model_preset: str = "paper"):
  return defaults.get_config(model_preset=model_preset)
