"""The CUTS losses as pure functions.

InfoNCE (the paper's equation, section III.A.b): for an anchor embedding a,
one kept positive p and the anchor's kept negatives n_1..n_K,

    l(a, p) = -log( e^{cos(a, p)/tau} / (e^{cos(a, p)/tau} + sum_k e^{cos(a, n_k)/tau}) ),

one term per kept positive. Reconstruction (section III.A.c): the squared
error between an anchor's patch and the head's rebuild of it, averaged over
the patch's P * P * C values.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

__all__ = ["cosine_similarity", "info_nce_per_positive", "masked_mean", "reconstruction_error",
           "total_loss"]

_MASKED_LOGIT = -1e9


def cosine_similarity(a: jax.Array, b: jax.Array, *, epsilon: float = 1e-8) -> jax.Array:
  """Cosine similarity along the last axis (broadcasting the others)."""
  a_norm = jnp.sqrt(jnp.sum(a * a, axis=-1) + epsilon**2)
  b_norm = jnp.sqrt(jnp.sum(b * b, axis=-1) + epsilon**2)
  return jnp.sum(a * b, axis=-1) / (a_norm * b_norm)


def info_nce_per_positive(anchors: jax.Array, positives: jax.Array, negatives: jax.Array,
                          negative_mask: jax.Array, *, temperature: float = 0.1) -> jax.Array:
  """The InfoNCE term of every (anchor, positive) pair.

  Args:
    anchors: (S, D) anchor embeddings.
    positives: (S, Kp, D) positive embeddings.
    negatives: (S, Kn, D) negative embeddings.
    negative_mask: bool (S, Kn); False negatives are left out of the sum.
    temperature: tau.

  Returns:
    (S, Kp) loss of each pair. Entries for positives that are not kept must be
    masked by the caller (see `masked_mean`).

  Example: with one negative, cos(a, p) = 1 and cos(a, n) = 0 at tau = 0.1 the
  term is -log(e^10 / (e^10 + e^0)) = log(1 + e^-10).
  """
  positive_logits = cosine_similarity(anchors[:, None, :], positives) / temperature
  negative_logits = cosine_similarity(anchors[:, None, :], negatives) / temperature
  # A large finite value rather than -inf keeps gradients finite when an
  # anchor has no kept negative (its positives are masked out anyway).
  negative_logits = jnp.where(negative_mask, negative_logits, _MASKED_LOGIT)
  negatives_logsumexp = jax.nn.logsumexp(negative_logits, axis=-1, keepdims=True)
  # -log(e^p / (e^p + e^lse)) = log(1 + e^(lse - p)); softplus keeps the
  # precision that subtracting two large logarithms would lose.
  return jax.nn.softplus(negatives_logsumexp - positive_logits)


def reconstruction_error(patches: jax.Array, reconstructions: jax.Array) -> jax.Array:
  """Mean squared error of each patch: (..., P, P, C) twice -> (...)."""
  return jnp.mean(jnp.square(patches - reconstructions), axis=(-3, -2, -1))


def masked_mean(values: jax.Array, mask: jax.Array, *,
                axis_name: Optional[str] = None) -> jax.Array:
  """Mean of `values` where `mask` is True; 0 when nothing is masked in.

  With `axis_name` (inside `pmap`), the count is summed over all devices and
  the result scaled by the number of devices, so that the `pmean` of the
  per-device results (and of their gradients) is the exact mean over the
  global batch, however unevenly the kept entries fall on the devices.
  """
  total = jnp.sum(jnp.where(mask, values, 0.0))
  count = jnp.sum(mask.astype(values.dtype))
  if axis_name is not None:
    count = jax.lax.psum(count, axis_name) / jax.lax.psum(1, axis_name)
  # Masks never depend on the parameters; the count is a constant for autodiff.
  count = jax.lax.stop_gradient(count)
  return total / jnp.maximum(count, 1.0)


def total_loss(contrastive: jax.Array, reconstruction: jax.Array, *,
               lambda_contrastive: float = 1.0, lambda_reconstruction: float = 10.0,
               ) -> jax.Array:
  """lambda_c * contrastive + lambda_r * reconstruction (paper: 1 and 10)."""
  return lambda_contrastive * contrastive + lambda_reconstruction * reconstruction
