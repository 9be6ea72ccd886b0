"""SSIM with the patches' own data range (`sampling.ssim_data_range="patch"`)."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from configs import tiny
from cuts_jax import sampling


def _settings(data_range):
  base = sampling.SamplingSettings.from_config(tiny.get_config().sampling)
  return dataclasses.replace(base, ssim_data_range=data_range, num_anchors=16,
                             num_positive_candidates=4, num_negative_candidates=4)


def test_patch_range_splits_what_pixel_noise_in_a_flat_region_is():
  # Left half: flat grey with noise of sd 0.01; right half: strong stripes. With the fixed
  # range two flat noisy patches are alike (SSIM ~ 0.8) and their pairs are kept; with the
  # patches' own range the noise is all their structure (SSIM ~ 0): no positive is kept there.
  rows = jnp.arange(32.0)
  stripes = 0.5 + 0.4 * jnp.sin(rows[:, None] / 1.5) * jnp.cos(rows[None, :] / 2.0)
  noise = 0.3 + 0.01 * jax.random.normal(jax.random.key(0), (32, 32))
  image = jnp.concatenate([noise[:, :16], stripes[:, 16:]], axis=1)[..., None]
  kept = {}
  for data_range in ("fixed", "patch"):
    pairs = sampling.select_pairs(jax.random.key(1), image, _settings(data_range))
    in_flat_half = pairs.anchor_rc[:, 1] < 12
    kept[data_range] = int((pairs.positive_mask.sum(-1) * in_flat_half).sum())
  assert kept["fixed"] > 0 and kept["patch"] < kept["fixed"] / 2, kept


def test_unknown_data_range_is_refused():
  with pytest.raises(ValueError, match="ssim_data_range"):
    _settings("auto")
