"""A small supervised U-Net: the reference model of the paper's Fig. 4.

The paper compares CUTS, which sees no labels, with a U-Net (Ronneberger et
al., 2015) trained on a 90/10 split of the retina GA images whose training
labels are "multiplied by a salt-and-pepper vector of 0s and 1s pulled from a
binomial with decreasing probability of a 1". This module holds that baseline:

* `UNet`: a Flax linen U-Net with one logit per pixel.
* `loss_terms`, `train_step`, `predict`: the pure, jit-compiled core.
* `fit`: the host-side training loop that ties them together.
* `corrupt_labels` and `held_out_splits`: the label noise and the
  train/held-out splits of the experiment (host-side numpy).

    state = supervised_unet.fit(key, images, targets, weights, num_steps=300)
    probabilities = supervised_unet.predict(state, held_out_images)   # (B, H, W) in [0, 1]
"""

from __future__ import annotations

import functools
import time
from typing import Sequence

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cuts_jax import _validation
from cuts_jax import batches
from cuts_jax.evaluation import metrics as metrics_lib
from cuts_jax.runs import periodic
from cuts_jax.step import TrainState

__all__ = ["NOISE_MODES", "ConvBlock", "UNet", "augment", "corrupt_labels", "create_train_state",
           "fit", "held_out_dice", "held_out_splits", "loss_terms", "predict", "train_step"]

NOISE_MODES = ("multiply", "drop")


class ConvBlock(nn.Module):
  """Two 3x3 convolutions, each followed by batch norm and ReLU."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for _ in range(2):
      # The bias would be cancelled by the batch norm's mean subtraction.
      x = nn.Conv(self.features, (3, 3), use_bias=False)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
      x = nn.relu(x)
    return x


class UNet(nn.Module):
  """A U-Net for binary segmentation.

  Each level but the last is a `ConvBlock` whose output is kept as a skip
  connection, then a 2x2 max-pool; the last level is the bottleneck. The
  decoder goes back up with 2x2 stride-2 transposed convolutions, concatenates
  the skip of the same resolution and applies a `ConvBlock`. A 1x1 convolution
  gives one logit per pixel.

  Attributes:
    features: filters per level from full resolution down; the last entry is
      the bottleneck. Image sides must be divisible by 2 ** (len - 1).
  """

  features: Sequence[int] = (16, 32, 64, 128)

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    """(B, H, W, C) float32 -> logits float32 (B, H, W)."""
    factor = 2 ** (len(self.features) - 1)
    if images.shape[1] % factor or images.shape[2] % factor:
      raise ValueError(f"image sides {images.shape[1:3]} must be divisible by {factor} for a "
                       f"U-Net with {len(self.features)} levels; resize or crop the images.")
    skips = []
    x = images
    for features in self.features[:-1]:
      x = ConvBlock(features)(x, train=train)
      skips.append(x)
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = ConvBlock(self.features[-1])(x, train=train)
    for features, skip in zip(reversed(self.features[:-1]), reversed(skips)):
      x = nn.ConvTranspose(features, (2, 2), strides=(2, 2))(x)
      x = ConvBlock(features)(jnp.concatenate([x, skip], axis=-1), train=train)
    return nn.Conv(1, (1, 1))(x)[..., 0].astype(jnp.float32)


def create_train_state(key: jax.Array, *, image_shape: tuple[int, int, int],
                       features: Sequence[int] = (16, 32, 64, 128),
                       learning_rate: float = 1e-3, num_steps: int = 1000) -> TrainState:
  """A freshly initialised U-Net with Adam and a cosine-decayed learning rate.

  Args:
    key: PRNG key for the initial weights.
    image_shape: (H, W, C) of the images it will be trained on.
    features: see `UNet.features`.
    learning_rate: Adam's peak learning rate.
    num_steps: length of the cosine decay (to 5% of the peak).
  """
  init, apply_fn = _model_functions(tuple(int(f) for f in features))
  variables = init(_initialisation_key(key),
                   jnp.zeros((1,) + tuple(image_shape), jnp.float32))
  return TrainState.create(apply_fn=apply_fn, params=variables["params"],
                           batch_stats=variables["batch_stats"],
                           tx=_optimizer(float(learning_rate), int(num_steps)))


# The model's functions and the optimizer are static parts of the state: the
# same objects for the same settings let `train_step` and `predict` reuse
# their compilation from one run to the next (a fresh closure would cost a
# recompilation of tens of seconds per run on CPU).
@functools.lru_cache(maxsize=16)
def _model_functions(features: tuple[int, ...]):
  """(jitted init, apply) of a `UNet` with these features."""
  model = UNet(features=features)
  return jax.jit(functools.partial(model.init, train=False)), model.apply


@functools.lru_cache(maxsize=16)
def _optimizer(learning_rate: float, num_steps: int) -> optax.GradientTransformation:
  schedule = optax.cosine_decay_schedule(learning_rate, max(num_steps, 1), alpha=0.05)
  return optax.adam(schedule)


def _initialisation_key(key: jax.Array) -> jax.Array:
  """An RBG-generator key made of `key`'s bits, for the initial weights only.

  XLA on CPU compiles threefry draws slowly, and the U-Net's initialisers
  make many; RBG's compile much faster (benchmarks/notes.md). RBG's numbers
  may differ between backends, which does not matter for initial weights.
  """
  bits = jnp.ravel(jax.random.key_data(key)).astype(jnp.uint32)
  return jax.random.wrap_key_data(jnp.resize(bits, (4,)), impl="rbg")


def loss_terms(logits: jax.Array, targets: jax.Array, weights: jax.Array, *,
               smooth: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """Masked binary cross-entropy and soft-Dice loss of a batch.

  Only pixels with weight 1 (those that carry a label) contribute to either
  term. The soft Dice is pooled over the whole batch rather than averaged per
  image, so an image with little or no foreground cannot dominate it.

  Args:
    logits: float32 (B, H, W), one logit per pixel.
    targets: float32 (B, H, W) in {0, 1}.
    weights: float32 (B, H, W) in {0, 1}; 0 marks an unlabelled pixel.
    smooth: added to the Dice numerator and denominator, so an empty target
      with an empty prediction scores 1 and the ratio is never 0/0.

  Returns:
    (bce, soft_dice_loss): scalars; mean per-pixel sigmoid cross-entropy over
    the labelled pixels, and 1 - soft Dice.

  Example: logits 0 everywhere (probability 0.5) give bce = log 2 = 0.693.
  """
  labelled = jnp.maximum(jnp.sum(weights), 1.0)
  bce = jnp.sum(weights * optax.sigmoid_binary_cross_entropy(logits, targets)) / labelled
  probabilities = jax.nn.sigmoid(logits)
  overlap = jnp.sum(weights * probabilities * targets)
  total = jnp.sum(weights * probabilities) + jnp.sum(weights * targets)
  return bce, 1.0 - (2.0 * overlap + smooth) / (total + smooth)


def augment(key: jax.Array, image: jax.Array, target: jax.Array, weight: jax.Array, *,
            crop_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One random crop and random flips, the same for an image and its labels.

  Args:
    key: PRNG key.
    image: float32 (H, W, C); target, weight: float32 (H, W).
    crop_size: side of the square crop; 0 keeps the whole image.

  Returns:
    image (h, w, C), target (h, w), weight (h, w) with h = w = crop_size (or
    H, W without cropping).
  """
  stacked = jnp.concatenate([image, target[..., None], weight[..., None]], axis=-1)
  crop_key, vertical_key, horizontal_key = jax.random.split(key, 3)
  if crop_size:
    height, width, channels = stacked.shape
    top_key, left_key = jax.random.split(crop_key)
    top = jax.random.randint(top_key, (), 0, height - crop_size + 1)
    left = jax.random.randint(left_key, (), 0, width - crop_size + 1)
    stacked = jax.lax.dynamic_slice(stacked, (top, left, 0), (crop_size, crop_size, channels))
  # Fundus photographs come from left and right eyes, so mirrored images are realistic.
  stacked = jnp.where(jax.random.bernoulli(vertical_key), stacked[::-1], stacked)
  stacked = jnp.where(jax.random.bernoulli(horizontal_key), stacked[:, ::-1], stacked)
  return stacked[..., :-2], stacked[..., -2], stacked[..., -1]


@functools.partial(jax.jit, static_argnames=("crop_size", "dice_weight"), donate_argnums=(0,))
def train_step(state: TrainState, batch: dict[str, jax.Array], key: jax.Array, *,
               crop_size: int = 0,
               dice_weight: float = 1.0) -> tuple[TrainState, dict[str, jax.Array]]:
  """One Adam update on a batch; pure and jit-compiled.

  Args:
    state: the training state (donated: do not reuse the old one).
    batch: "images" float32 (B, H, W, C) in [0, 1]; "targets" float32
      (B, H, W) in {0, 1}; "weights" float32 (B, H, W), 1 where a pixel has a
      label and 0 where it has none.
    key: the run's base key; each step folds in its step number, so a run's
      augmentations depend only on (key, step).
    crop_size: train on a random square crop of this side (0: whole images).
    dice_weight: weight of the soft-Dice term added to the cross-entropy.

  Returns:
    The new state and metrics "loss", "bce", "dice_loss" (scalars).
  """
  step_key = jax.random.fold_in(key, state.step)
  keys = jax.random.split(step_key, batch["images"].shape[0])
  images, targets, weights = jax.vmap(functools.partial(augment, crop_size=crop_size))(
      keys, batch["images"], batch["targets"], batch["weights"])

  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, images, train=True,
        mutable=["batch_stats"])
    bce, dice_loss = loss_terms(logits, targets, weights)
    return bce + dice_weight * dice_loss, (updates["batch_stats"], bce, dice_loss)

  (loss, (batch_stats, bce, dice_loss)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, {"loss": loss, "bce": bce, "dice_loss": dice_loss}


@jax.jit
def predict(state: TrainState, images: jax.Array) -> jax.Array:
  """Foreground probabilities float32 (B, H, W) of images float32 (B, H, W, C).

  Uses the batch-norm running statistics (inference mode). Threshold at 0.5
  (host-side) for a binary mask.
  """
  logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                          images, train=False)
  return jax.nn.sigmoid(logits)


def fit(key: jax.Array, images: np.ndarray, targets: np.ndarray, weights: np.ndarray, *,
        num_steps: int = 300, batch_size: int = 8, features: Sequence[int] = (16, 32, 64, 128),
        learning_rate: float = 1e-3, crop_size: int = 0, dice_weight: float = 1.0,
        log_every: int = 0) -> TrainState:
  """Trains a U-Net from scratch on labelled images.

  Batches are drawn host-side in a fresh shuffled order each epoch
  (`cuts_jax.batches.batch_indices`); crops and flips are drawn inside the step.

  Args:
    key: the run's PRNG key (initial weights, batch order, augmentations).
    images: float32 (N, H, W, C) in [0, 1].
    targets: (N, H, W) in {0, 1}, any numeric dtype.
    weights: (N, H, W) in {0, 1}; 0 marks a pixel with no label.
    num_steps: number of updates.
    batch_size: images per update.
    features: see `UNet.features`.
    learning_rate: Adam's peak learning rate (cosine decay over the run).
    crop_size: train on random square crops of this side (0: whole images);
      must be divisible by 2 ** (len(features) - 1).
    dice_weight: weight of the soft-Dice term.
    log_every: log the loss every this many steps (0: only at the end).

  Returns:
    The trained state.

  Raises:
    ValueError: when the shapes disagree or the loss becomes non-finite.
  """
  images = _validation.check_batch(np.asarray(images, np.float32))
  targets = np.asarray(targets, np.float32)
  weights = np.asarray(weights, np.float32)
  for name, values in (("targets", targets), ("weights", weights)):
    _validation.check_same_shape(values.shape, images.shape[:3],
                                 names=(name, "the images' (N, H, W)"),
                                 hint=" One label and one weight per pixel.")
  if crop_size and crop_size > min(images.shape[1:3]):
    raise ValueError(f"crop_size {crop_size} exceeds the images' sides {images.shape[1:3]}.")
  init_key, order_key, step_key = jax.random.split(key, 3)
  image_shape = (crop_size, crop_size, images.shape[-1]) if crop_size else images.shape[1:]
  state = create_train_state(init_key, image_shape=image_shape, features=features,
                             learning_rate=learning_rate, num_steps=num_steps)
  order_seed = int(jax.random.randint(order_key, (), 0, 2**31 - 1))
  tick = time.perf_counter()
  for step in range(1, num_steps + 1):
    indices = batches.batch_indices(step - 1, batch_size, len(images), order_seed)
    batch = {"images": images[indices], "targets": targets[indices],
             "weights": weights[indices]}
    state, metrics = train_step(state, batch, step_key, crop_size=crop_size,
                                dice_weight=dice_weight)
    if periodic.is_due(step, log_every, last_step=num_steps):
      values = {name: float(value) for name, value in metrics.items()}
      if not all(np.isfinite(list(values.values()))):
        raise ValueError(f"the U-Net's loss became non-finite at step {step} ({values}); "
                         "lower the learning rate.")
      logging.info("U-Net step %d/%d  loss %.4f (bce %.4f, dice %.4f)  %.2f steps/s", step,
                   num_steps, values["loss"], values["bce"], values["dice_loss"],
                   step / max(time.perf_counter() - tick, 1e-9))
  return state


def corrupt_labels(rng: np.random.Generator, masks: np.ndarray, p: float, *,
                   mode: str = "multiply") -> tuple[np.ndarray, np.ndarray]:
  """The paper's label noise: a Bernoulli(p) salt-and-pepper mask.

  Drawn once per training run (fixed for the whole run; drawing it anew each
  step would eventually show the network every label).

  Args:
    rng: numpy random generator.
    masks: (N, H, W) binary masks, nonzero is foreground.
    p: probability that a pixel's keep bit is 1, in [0, 1].
    mode: "multiply" (the paper's literal wording, the default): targets =
      masks * keep, every pixel stays labelled, so dropped foreground pixels
      become background labels (false negatives); a fraction ~p of the
      foreground survives and the background is untouched. "drop" (sparse
      supervision): targets = masks, and only pixels whose keep bit is 1 are
      labelled (weight 1); the others are left out of the loss.

  Returns:
    (targets, weights): float32 (N, H, W) each, values in {0, 1}.
  """
  _validation.check_one_of(mode, NOISE_MODES, what="mode")
  if not 0.0 <= p <= 1.0:
    raise ValueError(f"p is a probability and must lie in [0, 1], got {p}.")
  masks = (np.asarray(masks) != 0).astype(np.float32)
  keep = (rng.random(masks.shape) < p).astype(np.float32)
  if mode == "multiply":
    return masks * keep, np.ones_like(masks)
  return masks, keep


def held_out_splits(num_examples: int, *, num_splits: int = 1, held_out_fraction: float = 0.1,
                    seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
  """Deterministic train / held-out splits with disjoint held-out sets.

  The examples are shuffled once by `seed`; split i holds out the i-th block
  of round(held_out_fraction * num_examples) (at least 1) examples of that
  order and trains on the rest. Held-out sets of different splits never
  overlap, so averaging over splits scores more distinct images (a partial
  k-fold cross-validation).

  Args:
    num_examples: size of the data set.
    num_splits: how many splits, at most num_examples // held-out size.
    held_out_fraction: fraction held out by each split, in (0, 1).
    seed: shuffling seed; the same seed gives the same splits.

  Returns:
    num_splits pairs (train_indices, held_out_indices), sorted int64 arrays.
  """
  if not 0.0 < held_out_fraction < 1.0:
    raise ValueError(f"held_out_fraction must lie in (0, 1), got {held_out_fraction}.")
  held_out = max(1, int(round(held_out_fraction * num_examples)))
  if held_out >= num_examples:
    raise ValueError(f"{num_examples} examples are too few to hold out {held_out} and train "
                     "on the rest.")
  if not 1 <= num_splits <= num_examples // held_out:
    raise ValueError(f"num_splits must be between 1 and {num_examples // held_out} (disjoint "
                     f"held-out sets of {held_out} out of {num_examples}), got {num_splits}.")
  order = np.random.default_rng(seed).permutation(num_examples)
  splits = []
  for index in range(num_splits):
    test = order[index * held_out:(index + 1) * held_out]
    splits.append((np.sort(np.setdiff1d(order, test)), np.sort(test)))
  return splits


def held_out_dice(state: TrainState, images: np.ndarray, masks: np.ndarray, *,
                  threshold: float = 0.5, batch_size: int = 8) -> np.ndarray:
  """Per-image Dice float64 (N,) of the thresholded prediction against masks (N, H, W)."""
  scores = []
  for start in range(0, len(images), batch_size):
    probabilities = np.asarray(predict(state, jnp.asarray(images[start:start + batch_size])))
    scores += [metrics_lib.dice(p > threshold, m)
               for p, m in zip(probabilities, masks[start:start + batch_size])]
  return np.asarray(scores)
