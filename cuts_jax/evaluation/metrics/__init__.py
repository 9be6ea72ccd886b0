"""Evaluation metrics: host-side numpy/scipy, never run inside `jit`.

Four families, each with its protocol stated in the function's docstring, in
a private module by concern:

* Overlap with an expert mask (retina GA, MRI ventricles; paper section III.B):
  `dice`, and the protocols that turn an integer label map into one binary
  prediction: `one_pixel_selection` (the paper's: the segment under the
  expert region's `centre_pixel`) and `majority_selection` (optimistic).
* Boundary distances of 2-D or 3-D masks: `hausdorff`, `hd95` and
  `mean_surface_distance`, in pixels, or with `spacing=` in physical units
  (e.g. mm). These two families compare masks (`_masks`).
* Within-segment patch similarity (paper Tables I, II and V):
  `segment_patch_similarity`, built on `sample_patches` and
  `pairwise_patch_measures` (SSIM, ERGAS, RMSE of every pair of patches;
  `_patches`).
* BSDS500 region benchmarks (Arbelaez et al., 2011):
  `probabilistic_rand_index`, `variation_of_information`,
  `segmentation_covering`, with `upsample_labels` to bring a prediction to
  the humans' resolution (`_partitions`).

Masks are "foreground = nonzero"; label maps are integer (H, W) arrays whose
values are segment ids (any values, not necessarily 0..K-1). `dice`, the
boundary distances and `centre_pixel` also take 3-D volumes.
"""

from cuts_jax.evaluation.metrics._masks import centre_pixel
from cuts_jax.evaluation.metrics._masks import dice
from cuts_jax.evaluation.metrics._masks import dice_majority
from cuts_jax.evaluation.metrics._masks import dice_one_pixel
from cuts_jax.evaluation.metrics._masks import hausdorff
from cuts_jax.evaluation.metrics._masks import hd95
from cuts_jax.evaluation.metrics._masks import majority_selection
from cuts_jax.evaluation.metrics._masks import mean_surface_distance
from cuts_jax.evaluation.metrics._masks import one_pixel_selection
from cuts_jax.evaluation.metrics._partitions import HumanSegmentations
from cuts_jax.evaluation.metrics._partitions import probabilistic_rand_index
from cuts_jax.evaluation.metrics._partitions import segmentation_covering
from cuts_jax.evaluation.metrics._partitions import upsample_labels
from cuts_jax.evaluation.metrics._partitions import variation_of_information
from cuts_jax.evaluation.metrics._patches import ERGAS_EPSILON
from cuts_jax.evaluation.metrics._patches import pairwise_patch_measures
from cuts_jax.evaluation.metrics._patches import sample_patches
from cuts_jax.evaluation.metrics._patches import segment_patch_similarity

__all__ = ["ERGAS_EPSILON", "HumanSegmentations", "centre_pixel", "dice", "dice_majority",
           "dice_one_pixel", "hausdorff", "hd95", "majority_selection", "mean_surface_distance",
           "one_pixel_selection", "pairwise_patch_measures", "probabilistic_rand_index",
           "sample_patches", "segment_patch_similarity", "segmentation_covering",
           "upsample_labels", "variation_of_information"]
