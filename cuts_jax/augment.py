"""Augmented views of training images whose pixels serve as extra positives.

The paper adds augmentations so that the embedding ignores what should not split a region:
an illumination gradient, a change of contrast or gamma, a colour cast, the orientation or
the scale of a structure. Here each training image gets `num_views` random views; each view
is photometrically changed (gamma, contrast, brightness, per-channel colour shift) and
geometrically moved (a left-right flip, a 90-degree turn, a zoom about the centre). The
train step embeds the views with the same encoder, and an anchor's embedding at its own
pixel's place in each view is one more positive of that anchor (`view_positions` maps the
anchor's row and column into the view; pixels the zoom pushes out are left out).

Everything is pure JAX, per image: batch it with `jax.vmap` inside the jitted step.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from cuts_jax import _validation

__all__ = ["AugmentSettings", "ViewTransform", "random_view", "view_positions"]


@dataclasses.dataclass(frozen=True)
class AugmentSettings:
  """The views' ranges (`config.augment`), checked when built; hashable, so a jit constant.

  Attributes:
    enabled: add views' positives to the loss (False: the step is unchanged).
    num_views: views per image per step (>= 1; each costs one more encoder pass).
    brightness: an added brightness, uniform in +- this.
    contrast: a contrast factor about the image's mean, uniform in 1 +- this (< 1).
    gamma: the values are raised to exp(u), u uniform in +- this.
    colour_shift: an added shift per channel, uniform in +- this.
    flips: flip left-right with probability 1/2.
    rotations: turn by a random multiple of 90 degrees (180 only for non-square images).
    max_scale: zoom about the centre by a factor in [1 / (1 + m), 1 + m] (0: none).

  Raises:
    ValueError: naming the `config.augment` field that cannot work.
  """

  enabled: bool = False
  num_views: int = 1
  brightness: float = 0.1
  contrast: float = 0.2
  gamma: float = 0.2
  colour_shift: float = 0.05
  flips: bool = True
  rotations: bool = True
  max_scale: float = 0.1

  def __post_init__(self):
    _validation.check_positive_integers(**{"config.augment.num_views": self.num_views})
    for field in ("brightness", "contrast", "gamma", "colour_shift", "max_scale"):
      value = getattr(self, field)
      if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"config.augment.{field} is {value}; it must be a finite range >= 0 "
                         "(0: no such change).")
    if self.contrast >= 1:
      raise ValueError(f"config.augment.contrast is {self.contrast}; it must be below 1 (a "
                       "factor of 1 - contrast must stay positive).")

  @classmethod
  def from_config(cls, augment_config: ml_collections.ConfigDict | None) -> AugmentSettings:
    """The settings of `config.augment` (None or missing fields: the defaults, disabled)."""
    if augment_config is None:
      return cls()
    return cls(**{field.name: augment_config[field.name] for field in dataclasses.fields(cls)
                  if field.name in augment_config})


class ViewTransform(NamedTuple):
  """Where a view's pixels come from: zoom, then flip, then turn (scalars).

  Attributes:
    scale: zoom factor about the image centre (> 1 enlarges).
    flip: int32 1 when the zoomed image is flipped left-right, else 0.
    turns: int32 number of counter-clockwise 90-degree turns (`jnp.rot90`) after that.
  """

  scale: jax.Array
  flip: jax.Array
  turns: jax.Array


def _photometric(key: jax.Array, image: jax.Array, settings: AugmentSettings) -> jax.Array:
  gamma_key, contrast_key, brightness_key, shift_key = jax.random.split(key, 4)
  uniform = lambda k, r, shape=(): jax.random.uniform(k, shape, minval=-r, maxval=r)
  image = jnp.clip(image, 0.0, 1.0) ** jnp.exp(uniform(gamma_key, settings.gamma))
  mean = jnp.mean(image)
  image = (image - mean) * (1.0 + uniform(contrast_key, settings.contrast)) + mean
  image = image + uniform(brightness_key, settings.brightness)
  image = image + uniform(shift_key, settings.colour_shift, (image.shape[-1],))
  return jnp.clip(image, 0.0, 1.0)


def _zoom(image: jax.Array, scale: jax.Array) -> jax.Array:
  """The image zoomed about its centre, same shape, borders repeated (bilinear)."""
  height, width, _ = image.shape
  centre = jnp.array([(height - 1) / 2.0, (width - 1) / 2.0])
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                            jnp.arange(width, dtype=jnp.float32), indexing="ij")
  source_rows = centre[0] + (rows - centre[0]) / scale
  source_cols = centre[1] + (cols - centre[1]) / scale
  channel = lambda plane: jax.scipy.ndimage.map_coordinates(
      plane, [source_rows, source_cols], order=1, mode="nearest")
  return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)


def _turn(image: jax.Array, turns: jax.Array) -> jax.Array:
  if image.shape[0] != image.shape[1]:  # Turns are 0 or 2: only a half turn keeps the shape.
    return jnp.where(turns == 2, image[::-1, ::-1], image)
  return jax.lax.switch(turns, [lambda x, k=k: jnp.rot90(x, k, axes=(0, 1)) for k in range(4)],
                        image)


def random_view(key: jax.Array, image: jax.Array,
                settings: AugmentSettings) -> tuple[jax.Array, ViewTransform]:
  """One augmented view of an (H, W, C) image in [0, 1] and the transform that made it.

  Args:
    key: PRNG key.
    image: float (H, W, C) in [0, 1].
    settings: the `AugmentSettings` (static).

  Returns:
    (view, transform): float (H, W, C) in [0, 1], and the `ViewTransform`
    (its geometry; pass it to `view_positions`).
  """
  photo_key, scale_key, flip_key, turn_key = jax.random.split(key, 4)
  log_range = math.log1p(settings.max_scale)
  scale = jnp.exp(jax.random.uniform(scale_key, (), minval=-log_range, maxval=log_range))
  flip = (jax.random.bernoulli(flip_key) & settings.flips).astype(jnp.int32)
  square = image.shape[0] == image.shape[1]
  turns = jax.random.randint(turn_key, (), 0, 4 if square else 2) * (1 if square else 2)
  turns = turns * int(settings.rotations)
  view = _photometric(photo_key, image, settings)
  if settings.max_scale:
    view = _zoom(view, scale)
  view = jnp.where(flip == 1, view[:, ::-1], view)
  if settings.rotations:
    view = _turn(view, turns)
  return view, ViewTransform(scale=scale, flip=flip, turns=turns)


def view_positions(rows_cols: jax.Array, transform: ViewTransform,
                   image_shape: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
  """Where pixels of the image land in its view.

  Args:
    rows_cols: int (..., 2) pixels of the (H, W) image.
    transform: the view's `ViewTransform`.
    image_shape: (H, W).

  Returns:
    (int32 (..., 2) positions in the view, bool (...) True where the pixel
    is inside the view; outside positions are clipped to the border).
  """
  height, width = image_shape
  centre = jnp.array([(height - 1) / 2.0, (width - 1) / 2.0])
  zoomed = jnp.round(centre + (rows_cols - centre) * transform.scale).astype(jnp.int32)
  inside = jnp.all((zoomed >= 0) & (zoomed < jnp.array([height, width])), axis=-1)
  rows, cols = zoomed[..., 0], zoomed[..., 1]
  cols = jnp.where(transform.flip == 1, width - 1 - cols, cols)
  if height != width:  # A half turn at most (see random_view).
    rows, cols = (jnp.where(transform.turns == 2, height - 1 - rows, rows),
                  jnp.where(transform.turns == 2, width - 1 - cols, cols))
  else:
    # One counter-clockwise turn (jnp.rot90) of an N x N image sends (r, c) to (N - 1 - c, r).
    turned = [(rows, cols)]
    for _ in range(3):
      previous_rows, previous_cols = turned[-1]
      turned.append((width - 1 - previous_cols, previous_rows))
    rows = jnp.select([transform.turns == k for k in range(4)], [t[0] for t in turned])
    cols = jnp.select([transform.turns == k for k in range(4)], [t[1] for t in turned])
  positions = jnp.stack([rows, cols], axis=-1)
  return jnp.clip(positions, 0, jnp.array([height - 1, width - 1])), inside
