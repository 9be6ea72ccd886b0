"""One process of the two-process training run that tests/test_multihost.py starts.

    python tests/_multihost_worker.py PROCESS_ID PORT WORKDIR NUM_STEPS

Trains configs/tiny.py as process PROCESS_ID of 2, with the coordinator on
127.0.0.1:PORT, each process loading its own half of the images; process 0
writes the final parameters to WORKDIR/final_params.npz.
"""

import pathlib
import sys

from absl import logging
import jax
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from configs import tiny  # pylint: disable=g-import-not-at-top
from cuts_jax import train

HEARTBEAT_TIMEOUT_S = 10


def config_for(process_id: int, port: int, num_steps: int):
  config = tiny.get_config()
  config.training.num_steps = num_steps
  config.distributed.initialize = True
  config.distributed.coordinator_address = f"127.0.0.1:{port}"
  config.distributed.num_processes = 2
  config.distributed.process_id = process_id
  config.distributed.heartbeat_timeout_s = HEARTBEAT_TIMEOUT_S
  return config


def flat_params(params) -> dict[str, np.ndarray]:
  """{"encoder/conv0/kernel": array, ...}"""
  leaves, _ = jax.tree_util.tree_flatten_with_path(params)
  return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf)
          for path, leaf in leaves}


def main(argv):
  process_id, port, workdir, num_steps = int(argv[1]), int(argv[2]), argv[3], int(argv[4])
  logging.set_verbosity(logging.INFO)
  state = train.train_and_evaluate(config_for(process_id, port, num_steps), workdir)
  if process_id == 0:
    np.savez(pathlib.Path(workdir) / "final_params.npz", **flat_params(state.params))
  print(f"finished at step {int(state.step)}", flush=True)


if __name__ == "__main__":
  main(sys.argv)
