"""A first run that needs no data set: scikit-image's sample photographs.

    python -m cuts_jax.main --config=configs/demo.py --workdir=/tmp/cuts_demo

Trains the paper's encoder on tiles of scikit-image's fundus photograph
(`skimage.data.retina`) and a few other sample images.
"""

from configs import default


def get_config(model_preset: str = "paper"):
  config = default.get_config(model_preset)
  config.data.kind = "demo"
  config.training.num_steps = 60
  config.training.log_every = 5
  config.training.checkpoint_every = 20
  return config
