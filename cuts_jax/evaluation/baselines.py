"""Classical segmentations to compare CUTS with (host side: scikit-image, scikit-learn).

Each baseline maps one float (H, W, C) image in [0, 1] (C = 1 or 3; an (H, W)
image is read as one channel) to an int32 (H, W) label map, and takes its
parameters as keyword-only arguments, so an evaluation loop can run them all
from a config through `run_baseline(name, image, **params)`:

- "random": uniform random labels per pixel, the floor any method must beat.
- "otsu_watershed": the paper's "Otsu's method watershed". Otsu threshold of
  the grayscale image, then a watershed of the distance transform of the
  foreground, started from its peaks. Defaults follow the CUTS authors' code
  (3x3 grey opening first; peaks above 0.9 of the highest distance) except
  that the bright side of the threshold is the foreground: their code took
  the dark side (OpenCV's THRESH_BINARY_INV), but GA lesions are brighter
  than the rest of the retina. Pass `dark_foreground=True` for their choice
  (or for dark targets such as ventricles in T1 MRI).
- "felzenszwalb": Felzenszwalb and Huttenlocher's graph-based segmentation,
  the paper's other baseline (scale 1500, as in the authors' code).
- "slic": SLIC superpixels, about `num_segments` of them.
- "kmeans_pixels": k-means of each pixel's values (optionally blurred). The
  ablation for CUTS: the same clustering of colour alone instead of a
  learned embedding.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
from scipy import ndimage
from skimage import color
from skimage import feature
from skimage import filters
from skimage import measure
from skimage import morphology
from skimage import segmentation

from cuts_jax import _validation
from cuts_jax import clustering
from cuts_jax import pixels
from cuts_jax import regions
from cuts_jax import scales

__all__ = ["BASELINES", "FELZENSZWALB_SCALES", "colour_stack", "felzenszwalb",
           "felzenszwalb_stack", "kmeans_pixels", "otsu", "otsu_watershed", "random_labels",
           "run_baseline", "slic"]


def random_labels(image: np.ndarray, *, num_segments: int = 10, seed: int = 0) -> np.ndarray:
  """Independent uniform labels in [0, num_segments) per pixel.

  Args:
    image: float (H, W, C) or (H, W) in [0, 1]; only its shape is used.
    num_segments: how many labels to draw from.
    seed: seeds the draw; the same seed gives the same labels.

  Returns:
    int32 (H, W) labels.
  """
  array = _check_image(image)
  _validation.check_positive_integers(num_segments=num_segments)
  rng = np.random.default_rng(seed)
  return rng.integers(0, num_segments, size=array.shape[:2]).astype(np.int32)


def otsu(image: np.ndarray) -> np.ndarray:
  """Otsu's threshold of the grayscale image: two segments, dark (0) and bright (1).

  Plain thresholding, strong where the target differs from its surroundings
  by intensity alone (e.g. ventricles in T1 brain MRI). The grayscale image is
  the luminance for RGB, the channel mean otherwise; a flat image is one
  segment.

  Args:
    image: float (H, W, C) or (H, W) in [0, 1].

  Returns:
    int32 (H, W) with 0 at or below the threshold and 1 above it.
  """
  gray = _grayscale(_check_image(image))
  if gray.min() == gray.max():
    return np.zeros(gray.shape, np.int32)
  return (gray > filters.threshold_otsu(gray)).astype(np.int32)


def otsu_watershed(image: np.ndarray, *, min_distance: int = 5, threshold_rel: float = 0.9,
                   opening_size: int = 3, dark_foreground: bool = False) -> np.ndarray:
  """Otsu foreground split into basins by a watershed of its distance transform.

  The grayscale image (luminance for RGB, the channel mean otherwise) is
  opened with an `opening_size` square (removing specks thinner than it),
  thresholded by Otsu's method, and the foreground's Euclidean distance
  transform is flooded from its peaks (`skimage.feature.peak_local_max`) by
  `skimage.segmentation.watershed` within the foreground. A foreground
  component left without a peak (the relative threshold is global, so small
  blobs have none) becomes one basin of its own.

  Args:
    image: float (H, W, C) or (H, W) in [0, 1].
    min_distance: the least distance in pixels between two peaks (seeds).
    threshold_rel: peaks lower than this fraction of the highest distance
      are dropped; smaller values give more basins.
    opening_size: side of the square grey opening before thresholding; 0 or
      1 skips it.
    dark_foreground: False takes the pixels above the threshold as the
      foreground, True those at or below it (as the CUTS authors' code did).

  Returns:
    int32 (H, W): 0 for the background, 1, 2, ... for the basins.
  """
  array = _check_image(image)
  _validation.check_positive_integers(min_distance=min_distance)
  if not 0.0 <= threshold_rel <= 1.0:
    raise ValueError(f"threshold_rel must lie in [0, 1]; got {threshold_rel}.")
  gray = _grayscale(array)
  if opening_size > 1:
    gray = morphology.opening(gray, np.ones((opening_size, opening_size), bool))
  if gray.min() == gray.max():
    # Otsu needs two intensities; a flat image is all one region.
    return np.zeros(gray.shape, np.int32)
  threshold = filters.threshold_otsu(gray)
  foreground = gray <= threshold if dark_foreground else gray > threshold
  components = measure.label(foreground)
  distance = ndimage.distance_transform_edt(foreground)
  peaks = feature.peak_local_max(distance, min_distance=min_distance,
                                 threshold_rel=threshold_rel, labels=components,
                                 exclude_border=False)
  markers = np.zeros(gray.shape, np.int32)
  markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
  labels = segmentation.watershed(-distance, markers, mask=foreground).astype(np.int32)
  # A component without a peak would stay unlabelled; give it a basin of its
  # own rather than merging it into the background.
  missed = foreground & (labels == 0)
  if missed.any():
    labels[missed] = measure.label(missed)[missed] + labels.max()
  return labels


def felzenszwalb(image: np.ndarray, *, scale: float = 1500.0, sigma: float = 0.8,
                 min_size: int = 20) -> np.ndarray:
  """Felzenszwalb-Huttenlocher graph segmentation (`skimage.segmentation.felzenszwalb`).

  Args:
    image: float (H, W, C) or (H, W) in [0, 1].
    scale: larger values give fewer, larger segments.
    sigma: width of the Gaussian blur applied first.
    min_size: segments smaller than this many pixels are merged into a
      neighbour.

  Returns:
    int32 (H, W) labels 0, 1, ...
  """
  array = _check_image(image)
  _validation.check_positive_integers(min_size=min_size)
  if scale <= 0 or sigma < 0:
    raise ValueError(f"scale must be positive and sigma non-negative; got scale={scale}, "
                     f"sigma={sigma}.")
  # One channel goes in as a 2-D image: skimage warns about any channel
  # count other than 3.
  pixels, channel_axis = (array[..., 0], None) if array.shape[-1] == 1 else (array, -1)
  return segmentation.felzenszwalb(pixels, scale=scale, sigma=sigma, min_size=min_size,
                                   channel_axis=channel_axis).astype(np.int32)


def slic(image: np.ndarray, *, num_segments: int = 10, compactness: Optional[float] = None,
         sigma: float = 1.0) -> np.ndarray:
  """SLIC superpixels (`skimage.segmentation.slic`), about `num_segments` of them.

  Args:
    image: float (H, W, C) or (H, W) in [0, 1].
    num_segments: the number of superpixels aimed at (SLIC's grid); the
      result may have somewhat fewer or more.
    compactness: weight of spatial against colour distance; higher gives more
      square superpixels. None: 10 for RGB, which SLIC compares in CIELAB
      (0-100), and 0.1 otherwise, where values lie in [0, 1].
    sigma: width of the Gaussian blur applied first.

  Returns:
    int32 (H, W) labels 0, 1, ...
  """
  array = _check_image(image)
  _validation.check_positive_integers(num_segments=num_segments)
  if compactness is None:
    compactness = 10.0 if array.shape[-1] == 3 else 0.1
  if compactness <= 0 or sigma < 0:
    raise ValueError(f"compactness must be positive and sigma non-negative; got "
                     f"compactness={compactness}, sigma={sigma}.")
  return segmentation.slic(array, n_segments=num_segments, compactness=compactness,
                           sigma=sigma, channel_axis=-1, start_label=0).astype(np.int32)


def kmeans_pixels(image: np.ndarray, *, num_clusters: int = 10, smoothing_sigma: float = 0.0,
                  method: str = "kmeans", connected: bool = False,
                  min_segment_fraction: float = 0.0, min_segment_pixels: int = 0,
                  seed: int = 0, snap_scale: Optional[float] = None) -> np.ndarray:
  """k-means of the pixels' values: CUTS's clustering without the learned embedding.

  Uses `clustering.cluster_image`, so labels are numbered in raster order of
  first appearance and an image with fewer distinct colours than
  `num_clusters` gets one label per colour. With `method="spectral"` and
  `connected=True` it is `segment`'s pipeline on the colours alone.

  Args:
    image: float (H, W, C) or (H, W) in [0, 1].
    num_clusters: k, the most clusters.
    smoothing_sigma: Gaussian blur (pixels) of each channel before
      clustering, which gives each pixel some of its neighbourhood; 0 skips it.
    method: "kmeans" or "spectral" (the landmark spectral k-means of CUTS).
    connected: cut every cluster into its connected pieces
      (`regions.connected_segments`).
    min_segment_fraction: with `connected`, pieces below this share of the
      pixels join a neighbour.
    min_segment_pixels: with `connected`, when > 0, pieces below this many
      pixels join a neighbour instead (as `SegmentSettings.min_segment_pixels`).
    seed: seeds the k-means; the same seed gives the same labels.
    snap_scale: with `connected`, the segments are snapped to the
      (unblurred) image's superpixels as `segment`'s are
      (`SegmentSettings.snap_scale`); None or 0: not snapped.

  Returns:
    int32 (H, W) labels: clusters in [0, num_clusters), or connected segments.
  """
  array = _check_image(image)
  superpixels = scales.image_superpixels(array, snap_scale) if connected and snap_scale \
      else None
  if smoothing_sigma < 0:
    raise ValueError(f"smoothing_sigma must be non-negative; got {smoothing_sigma}.")
  if smoothing_sigma > 0:
    array = ndimage.gaussian_filter(array, sigma=(smoothing_sigma, smoothing_sigma, 0),
                                    mode="reflect")
  labels = clustering.cluster_image(array, num_clusters=num_clusters, method=method, seed=seed)
  if connected:
    min_size = (int(min_segment_pixels) if min_segment_pixels > 0
                else max(1, round(min_segment_fraction * labels.size)))
    labels = regions.connected_segments(labels, min_size=min_size)
    if superpixels is not None:
      labels = regions.connected_segments(scales.snap_to_superpixels(labels, superpixels),
                                          min_size=min_size)
  return labels


def colour_stack(image: np.ndarray, *, num_clusters: Sequence[int] = tuple(range(2, 16)),
                 smoothing_sigma: float = 2.0, min_size: int = 30,
                 size: Optional[Sequence[int]] = None, seed: int = 0,
                 snap: Optional[float] = None) -> scales.ScaleStack:
  """`colour_segments` at every k: the smoothed colours through CUTS's scale stack.

  The same clustering, connected segments, fold threshold, kept small
  pieces and snapping to superpixels as `cuts_jax.segment_hierarchy`, with
  the blurred pixel values in place of the learned features, so a scale rule
  can be compared fairly.

  Args:
    image: float (H, W, C) or (H, W) in [0, 1].
    num_clusters: the k of the levels.
    smoothing_sigma: Gaussian blur (pixels, at `size`) of each channel.
    min_size: the fold threshold in pixels at `size`.
    size: (h, w) to segment at (e.g. the model's training size), the
      levels coming back at the image's size; None: the image's own.
    seed: seeds the clustering.
    snap: `SegmentSettings.snap_scale`: the Felzenszwalb scale of the
      superpixels (of the unblurred image at `size`) the levels are snapped
      to; None: not snapped.

  Returns:
    A `scales.ScaleStack` of (H, W) levels.
  """
  array = _check_image(image)
  work = array if size is None or tuple(size) == array.shape[:2] else \
      pixels.resize_image(array, tuple(size))
  superpixels = None if snap is None else scales.image_superpixels(work, snap)
  if smoothing_sigma > 0:
    work = ndimage.gaussian_filter(work, sigma=(smoothing_sigma, smoothing_sigma, 0),
                                   mode="reflect")
  return scales.stack_from_features(work, num_clusters=num_clusters, seed=seed,
                                    min_size=min_size, size=array.shape[:2],
                                    superpixels=superpixels)


# Felzenszwalb's scale parameter at each level of `felzenszwalb_stack`: 2^5 .. 2^12.
FELZENSZWALB_SCALES = tuple(float(s) for s in np.geomspace(32, 4096, 14))


def felzenszwalb_stack(image: np.ndarray, *, scale_values: Sequence[float] = FELZENSZWALB_SCALES,
                       sigma: float = 0.8, min_size: int = 20) -> scales.ScaleStack:
  """Felzenszwalb's segmentation at several scale parameters, as a `scales.ScaleStack`.

  Levels are ordered from fewest to most segments; each level's
  `num_clusters` is its segment count.

  Args:
    image: float (H, W, C) or (H, W) in [0, 1].
    scale_values: Felzenszwalb's `scale` at each level.
    sigma, min_size: as in `felzenszwalb`.

  Returns:
    A `scales.ScaleStack` of (H, W) levels (its "fixed" rule is not meaningful).
  """
  levels = [felzenszwalb(image, scale=float(s), sigma=sigma, min_size=min_size)
            for s in scale_values]
  counts = [int(level.max()) + 1 for level in levels]
  order = np.argsort(counts, kind="stable")
  return scales.ScaleStack(labels=np.stack([levels[i] for i in order]),
                           num_clusters=tuple(counts[i] for i in order))


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "random": random_labels,
    "otsu": otsu,
    "otsu_watershed": otsu_watershed,
    "felzenszwalb": felzenszwalb,
    "slic": slic,
    "kmeans_pixels": kmeans_pixels,
}


def run_baseline(name: str, image: np.ndarray, **params: Any) -> np.ndarray:
  """Runs the baseline called `name` on one image with keyword parameters.

  Args:
    name: a key of `BASELINES`.
    image: float (H, W, C) or (H, W) in [0, 1].
    **params: that baseline's keyword arguments (e.g. from a config).

  Returns:
    int32 (H, W) label map.

  Raises:
    ValueError: for an unknown name or a bad image or parameter value.
    TypeError: for a parameter the baseline does not take.
  """
  _validation.check_one_of(name, BASELINES, what="baseline")
  return BASELINES[name](image, **params)


def _check_image(image: Any) -> np.ndarray:
  """float32 (H, W, C) from a finite (H, W) or (H, W, C) float image in [0, 1]."""
  return _validation.check_unit_image(image).astype(np.float32)


def _grayscale(image: np.ndarray) -> np.ndarray:
  """(H, W) float: luminance of an RGB image, otherwise the mean of the channels."""
  if image.shape[-1] == 3:
    return color.rgb2gray(image)
  return image.mean(axis=-1)
