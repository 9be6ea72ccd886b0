"""cuts_jax: CUTS (Contrastive and Unsupervised Training for Segmentation) in JAX/Flax."""

from cuts_jax.train import train_and_evaluate

__all__ = ["train_and_evaluate"]
__version__ = "0.1.0"
