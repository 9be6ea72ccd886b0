"""cuts_jax: CUTS (Contrastive and Unsupervised Training for Segmentation) in JAX/Flax.

    params = cuts_jax.load(workdir)          # after python -m cuts_jax.main ...
    labels = cuts_jax.segment(params, image) # int32 (H, W), up to 10 segments
    mask = cuts_jax.select(labels, (row, col))
"""

from cuts_jax.segmentation import embed
from cuts_jax.segmentation import segment
from cuts_jax.segmentation import SegmentationParams
from cuts_jax.segmentation import select
from cuts_jax.train import train_and_evaluate
from cuts_jax.trained import load

__all__ = ["SegmentationParams", "embed", "load", "segment", "select", "train_and_evaluate"]
__version__ = "0.1.0"
