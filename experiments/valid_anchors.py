"""Fraction of anchors that find a verified positive and negative at the default thresholds.

    python experiments/valid_anchors.py      # about 1 min on 2 CPU cores

Runs `cuts_jax.sampling.select_pairs` (jit + vmap, as in the train step) on every retina and
BSDS500 image of ../shared/data at 128x128, three draws each, with cuts_jax.defaults'
sampling settings, and prints the mean fraction, the lowest image's fraction and the mean
number of kept positives per anchor.
"""

import functools
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from cuts_jax import defaults
from cuts_jax import sampling
from cuts_jax.io import datasets as data

SHARED = REPO_ROOT.parent / "shared" / "data"
BATCH = 32
DRAWS = 3


def main() -> None:
  config = defaults.get_config()
  settings = sampling.SamplingSettings.from_config(config.sampling)
  select = jax.jit(jax.vmap(functools.partial(sampling.select_pairs, settings=settings)))
  for kind, root in (("retina", SHARED / "retina_ga"), ("bsds500", SHARED / "bsds500")):
    data_config = defaults.get_config().data
    data_config.kind, data_config.root = kind, str(root)
    images = data.load_dataset(data_config).images
    fractions, positives = [], []
    for draw in range(DRAWS):
      for start in range(0, len(images), BATCH):
        batch = jax.numpy.asarray(images[start:start + BATCH])
        keys = jax.random.split(jax.random.key(draw * 1000 + start), len(batch))
        pairs = select(keys, batch)
        fractions.append(np.asarray(pairs.valid_anchor).mean(axis=1))
        positives.append(np.asarray(pairs.positive_mask).sum(-1).mean(axis=1))
    fraction, kept = np.concatenate(fractions), np.concatenate(positives)
    print(f"{kind}: {len(images)} images x {DRAWS} draws, valid anchor fraction "
          f"{fraction.mean():.3f} (lowest image {fraction.min():.3f}), kept positives per "
          f"anchor {kept.mean():.2f}")


if __name__ == "__main__":
  main()
