"""CUTS on brain MRI slices, evaluated on the ventricles (paper, Tables V-VI).

CPU (about 7 min on 2 cores):

    python -m cuts_jax.main --config=configs/brain_ventricles.py --workdir=/tmp/brain \
        --config.data.root=../shared/data/brain_mri/test_scan.npz

GPU: add --config.training.crop_size=0 --config.training.num_steps=2000.
Results: experiments/results/brain.md.

The volume .npz holds `vol` (intensities) and `seg` (FreeSurfer labels).
Training uses every slice along `data.axis` (choosing slices by their labels would
let the labels into training); the ventricle labels form the evaluation target,
scored on the slices that cross the ventricles (`experiments/run_cuts.py` sets
`data.min_target_pixels=1` for the evaluation).
"""

from cuts_jax import defaults

# FreeSurfer ids: lateral ventricles (4, 43), inferior lateral ventricles (5, 44),
# 3rd ventricle (14), 4th ventricle (15).
VENTRICLE_LABELS = (4, 43, 5, 44, 14, 15)


def get_config(model_preset: str = "paper"):
  config = defaults.get_config(model_preset=model_preset)
  config.data.kind = "volume"
  config.data.root = ""  # Set with --config.data.root=/path/to/volume.npz.
  config.data.axis = 0
  config.data.label_ids = VENTRICLE_LABELS
  config.data.min_target_pixels = 0  # Train on every slice; labels never pick them.
  config.training.crop_size = 64
  config.training.num_steps = 300
  config.training.log_every = 25
  config.training.checkpoint_every = 100
  return config
