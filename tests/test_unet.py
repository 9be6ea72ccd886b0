"""Tests of the supervised U-Net baseline (cuts_jax.unet): model, loss, training, noise, splits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cuts_jax.evaluation import supervised_unet as unet

TINY_FEATURES = (4, 8)


def _squares(rng: np.random.Generator, count: int, size: int = 32):
  """Bright squares of random place and side on a dark, noisy background."""
  images = rng.normal(0.2, 0.05, (count, size, size, 3)).astype(np.float32)
  masks = np.zeros((count, size, size), np.uint8)
  for index in range(count):
    side = rng.integers(8, 16)
    top, left = rng.integers(0, size - side, 2)
    masks[index, top:top + side, left:left + side] = 1
  images[masks == 1] += 0.6
  return np.clip(images, 0.0, 1.0), masks


def test_unet_shapes_and_probabilities():
  # The shapes of the training test below, so the compilations are shared.
  state = unet.create_train_state(jax.random.key(0), image_shape=(32, 32, 3),
                                  features=TINY_FEATURES)
  assert state.params["Conv_0"]["kernel"].shape == (1, 1, TINY_FEATURES[0], 1)
  images = jnp.asarray(np.random.default_rng(0).random((4, 32, 32, 3)), jnp.float32)
  probabilities = unet.predict(state, images)
  assert probabilities.shape == (4, 32, 32) and probabilities.dtype == jnp.float32
  assert bool(jnp.all((probabilities >= 0) & (probabilities <= 1)))


def test_unet_refuses_sides_the_pooling_cannot_halve():
  model = unet.UNet(features=(4, 8, 16))
  with pytest.raises(ValueError, match="divisible by 4"):
    model.init(jax.random.key(0), jnp.zeros((1, 30, 32, 3)), train=False)


def test_loss_terms_match_hand_computed_values():
  logits = jnp.zeros((1, 2, 2))  # Probability 0.5 everywhere.
  targets = jnp.array([[[1.0, 0.0], [0.0, 0.0]]])
  bce, dice_loss = unet.loss_terms(logits, targets, jnp.ones((1, 2, 2)))
  assert float(bce) == pytest.approx(np.log(2.0), rel=1e-6)
  # Overlap 0.5, |P| + |T| = 2 + 1: soft Dice (2 * 0.5 + 1) / (3 + 1) = 0.5.
  assert float(dice_loss) == pytest.approx(0.5, rel=1e-6)


def test_loss_terms_ignore_unlabelled_pixels():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(2, 8, 8)), jnp.float32)
  targets = jnp.asarray(rng.random((2, 8, 8)) < 0.3, jnp.float32)
  weights = jnp.asarray(rng.random((2, 8, 8)) < 0.5, jnp.float32)
  flipped = jnp.where(weights == 0, 1.0 - targets, targets)
  assert np.allclose(unet.loss_terms(logits, targets, weights),
                     unet.loss_terms(logits, flipped, weights))


def test_augment_keeps_image_and_labels_aligned():
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.random((32, 32)) < 0.5, jnp.float32)
  image = jnp.stack([target, 1.0 - target, jnp.zeros_like(target)], axis=-1)
  for seed in range(4):
    crop, crop_target, crop_weight = unet.augment(jax.random.key(seed), image, target,
                                                  target * 2.0, crop_size=16)
    assert crop.shape == (16, 16, 3) and crop_target.shape == (16, 16)
    assert np.array_equal(crop[..., 0], crop_target)
    assert np.array_equal(crop_weight, 2.0 * crop_target)


def test_training_learns_bright_squares():
  images, masks = _squares(np.random.default_rng(0), 20)
  train_images, train_masks = images[:16], masks[:16]
  test_images, test_masks = images[16:], masks[16:]
  key = jax.random.key(0)
  targets, weights = unet.corrupt_labels(np.random.default_rng(0), train_masks, 1.0)
  state = unet.fit(key, train_images, targets, weights, num_steps=60, batch_size=8,
                   features=TINY_FEATURES, learning_rate=1e-2)
  untrained = unet.create_train_state(key, image_shape=(32, 32, 3), features=TINY_FEATURES)

  def held_out_loss(state):
    logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                            test_images, train=False)
    bce, dice_loss = unet.loss_terms(logits, jnp.asarray(test_masks, jnp.float32),
                                     jnp.ones(test_masks.shape, jnp.float32))
    return float(bce + dice_loss)

  assert np.isfinite(held_out_loss(state))
  assert held_out_loss(state) < 0.8 * held_out_loss(untrained)
  assert np.mean(unet.held_out_dice(state, test_images, test_masks)) > 0.8


@pytest.mark.parametrize("p", [0.0, 0.05, 0.5, 1.0])
def test_multiply_noise_keeps_a_fraction_p_of_the_foreground(p):
  masks = np.zeros((4, 64, 64), np.uint8)
  masks[:, 8:56, 8:56] = 1  # 9216 foreground pixels.
  targets, weights = unet.corrupt_labels(np.random.default_rng(1), masks, p)
  assert targets.dtype == np.float32 and set(np.unique(targets)) <= {0.0, 1.0}
  assert np.all(weights == 1)  # Every pixel keeps a label...
  assert np.all(targets[masks == 0] == 0)  # ...the background is untouched...
  kept = targets[masks == 1].mean()  # ...and deleted foreground becomes background.
  assert kept == pytest.approx(p, abs=0.02)


def test_drop_noise_labels_a_fraction_p_of_pixels_truthfully():
  masks = np.zeros((4, 64, 64), np.uint8)
  masks[:, :32] = 1
  targets, weights = unet.corrupt_labels(np.random.default_rng(1), masks, 0.1, mode="drop")
  assert np.array_equal(targets, masks.astype(np.float32))
  assert weights.mean() == pytest.approx(0.1, abs=0.01)


def test_label_noise_is_deterministic_and_checks_its_arguments():
  masks = np.ones((2, 16, 16), np.uint8)
  first = unet.corrupt_labels(np.random.default_rng(7), masks, 0.3)
  second = unet.corrupt_labels(np.random.default_rng(7), masks, 0.3)
  assert np.array_equal(first[0], second[0])
  with pytest.raises(ValueError, match="probability"):
    unet.corrupt_labels(np.random.default_rng(0), masks, 1.5)
  with pytest.raises(ValueError, match="mode"):
    unet.corrupt_labels(np.random.default_rng(0), masks, 0.5, mode="flip")


def test_held_out_splits_are_deterministic_disjoint_and_cover_the_set():
  splits = unet.held_out_splits(28, num_splits=9, seed=3)
  again = unet.held_out_splits(28, num_splits=9, seed=3)
  for (train, test), (train_again, test_again) in zip(splits, again):
    assert np.array_equal(train, train_again) and np.array_equal(test, test_again)
    assert len(train) == 25 and len(test) == 3
    assert not set(train) & set(test)
    assert sorted(set(train) | set(test)) == list(range(28))
  held_out = np.concatenate([test for _, test in splits])
  assert len(set(held_out)) == len(held_out) == 27  # Held-out sets never overlap.
  other = unet.held_out_splits(28, num_splits=1, seed=4)[0][1]
  assert not np.array_equal(other, splits[0][1])


def test_held_out_splits_refuse_too_many_splits():
  with pytest.raises(ValueError, match="num_splits must be between 1 and 9"):
    unet.held_out_splits(28, num_splits=10)
