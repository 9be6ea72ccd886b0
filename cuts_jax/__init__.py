"""cuts_jax: CUTS (Contrastive and Unsupervised Training for Segmentation) in JAX/Flax.

    params = cuts_jax.load(workdir)          # after python -m cuts_jax.main ...
    labels = cuts_jax.segment(params, image)             # int32 (H, W) connected segments
    mask = cuts_jax.select(labels, (row, col))           # bool (H, W): the clicked one
    stack = cuts_jax.segment_hierarchy(params, image)    # every k of 2..15, one embedding
    mask = cuts_jax.select(stack, [(r1, c1), (r2, c2)], negative=(r3, c3))  # scale per click

Every segmentation takes the model's own settings (`SegmentSettings`, from
its config) with keyword overrides, e.g. `segment(params, image,
num_clusters=6)`; `resolve_settings(params, ...)` gives the settings it runs
with, to pass on as `settings=`.

Segmenting needs only `segment`, `segment_hierarchy`, `select`, `embed`,
`ScaleStack`, `SegmentationParams`, `SegmentSettings` and `resolve_settings`,
imported with the package. `load`, `train_and_evaluate`, `segment_volume`,
`volume_stack` and `FeatureCache` bring in the training stack (optax, orbax)
and are imported when first used.

    cache = cuts_jax.FeatureCache()          # a volume's features, kept between calls
    labels = cuts_jax.segment_volume(params, volume, axis=0, spacing=(1, 1, 3), cache=cache)
    stack, kept = cuts_jax.volume_stack(params, volume, axis=0, cache=cache)  # no re-embedding
"""

import importlib

from cuts_jax.scales import ScaleStack
from cuts_jax.scales import segment_hierarchy
from cuts_jax.segmentation import SegmentationParams
from cuts_jax.segmentation import SegmentSettings
from cuts_jax.segmentation import embed
from cuts_jax.segmentation import resolve_settings
from cuts_jax.segmentation import segment
from cuts_jax.segmentation import select

__all__ = ["FeatureCache", "ScaleStack", "SegmentSettings", "SegmentationParams", "embed",
           "load", "resolve_settings", "segment", "segment_hierarchy", "segment_volume",
           "select", "train_and_evaluate", "volume_stack"]
__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "FeatureCache": "cuts_jax.volume_features",
    "load": "cuts_jax.trained",
    "segment_volume": "cuts_jax.volume",
    "train_and_evaluate": "cuts_jax.train",
    "volume_stack": "cuts_jax.volume",
}


def __getattr__(name: str):
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # Later lookups skip this function.
    return value
  raise AttributeError(f"module 'cuts_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_LAZY))
