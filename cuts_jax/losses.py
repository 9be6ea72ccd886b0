"""The CUTS losses as pure functions, and the objective that composes them: `cuts_loss`.

InfoNCE (the paper's equation, section III.A.b): for an anchor embedding a,
one kept positive p and the anchor's kept negatives n_1..n_K,

    l(a, p) = -log( e^{cos(a, p)/tau} / (e^{cos(a, p)/tau} + sum_k e^{cos(a, n_k)/tau}) ),

one term per kept positive. Reconstruction (section III.A.c): the squared
error between an anchor's patch and the head's rebuild of it, averaged over
the patch's P * P * C values (`reconstruction_reduction="mean"`, the default)
or summed over them, the squared norm ||x - f_r(e)||^2 the paper writes
(`"sum"`, the paper-literal setting: with lambda_r = 10 it weighs
reconstruction P * P * C = 147x more than the mean).

With `reconstruction_context` = N > 0 (`config.loss`), the head also rebuilds a
coarse view of the anchor's wider N x N neighbourhood: its G x G cell means
(`sampling.context_means`, G = `reconstruction_context_cells`), appended to
the patch as one target of P * P * C + G * G * C values. The reduction treats
it as one vector: "mean" averages over all of its values (so a cell mean
weighs as much as a patch pixel, and with G = P the patch and its context
weigh the same), "sum" adds them all. Off by default: on the retina tuning part
N = 28 with G = 7 scored below the patch alone (experiments/results/tuning_network.md).

`cuts_loss` composes the objective the train step minimises from a batch's
pair selection, its embeddings and the head's reconstructions, under the
`LossSettings` (`config.loss`): lambda_c * contrastive + lambda_r * reconstruction.
The contrastive term is the paper's InfoNCE over SSIM-verified pairs
(`contrastive="info_nce"`), or the authors' published code's NT-Xent
(`"nt_xent"`, `nt_xent_per_image`): each anchor's nearest candidate positive,
the other anchors' positives of the same image as negatives, no SSIM check.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections

from cuts_jax import _validation
from cuts_jax import sampling

__all__ = ["CONTRASTIVE_TERMS", "LossSettings", "LossTerms", "RECONSTRUCTION_REDUCTIONS",
           "cosine_similarity", "cuts_loss", "info_nce_per_positive", "masked_mean",
           "nt_xent_per_image", "reconstruction_error", "total_loss"]

_MASKED_LOGIT = -1e9
CONTRASTIVE_TERMS = ("info_nce", "nt_xent")
RECONSTRUCTION_REDUCTIONS = ("mean", "sum")


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


def reconstruction_error(patches: jax.Array, reconstructions: jax.Array, *,
                         reduction: str = "mean") -> jax.Array:
  """Squared error of each patch: (..., P, P, C) twice -> (...).

  Args:
    patches: the true patches.
    reconstructions: the rebuilt ones, of the same shape.
    reduction: "mean" over the P * P * C values (the default), or "sum":
      the squared norm ||x - f_r(e)||^2 of the paper's equation.

  Example: a 1x1x2 patch (0, 0) rebuilt as (1, 1) has error 1 ("mean") or 2 ("sum").
  """
  squares = jnp.square(patches - reconstructions)
  if reduction == "sum":
    return jnp.sum(squares, axis=(-3, -2, -1))
  return jnp.mean(squares, axis=(-3, -2, -1))


def nt_xent_per_image(anchors: jax.Array, positives: jax.Array, *,
                      temperature: float = 0.5, epsilon: float = 1e-7) -> jax.Array:
  """The NT-Xent term of the authors' published code, for one image's anchors.

  With s_ij the cosine similarity of anchor i and anchor j's positive, the
  positives on the diagonal and every other pair a negative (the other
  anchors' positives in the same image):

      -log( sum_i e^{s_ii/tau} / (sum_{i != j} e^{s_ij/tau} + eps) + eps ).

  Args:
    anchors: (S, D) anchor embeddings.
    positives: (S, D) one positive per anchor.
    temperature: tau (the authors' code: 0.5).
    epsilon: the code's guard against division by and log of 0.

  Returns:
    The scalar term.

  Example: two anchors with s_11 = s_22 = 1 and s_12 = s_21 = 0 at tau = 1
  give -log(2e / (2 + eps) + eps) ~ -1.
  """
  logits = cosine_similarity(anchors[:, None, :], positives[None, :, :]) / temperature
  diagonal = jnp.eye(anchors.shape[0], dtype=bool)
  numerator = jnp.sum(jnp.where(diagonal, jnp.exp(logits), 0.0))
  denominator = jnp.sum(jnp.where(diagonal, 0.0, jnp.exp(logits)))
  return -jnp.log(numerator / (denominator + epsilon) + epsilon)


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


@dataclasses.dataclass(frozen=True)
class LossSettings:
  """The objective's settings (`config.loss`), checked when built; hashable, so a jit constant.

  A further choice of the objective is a field here, read only by `cuts_loss`.

  Attributes:
    temperature: tau of the contrastive term (> 0; the paper's is 0.1).
    lambda_contrastive: weight of the contrastive term (>= 0; paper: 1).
    lambda_reconstruction: weight of the reconstruction term (>= 0; paper: 10).
    reconstruction_reduction: "mean" (default) or "sum" (the paper's
      squared norm) of a patch's squared errors (see `reconstruction_error`).
    contrastive: "info_nce" (the paper's, over SSIM-verified pairs) or
      "nt_xent" (the authors' code, `nt_xent_per_image`).
    reconstruction_context: side N in px of a wider window around each anchor
      whose cell means the head also rebuilds (0: off, the patch only).
    reconstruction_context_cells: cells G per side of that window's grid; N
      must be a multiple of G.

  Raises:
    ValueError: naming the `config.loss` field that cannot work.
  """

  temperature: float
  lambda_contrastive: float
  lambda_reconstruction: float
  reconstruction_reduction: str = "mean"
  contrastive: str = "info_nce"
  reconstruction_context: int = 0
  reconstruction_context_cells: int = 7

  def __post_init__(self):
    _validation.check_one_of(self.reconstruction_reduction, RECONSTRUCTION_REDUCTIONS,
                             what="config.loss.reconstruction_reduction")
    _validation.check_one_of(self.contrastive, CONTRASTIVE_TERMS, what="config.loss.contrastive")
    if not (math.isfinite(self.temperature) and self.temperature > 0):
      raise ValueError(f"config.loss.temperature is {self.temperature}; it must be a positive "
                       "number (the paper's is 0.1).")
    for field in ("lambda_contrastive", "lambda_reconstruction"):
      value = getattr(self, field)
      if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"config.loss.{field} is {value}; it must be a finite weight >= 0 "
                         "(0 leaves the term out).")
    context, cells = self.reconstruction_context, self.reconstruction_context_cells
    for field, value in (("reconstruction_context", context),
                         ("reconstruction_context_cells", cells)):
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"config.loss.{field} is {value!r}; it must be a whole number of "
                         "pixels (reconstruction_context) or cells, >= 0.")
    if context and (cells < 1 or context % cells):
      raise ValueError(
          f"config.loss.reconstruction_context ({context} px) must be a multiple of "
          f"config.loss.reconstruction_context_cells ({cells}), so that the window splits "
          "into equal cells; e.g. 28 with 7 cells of 4 px, or 0 to turn the context off.")

  def check_image_size(self, image_shape: tuple[int, int]) -> None:
    """Raises ValueError when (H, W) training images cannot be mirrored out to the context.

    The window reaches `reconstruction_context // 2` px beyond an anchor at the
    border; the mirrored padding needs the image to be larger than that.
    """
    half = self.reconstruction_context // 2
    if half and min(image_shape) <= half:
      raise ValueError(
          f"config.loss.reconstruction_context ({self.reconstruction_context} px) reaches "
          f"{half} px past the border, which {image_shape[0]}x{image_shape[1]} px training "
          "images (or crops) cannot mirror; use a smaller context or larger images.")

  @classmethod
  def from_config(cls, loss_config: ml_collections.ConfigDict) -> LossSettings:
    """The settings of `config.loss`; raises ValueError naming a field that cannot work."""
    return cls(**{field.name: loss_config[field.name] for field in dataclasses.fields(cls)
                  if field.name in loss_config})


class LossTerms(NamedTuple):
  """The objective and its two terms (scalars).

  Attributes:
    total: lambda_c * contrastive + lambda_r * reconstruction, what is minimised.
    contrastive: the contrastive term: InfoNCE's mean over every kept (anchor,
      positive) pair, or NT-Xent's mean over images.
    reconstruction: the anchors' patch error (mean or sum over a patch and its context
      cells when on, mean over anchors).
  """

  total: jax.Array
  contrastive: jax.Array
  reconstruction: jax.Array


def cuts_loss(pairs: sampling.PairSelection, embeddings: jax.Array,
              settings: LossSettings, *, reconstruct: Callable[[jax.Array], jax.Array],
              axis_name: Optional[str] = None, view_positives: Optional[jax.Array] = None,
              view_mask: Optional[jax.Array] = None,
              context_targets: Optional[jax.Array] = None) -> LossTerms:
  """The CUTS objective of a batch: InfoNCE over the kept pairs plus the reconstruction error.

  Args:
    pairs: the batch's `PairSelection` (a leading batch axis b on every field).
    embeddings: float32 (b, H, W, D) pixel embeddings of the images the
      pairs were chosen in.
    settings: the `LossSettings`.
    reconstruct: the reconstruction head: anchor embeddings (b, S, D) ->
      float (b, S, P, P, C) rebuilt patches (e.g. the model's `reconstruct`
      applied with the parameters being differentiated).
    axis_name: the pmap axis when the batch is split over devices: the
      contrastive mean is then over every kept pair of the global batch (see
      `masked_mean`); the caller averages the result over devices.
    view_positives: optional float32 (b, S, V, D): embeddings of each anchor's
      pixel in V augmented views (`cuts_jax.augment`), extra InfoNCE positives
      with the anchor's own negatives.
    view_mask: bool (b, S, V), which of them count (with `view_positives`).
    context_targets: optional float (b, S, G, G, C): the cell means of each
      anchor's wider window (`sampling.context_means`), rebuilt beside the
      patch; `reconstruct` then returns a pair (patches, contexts of this shape).

  Returns:
    The `LossTerms` (on this device; the caller's `pmean` makes them global).

  Example: one anchor with one kept pair, cos(a, p) = 1, cos(a, n) = 0, tau
  = 0.1, and a reconstruction error of 0.01 give, with the paper's weights,
  total = log(1 + e^-10) + 10 * 0.01.
  """
  gather = jax.vmap(sampling.pixels_at)
  anchors = gather(embeddings, pairs.anchor_rc)
  if settings.contrastive == "nt_xent":
    # The nearest candidate is a random pixel within the radius, as the authors' sampler.
    contrastive = jnp.mean(jax.vmap(functools.partial(
        nt_xent_per_image, temperature=settings.temperature))(
            anchors, gather(embeddings, pairs.positive_rc[:, :, 0])))
  else:
    positives, positive_mask = gather(embeddings, pairs.positive_rc), pairs.positive_mask
    if view_positives is not None:
      positives = jnp.concatenate([positives, view_positives], axis=2)
      positive_mask = jnp.concatenate([positive_mask, view_mask], axis=2)
    per_positive = jax.vmap(functools.partial(info_nce_per_positive,
                                              temperature=settings.temperature))(
        anchors, positives, gather(embeddings, pairs.negative_rc), pairs.negative_mask)
    contrastive = masked_mean(per_positive, positive_mask, axis_name=axis_name)
  if context_targets is None:
    reconstruction = jnp.mean(reconstruction_error(
        pairs.anchor_patches, reconstruct(anchors), reduction=settings.reconstruction_reduction))
  else:
    # One target vector of patch and context values: sum every squared error, then divide
    # by the vector's length for "mean".
    patches, contexts = reconstruct(anchors)
    squares = (reconstruction_error(pairs.anchor_patches, patches, reduction="sum")
               + reconstruction_error(context_targets, contexts, reduction="sum"))
    if settings.reconstruction_reduction == "mean":
      squares = squares / (math.prod(pairs.anchor_patches.shape[-3:])
                           + math.prod(context_targets.shape[-3:]))
    reconstruction = jnp.mean(squares)
  total = total_loss(contrastive, reconstruction,
                     lambda_contrastive=settings.lambda_contrastive,
                     lambda_reconstruction=settings.lambda_reconstruction)
  return LossTerms(total=total, contrastive=contrastive, reconstruction=reconstruction)
