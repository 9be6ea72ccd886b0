"""CUTS on the retina geographic-atrophy (GA) fundus photographs (paper, Tables II-IV).

    python -m cuts_jax.main --config=configs/retina.py --workdir=/tmp/retina \
        --config.data.root=../shared/data/retina_ga

Layout: image_with_GA/imageN.png and label_with_GA/labelN.npy (labels are used
only for evaluation, never for training).
"""

from configs import default


def get_config(model_preset: str = "paper"):
  config = default.get_config(model_preset)
  config.data.kind = "retina"
  config.data.root = ""  # Set with --config.data.root=/path/to/retina_ga.
  config.training.num_steps = 300
  config.training.log_every = 10
  config.training.checkpoint_every = 50
  return config
