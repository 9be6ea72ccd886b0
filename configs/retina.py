"""CUTS on the retina geographic-atrophy (GA) fundus photographs (paper, Tables II-IV).

CPU (about 7 min on 2 cores; the reference for `benchmarks/run.py`'s time to result):

    python -m cuts_jax.main --config=configs/retina.py --workdir=/tmp/retina \
        --config.data.root=../shared/data/retina_ga

GPU (whole 128x128 images, 2000 steps; one step of 8 images took 7 ms on an H100 in
benchmarks/results.md, compile 11 s; the whole run has not been timed on a GPU):

    python -m cuts_jax.main --config=configs/retina.py --workdir=/tmp/retina_gpu \
        --config.data.root=../shared/data/retina_ga --config.training.crop_size=0 \
        --config.training.num_steps=2000

Layout: image_with_GA/imageN.png and label_with_GA/labelN.npy (labels are used
only to report Dice, never for training). The command above trains on all 28
images. Expected, as `python experiments/run_cuts.py --dataset=retina` measures
it on the report part of experiments/splits.json (14 images, trained and scored
on them without labels; 3 seeds): one-pixel Dice 0.873 +- 0.022 with the
default `segment` (experiments/results/retina.md).
"""

from cuts_jax import defaults


def get_config(model_preset: str = "paper"):
  config = defaults.get_config(model_preset=model_preset)
  config.data.kind = "retina"
  config.data.root = ""  # Set with --config.data.root=/path/to/retina_ga.
  config.training.crop_size = 64  # Random 64x64 crops: ~4x cheaper steps on CPU.
  config.training.num_steps = 300  # Dice levels off after ~300 steps (100: 0.72, 300: 0.75).
  config.training.log_every = 25
  config.training.checkpoint_every = 100
  return config
