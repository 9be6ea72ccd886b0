"""A config that trains in seconds on a CPU, for tests and smoke runs.

    python -m cuts_jax.main --config=configs/tiny.py --workdir=/tmp/cuts_tiny

Small images from scikit-image's samples, a two-layer encoder and a few steps:
about 10 s on a 2-core CPU including compilation. It checks that everything
runs, not that segments are good.
"""

from cuts_jax import defaults


def get_config(model_preset: str = "paper"):
  config = defaults.get_config(model_preset=model_preset)
  config.data.kind = "demo"
  config.data.image_size = (32, 32)
  config.data.limit = 4
  config.model.kernel_sizes = (5, 3)
  config.model.features = (8, 16)
  config.model.embedding_dim = 16
  config.sampling.patch_size = 5
  config.sampling.ssim_filter_size = 5
  config.sampling.num_anchors = 8
  config.sampling.num_positive_candidates = 4
  config.sampling.num_negative_candidates = 4
  config.sampling.negative_min_distance = 8.0
  config.optim.warmup_steps = 1
  config.training.batch_size = 4
  config.training.num_steps = 4
  config.training.log_every = 2
  config.training.checkpoint_every = 2
  config.training.keep_checkpoints = 2
  config.training.num_figure_images = 0
  # Four levels in a scale stack and in the oracle's choice rather than k = 2..15: a stack
  # costs one clustering per level, and this config only checks that everything runs.
  config.evaluation.scale_num_clusters = (2, 4, 6, 8)
  config.evaluation.oracle_num_clusters = (2, 4, 6, 8)
  return config
