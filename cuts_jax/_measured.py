"""Thresholds chosen by timing: where each computation ran fastest, and on what machine.

Every number here decides only which of two equivalent computations runs
(same result to float rounding, or the same clustering quality), never what
is computed. They were measured on one machine; on another, re-measure before
trusting them (`python benchmarks/run.py --only=conv_layers` and
`--only=segment`; figures in benchmarks/results.md under the machine's name).
No other module of the package holds a machine-measured number: `conv.plan`
and `clustering.device_clustering_is_faster` read them from here.
"""

from __future__ import annotations

import math

__all__ = ["ACCELERATORS", "CLUSTERING_DEVICE_FASTER_UP_TO", "CONV_FFT_MIN_KERNEL",
           "CONV_FFT_MIN_TILES", "CONV_FFT_MIN_WEIGHT_TILES", "CONV_FFT_TILE_SIDE",
           "CONV_IM2COL_CHUNK_ROWS", "CONV_MAX_FEW_CHANNELS", "MACHINE", "MEASURED_ON"]

# The machine and day of every CPU figure below (benchmarks/results.md, section
# "AMD EPYC (2 cores) (cpu)", and the commits of that day that set each value).
MACHINE = "AMD EPYC, 2 cores (the project's shared CPU, no GPU), jax 0.10.2, XLA CPU"
MEASURED_ON = "2026-12-01"

# JAX backend names of accelerators.
ACCELERATORS = ("gpu", "cuda", "rocm", "tpu")

# --- clustering: which stages `on_device="auto"` runs as jitted JAX ---------------------------
# Stage -> backend -> the most points for which the device path runs. On the
# CPU the jitted k-means took a fifth to four fifths of scikit-learn's time up
# to 512x512 points and three times as long at 2048x2048 (scikit-learn's
# prediction is faster there), while the jitted graph was slower than numpy's
# at every size (XLA's CPU top-k is slow): segment rows of benchmarks/results.md,
# quality in experiments/results/clustering_on_device.md. Accelerators: not
# measured (no GPU was lent); both stages run there on the expectation that
# their matrix products and top-k are fast.
CLUSTERING_DEVICE_FASTER_UP_TO = {
    "coordinates": {backend: math.inf for backend in ACCELERATORS},
    "kmeans": {"cpu": 512 * 512, **{backend: math.inf for backend in ACCELERATORS}},
}

# --- conv: the CPU plan of each part of each layer (cuts_jax.conv.plan) ---------------------
# Inputs with at most this many channels (the images) are too thin for XLA's
# CPU convolution and for im2col products to run fast: their forward pass
# stacks row shifts into channels, and their weight gradient puts the images
# in the feature axis.
CONV_MAX_FEW_CHANNELS = 4
# Output rows per im2col chunk of the weight gradient: a chunk's shifted copies
# fit in the CPU's cache (a whole image's ran at two thirds of the speed).
CONV_IM2COL_CHUNK_ROWS = 8
# Side of the FFT tiles for kernels of up to half of it (fastest for the
# paper's 7x7 and 11x11 layers at 8 x 128 x 128: 16 and 64 were slower for the
# weight gradient, 64 for the forward pass and input gradient); larger kernels
# use tiles of the next power of two above twice their size.
CONV_FFT_TILE_SIDE = 32
# The forward pass and the input gradient go through FFT tiles when the kernel
# is at least this large, or when there are at least this many tiles; smaller
# work ran faster as one direct convolution (7x7 64->128: direct at
# 1 x 128 x 128 and 2 x 64 x 64, FFT at 8 x 128 x 128 and 1 x 512 x 512).
CONV_FFT_MIN_KERNEL = 9
CONV_FFT_MIN_TILES = 128
# The weight gradient goes through FFT tiles from this many tiles (or the
# kernel size above); below, im2col products were faster (7x7 64->128 at
# 1 x 32 x 32: 0.008 s vs 0.094 s; at 8 x 64 x 64, 72 tiles: 0.21 s vs 0.18 s)
# and compile in less time.
CONV_FFT_MIN_WEIGHT_TILES = 32
