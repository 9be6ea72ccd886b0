"""CUTS on the Berkeley Segmentation Data Set (BSDS500) natural images (paper, Table I).

    python -m cuts_jax.main --config=configs/berkeley.py --workdir=/tmp/berkeley \
        --config.data.root=/path/to/BSDS500/data

Layout: images/{train,val}/*.jpg and groundTruth/{train,val}/*.mat (the human
segmentations are used only for evaluation). Images are resized to 128x128.
"""

from configs import default


def get_config(model_preset: str = "paper"):
  config = default.get_config(model_preset)
  config.data.kind = "bsds500"
  config.data.root = ""  # Set with --config.data.root=/path/to/BSDS500/data.
  config.data.splits = ("train", "val")
  config.training.num_steps = 300
  config.training.log_every = 10
  config.training.checkpoint_every = 50
  return config
