"""Sample data for napari (File > Open Sample > cuts_jax): the demo images, nothing downloaded."""

from __future__ import annotations

from cuts_jax.io import datasets


def fundus() -> list[tuple]:
  """scikit-image's fundus photograph, the demo config's main image."""
  names, images = datasets.demo_images()
  return [(images[0], {"name": names[0], "rgb": True}, "image")]


def demo_images() -> list[tuple]:
  """Every demo image (`cuts_jax.io.datasets.demo_images`), one layer each."""
  names, images = datasets.demo_images()
  return [(image, {"name": name, "rgb": True, "visible": index == 0}, "image")
          for index, (name, image) in enumerate(zip(names, images))]
