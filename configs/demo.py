"""A first run that needs no data set: scikit-image's sample photographs.

    python -m cuts_jax.main --config=configs/demo.py --workdir=/tmp/cuts_demo

Trains the paper's encoder on random 64x64 crops of 128x128 tiles of
scikit-image's fundus photograph (`skimage.data.retina`) and a few other sample
images, then draws their segments in `workdir/segments.png` (with matplotlib).
About 3 minutes on a 2-core CPU, well under a minute on a GPU.
"""

from cuts_jax import defaults


def get_config(model_preset: str = "paper"):
  config = defaults.get_config(model_preset=model_preset)
  config.data.kind = "demo"
  config.training.crop_size = 64
  config.training.num_steps = 100
  config.training.log_every = 10
  config.training.checkpoint_every = 50
  config.training.num_figure_images = 6
  return config
