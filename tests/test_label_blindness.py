"""Training never reads a label: random masks leave the trained checkpoint bit-identical."""

import jax
import numpy as np
import orbax.checkpoint as ocp
from skimage import io

from configs import brain_ventricles
from configs import tiny
from cuts_jax import train
from cuts_jax.evaluation import report
from cuts_jax.runs import checkpointing


def _retina_folder(root, masks):
  (root / "image_with_GA").mkdir(parents=True)
  (root / "label_with_GA").mkdir()
  rng = np.random.default_rng(0)
  for number, mask in enumerate(masks):
    image = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    io.imsave(root / "image_with_GA" / f"image{number}.png", image, check_contrast=False)
    np.save(root / "label_with_GA" / f"label{number}.npy", mask)
  return root


def _train(root, workdir):
  config = tiny.get_config()
  config.data.kind = "retina"
  config.data.root = str(root)
  # configs/tiny.py's 4 steps: the train step the session's other tiny runs compile, loaded
  # from conftest's compilation cache rather than compiled again.
  # The segment report reads the masks (to log Dice): it must not change what is trained.
  train.train_and_evaluate(config, workdir, report=report.segment_report(config, workdir))
  manager = checkpointing.checkpoint_manager(workdir, read_only=True)
  try:
    return manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())
  finally:
    manager.close()


def test_random_masks_leave_the_checkpoint_bit_identical(tmp_path):
  rng = np.random.default_rng(1)
  real = [np.pad(np.ones((8, 8), np.uint8), 12) for _ in range(4)]
  noise = [rng.integers(0, 2, (32, 32)).astype(np.uint8) for _ in range(4)]
  first = _train(_retina_folder(tmp_path / "real", real), tmp_path / "run_real")
  second = _train(_retina_folder(tmp_path / "noise", noise), tmp_path / "run_noise")
  for name in ("params", "batch_stats", "opt_state"):
    for a, b in zip(jax.tree.leaves(first[name]), jax.tree.leaves(second[name])):
      np.testing.assert_array_equal(a, b)


def test_the_brain_config_trains_on_every_slice():
  """Slices chosen by their ventricle labels would let the labels into training."""
  assert brain_ventricles.get_config().data.min_target_pixels == 0
