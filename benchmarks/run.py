"""Speed and memory benchmarks of cuts_jax (and of the same step in PyTorch).

    python benchmarks/run.py                       # everything, ~10 min on a 2-core CPU
    python benchmarks/run.py --only=train_step --json
    python benchmarks/run.py --only=segment --json
    python benchmarks/run.py --only=select        # the scale rule under clicks, 128x128
    python benchmarks/run.py --only=volume        # segment_volume of the brain MRI volume
    python benchmarks/run.py --only=conv_layers   # each part of each layer, cuts_jax vs PyTorch
    python benchmarks/run.py --quick               # smoke run (CI): tiny sizes, no figures kept

Every figure is the median over `--repeats` timed runs after a warm-up run
(compilation is timed separately). Ratios (e.g. PyTorch / JAX) are measured in
the same run. Results are merged into benchmarks/results.json and written as a
Markdown table to benchmarks/results.md; with --json the last line printed is
one JSON object of the headline figures.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from configs import retina as retina_config  # pylint: disable=g-import-not-at-top
from cuts_jax import conv
from cuts_jax import defaults as default_config
from cuts_jax import pixels
from cuts_jax import sampling
from cuts_jax import scales
from cuts_jax import segmentation
from cuts_jax import step as step_lib
from cuts_jax.io import datasets as data
from cuts_jax.runs import console

SECTIONS = ("train_step", "conv_layers", "pairs", "segment", "select", "volume", "torch",
            "time_to_result")
# The brain MRI volume of the shared data (160 x 192 x 224); a synthetic one of
# its shape stands in when it is absent.
BRAIN_VOLUME = REPO_ROOT.parent / "shared" / "data" / "brain_mri" / "test_scan.npz"
BRAIN_SHAPE = (160, 192, 224)



def peak_rss_mb() -> float:
  """This process's peak resident memory (VmHWM), in MB.

  Not getrusage's ru_maxrss: Linux carries that over from the parent across
  exec, so a child started by a process that had used more memory reports
  the parent's peak.
  """
  with open("/proc/self/status") as status:
    for line in status:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  raise RuntimeError("no VmHWM line in /proc/self/status")

def _median_time(function, repeats: int) -> tuple[float, list[float]]:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)
  return statistics.median(times), times


def encoder_step_flops(model_config, *, batch: int, height: int, width: int,
                       channels: int) -> float:
  """Analytic FLOPs of one training step of the encoder (forward + backward).

  Convolutions and the dense layer only (2 FLOPs per multiply-add): forward
  once, then the weight gradient of every layer and the input gradient of
  every layer but the first. Batch norm, activations, pair selection and the
  loss are left out (they are a few percent).
  """
  pixels = batch * height * width
  previous, forward, backward = channels, 0.0, 0.0
  for index, (kernel, width_out) in enumerate(zip(model_config.kernel_sizes,
                                                  model_config.features)):
    layer = 2.0 * pixels * kernel * kernel * previous * width_out
    forward += layer
    backward += layer * (1 if index == 0 else 2)
    previous = width_out
  if model_config.embedding_dim:
    layer = 2.0 * pixels * previous * model_config.embedding_dim
    forward += layer
    backward += 2 * layer
  return forward + backward


def _sample_images(count: int, size: int, channels: int = 3) -> np.ndarray:
  """Real photographs (scikit-image's samples), so that pair selection finds pairs."""
  images = data.load_demo((size, size)).images
  images = np.concatenate([images] * (-(-count // len(images))))[:count]
  return images[..., :channels]


def bench_train_step(args) -> dict:
  """Seconds per step of the paper's encoder with the full CUTS loss."""
  results = {}
  # "default": the config as shipped (FFT-tile weight gradients on CPU, XLA's
  # on GPU/TPU); "xla_weight_gradient": XLA's everywhere (the CPU speed without
  # cuts_jax.conv); "im2col_weight_gradient": the direct sum as matrix
  # products; "crop64": training on random 64x64 crops of the images;
  # "bfloat16": mixed precision (model.compute_dtype), never the headline.
  variants = [("default", dict(weight_gradient="auto")),
              ("xla_weight_gradient", dict(weight_gradient="xla")),
              ("im2col_weight_gradient", dict(weight_gradient="im2col")),
              ("crop64", dict(weight_gradient="auto", crop_size=64)),
              ("bfloat16", dict(weight_gradient="auto", compute_dtype="bfloat16"))]
  if jax.default_backend() != "cpu":  # The same as the default there.
    variants = [v for v in variants if "weight_gradient" not in v[0]]
  if args.quick:
    variants = variants[:1]
  if args.train_variants:
    wanted = args.train_variants.split(",")
    variants = [v for v in variants if v[0] in wanted]
  for name, options in variants:
    config = default_config.get_config()
    if args.quick:
      config.model.kernel_sizes, config.model.features = (5, 3), (8, 16)
      config.model.embedding_dim = 16
    config.model.weight_gradient = options["weight_gradient"]
    config.training.crop_size = options.get("crop_size", 0)
    config.model.compute_dtype = options.get("compute_dtype", "float32")
    config.training.batch_size = args.batch_size
    size = args.image_size
    devices = jax.local_device_count()
    images = _sample_images(args.batch_size, size)
    sharded = step_lib.shard_batch(images, devices)
    state = step_lib.create_train_state(jax.random.key(0), config, image_shape=images.shape[1:])
    step = step_lib.parallel_train_step(step_lib.StepSettings.from_config(config))
    replicated = step_lib.replicate(state)
    key = jax.random.key(1)
    holder = {"state": replicated}

    def run_once():
      holder["state"], metrics = step(holder["state"], sharded, key)
      jax.block_until_ready(metrics)
      return metrics

    start = time.perf_counter()
    run_once()
    compile_s = time.perf_counter() - start
    seconds, times = _median_time(run_once, args.repeats)
    crop = config.training.crop_size
    side = min(crop, size) if crop else size
    flops = encoder_step_flops(config.model, batch=args.batch_size, height=side, width=side,
                               channels=3)
    results[f"{name}@batch{args.batch_size}"] = {
        "seconds": seconds, "times": times, "compile_s": compile_s,
        "images_per_s": args.batch_size / seconds, "gflop_per_s": flops / seconds / 1e9,
        "peak_fraction": flops / seconds / 1e9 / args.peak_gflops,
        "gflop_per_step": flops / 1e9, "trained_side": side, "peak_gflops": args.peak_gflops,
    }
    print(f"train_step[{name}]: {seconds:.3f} s/step ({args.batch_size / seconds:.1f} "
          f"images/s, {flops / seconds / 1e9:.0f} GFLOP/s = "
          f"{flops / seconds / 1e9 / args.peak_gflops:.0%} of {args.peak_gflops:.0f}), "
          f"compile {compile_s:.1f} s", flush=True)
  return results


def bench_conv_layers(args) -> dict:
  """Forward, input gradient and weight gradient of each encoder layer: cuts_jax vs PyTorch.

  Each part alone, on the train step's batch (reflect padding): `cuts_jax.conv`
  with the backend's plan, and, with torch installed, PyTorch's convolution
  and its two gradients (torch.nn.grad) on the same reflect-padded input.
  The first layer's input gradient is measured too, though training never
  needs it (the images take no gradient). Not part of the --quick run.
  """
  config = default_config.get_config()
  if args.quick:
    config.model.kernel_sizes, config.model.features = (5, 3), (8, 16)
  rng = np.random.default_rng(0)
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    torch = None
  results, previous = {}, 3
  for kernel, width in zip(config.model.kernel_sizes, config.model.features):
    shape = (args.batch_size, args.image_size, args.image_size)
    x = jax.numpy.asarray(rng.standard_normal(shape + (previous,), np.float32))
    w = jax.numpy.asarray(0.05 * rng.standard_normal((kernel, kernel, previous, width),
                                                     np.float32))
    g = jax.numpy.asarray(rng.standard_normal(shape + (width,), np.float32))
    convolve = lambda x, w: conv.conv2d(x, w, padding="reflect")
    parts = {
        "forward": jax.jit(convolve),
        "input_gradient": jax.jit(lambda x, w, g: jax.vjp(lambda x: convolve(x, w), x)[1](g)[0]),
        "weight_gradient": jax.jit(
            lambda x, w, g: jax.vjp(lambda w: convolve(x, w), w)[1](g)[0]),
    }
    name = f"{kernel}x{kernel} {previous}->{width}"
    row = {"gflop_per_part": 2.0 * np.prod(shape) * kernel * kernel * previous * width / 1e9,
           "plan": str(conv.plan(jax.default_backend(), in_channels=previous))}
    for part, function in parts.items():
      arguments = (x, w) if part == "forward" else (x, w, g)
      jax.block_until_ready(function(*arguments))
      row[part + "_s"], _ = _median_time(lambda: jax.block_until_ready(function(*arguments)),
                                         args.repeats)
    if torch is not None and not args.quick:
      half = kernel // 2
      xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous()
      wt = torch.from_numpy(np.array(w)).permute(3, 2, 0, 1).contiguous()
      gt = torch.from_numpy(np.array(g)).permute(0, 3, 1, 2).contiguous()
      padded = torch.nn.functional.pad(xt, (half,) * 4, mode="reflect")
      with torch.no_grad():
        torch_parts = {
            "forward": lambda: torch.nn.functional.conv2d(
                torch.nn.functional.pad(xt, (half,) * 4, mode="reflect"), wt),
            "input_gradient": lambda: torch.nn.grad.conv2d_input(padded.shape, wt, gt),
            "weight_gradient": lambda: torch.nn.grad.conv2d_weight(padded, wt.shape, gt),
        }
        for part, function in torch_parts.items():
          function()
          row["torch_" + part + "_s"], _ = _median_time(function, args.repeats)
    results[name] = row
    print(f"conv {name}: " + ", ".join(
        f"{part} {row[part + '_s']:.3f} s" + (f" (PyTorch {row['torch_' + part + '_s']:.3f} s)"
                                              if "torch_" + part + "_s" in row else "")
        for part in parts), flush=True)
    previous = width
  return results


def bench_pairs(args) -> dict:
  """Pair selection + SSIM alone, for the step's batch."""
  config = default_config.get_config()
  images = jax.numpy.asarray(_sample_images(args.batch_size, args.image_size))
  settings = sampling.SamplingSettings.from_config(config.sampling)
  select = jax.jit(jax.vmap(functools.partial(sampling.select_pairs, settings=settings)))
  keys = jax.random.split(jax.random.key(0), args.batch_size)
  pairs = jax.block_until_ready(select(keys, images))
  seconds, _ = _median_time(lambda: jax.block_until_ready(select(keys, images)), args.repeats)
  valid = float(np.sum(pairs.valid_anchor))
  result = {"seconds": seconds, "valid_anchors": valid, "batch_size": args.batch_size,
            "anchors": int(np.size(pairs.valid_anchor)),
            "verified_anchors_per_s": valid / seconds,
            "ssim_comparisons_per_s": float(np.size(pairs.positive_mask) +
                                            np.size(pairs.negative_mask)) / seconds}
  print(f"pairs: {seconds * 1e3:.1f} ms per batch of {args.batch_size}; "
        f"{valid / seconds:.0f} verified anchors/s", flush=True)
  return result


def _segment_params(args, size: int | None = None, channels: int = 3):
  """A model of the default config trained at size x size (None: the config's size).

  `segment` works at the training size, so this is the size it segments at.
  """
  config = default_config.get_config()
  if args.quick:
    config.model.kernel_sizes, config.model.features = (5, 3), (8, 16)
    config.model.embedding_dim = 16
  if size is not None:
    config.data.image_size = (size, size)
  state = step_lib.create_train_state(jax.random.key(0), config, image_shape=(64, 64, channels))
  return segmentation.SegmentationParams.from_train_state(state, config)


def _segment_image(size: int) -> np.ndarray:
  from skimage import data as sample
  return pixels.resize_image(pixels.to_unit_range(sample.retina()), (size, size))


def _segment_sizes(args) -> tuple[int, ...]:
  if args.quick:
    return (64,)
  return tuple(int(size) for size in args.segment_sizes.split(","))


def bench_segment(args) -> dict:
  """Latency of cuts_jax.segment at each size (features and clustering apart), and peak memory.

  Each size is segmented at that size (the model's training size), so the
  encoder and the clustering see every pixel. The clustering is timed on
  the host, on the device, and as `on_device="auto"` chooses (what
  `segment` does by default).
  """
  results = {}
  sizes = _segment_sizes(args)
  for size in sizes:
    params = _segment_params(args, size)
    image = _segment_image(size)
    repeats = 1 if size > 1024 else args.repeats
    segmentation.segment(params, image)  # Compiles for this size.
    features_s, _ = _median_time(lambda: segmentation.segment_features(params, image), repeats)
    features = segmentation.segment_features(params, image)
    cluster = {}
    for where in (False, True, "auto"):
      segmentation.segments_from_features(params, features, on_device=where)  # Compiles.
      cluster[str(where)], _ = _median_time(
          lambda: segmentation.segments_from_features(params, features, on_device=where),
          repeats)
    total_s, _ = _median_time(lambda: segmentation.segment(params, image), repeats)
    results[str(size)] = {"seconds": total_s, "features_s": features_s,
                          "clusters_host_s": cluster["False"],
                          "clusters_device_s": cluster["True"],
                          "clusters_auto_s": cluster["auto"]}
    print(f"segment {size}x{size}: {total_s:.3f} s (features {features_s:.3f} s; clusters and "
          f"segments: host {cluster['False']:.3f} s, device {cluster['True']:.3f} s, auto "
          f"{cluster['auto']:.3f} s)", flush=True)
    if size >= 512 or (args.quick and size == sizes[-1]):
      # Peak memory of one segment in a fresh process.
      command = [sys.executable, __file__, "--child_segment_memory", str(size)] + \
          (["--quick"] if args.quick else [])
      child = subprocess.run(command, capture_output=True, text=True, check=True)
      memory = json.loads(child.stdout.strip().splitlines()[-1])
      results[str(size)].update(memory)
      print(f"segment {size}x{size} peak memory: {memory['peak_mb']:.0f} MB (process), "
            f"{memory['peak_increase_mb']:.0f} MB above the process before it", flush=True)
  return results


def bench_select(args) -> dict:
  """`select` with the scale rule on a 128x128 image after `segment`, its features cached.

  The features `segment` computed are kept; the scale stack (k = 2..15, its
  levels snapped to the image's superpixels as the model's `snap_scale`
  says) is built from them once (`scales.scale_stack`, timed apart), then each
  `select` chooses the clicked region by the default rule: one click, and
  two positive clicks with one negative.
  """
  size = 64 if args.quick else 128
  params = _segment_params(args, size)
  image = _segment_image(size)
  segmentation.segment(params, image)  # Compiles.
  features = segmentation.segment_features(params, image)
  snap = params.settings.snap_scale

  def build():  # As napari builds it: the image's superpixels, then the snapped levels.
    superpixels = None if snap is None else scales.image_superpixels(image, snap)
    return scales.scale_stack(params, features, superpixels=superpixels)

  stack_s, _ = _median_time(build, args.repeats)
  stack = build()
  centre = (size // 2, size // 3)
  one_s, _ = _median_time(lambda: segmentation.select(stack, centre), args.repeats)
  clicks = [centre, (size // 4, size // 2)]
  three_s, _ = _median_time(lambda: segmentation.select(stack, clicks,
                                                        negative=(3 * size // 4, size // 2)),
                            args.repeats)
  print(f"select {size}x{size} ({stack.rule}): one click {one_s * 1e3:.2f} ms, three clicks "
        f"{three_s * 1e3:.1f} ms; scale stack from cached features {stack_s:.3f} s", flush=True)
  return {"size": size, "rule": stack.rule, "levels": len(stack), "one_click_s": one_s,
          "three_clicks_s": three_s, "stack_s": stack_s}


def _child_segment_memory(size: int, args) -> None:
  params = _segment_params(args, size)
  image = _segment_image(size)
  before = peak_rss_mb()
  segmentation.segment(params, image)
  peak = peak_rss_mb()
  print(json.dumps({"peak_mb": peak, "peak_increase_mb": peak - before}))


def bench_volume(args) -> dict:
  """`segment_volume` of a whole volume in a fresh process: wall time and peak memory."""
  command = [sys.executable, __file__, "--child_volume"] + (["--quick"] if args.quick else [])
  child = subprocess.run(command, capture_output=True, text=True, check=True)
  result = json.loads(child.stdout.strip().splitlines()[-1])
  print(f"segment_volume {'x'.join(map(str, result['shape']))}: {result['seconds']:.1f} s "
        f"({result['cpu_s']:.1f} CPU s) in a fresh process (compilation included; "
        f"{result['process_s']:.1f} s with start-up and loading), peak {result['peak_mb']:.0f} "
        "MB", flush=True)
  return result


def _child_volume(args) -> None:
  """Times a volume as a user meets it: the first segmentation, another k, a click.

  A fresh process's first `segment_volume` (features, kept in a
  `FeatureCache`, then clusters and 3-D connected segments; compilation
  included), then another k on the kept features, then one click
  (`cuts_jax.select` on the label volume), and the process's peak memory.
  """
  from cuts_jax import volume as volume_lib  # pylint: disable=import-outside-toplevel
  from cuts_jax import volume_features  # pylint: disable=import-outside-toplevel
  started = time.perf_counter()
  params = _segment_params(args, channels=1)
  if args.quick:
    volume, source = np.random.default_rng(0).random((6, 20, 24)), "synthetic"
  elif BRAIN_VOLUME.exists():
    with np.load(BRAIN_VOLUME, allow_pickle=False) as archive:
      volume, source = archive["vol"], str(BRAIN_VOLUME.name)
  else:
    volume, source = np.random.default_rng(0).random(BRAIN_SHAPE), "synthetic"
  size = (16, 16) if args.quick else (128, 128)

  def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

  cache = volume_features.FeatureCache()
  options = dict(axis=0, resize_to=size, cache=cache)
  tick, cpu_tick = time.perf_counter(), cpu_seconds()
  volume_lib.segment_volume(params, volume, num_clusters=10, **options)
  seconds, cpu_s = time.perf_counter() - tick, cpu_seconds() - cpu_tick
  tick = time.perf_counter()
  labels = volume_lib.segment_volume(params, volume, num_clusters=6, **options)
  new_k_s = time.perf_counter() - tick
  click = tuple(s // 2 for s in volume.shape)
  tick = time.perf_counter()
  segmentation.select(labels, click)
  click_s = time.perf_counter() - tick
  # The 3-D scale stack (every k of the model's scale_num_clusters) on the kept features, and
  # a click on it (the scale rule's region, back on the volume's voxels).
  settings = segmentation.resolve_settings(params, resize_to=size)
  kept = volume_features.volume_features(params, volume, axis=0, cache=cache, settings=settings)
  tick, cpu_tick = time.perf_counter(), cpu_seconds()
  stack = volume_lib.stack_from_volume_features(kept, settings=settings, cache=cache)
  stack_s, stack_cpu_s = time.perf_counter() - tick, cpu_seconds() - cpu_tick
  tick, cpu_tick = time.perf_counter(), cpu_seconds()
  volume_lib.select_voxels(kept, stack, [click])
  stack_click_s, stack_click_cpu_s = time.perf_counter() - tick, cpu_seconds() - cpu_tick
  # Later clicks edit the mask (a level's segment, or a local edit where none fits).
  step = max(1, min(volume.shape) // 8)
  later = [(click[0], click[1], min(click[2] + step, volume.shape[2] - 1))]
  against = [(click[0], max(click[1] - step, 0), click[2])]
  tick, cpu_tick = time.perf_counter(), cpu_seconds()
  volume_lib.select_voxels(kept, stack, [click] + later, negative=against)
  stack_edit_s, stack_edit_cpu_s = time.perf_counter() - tick, cpu_seconds() - cpu_tick
  peak = peak_rss_mb()
  # CPU seconds beside the wall time: on a CPU shared with other jobs the wall
  # time grows with their load, the CPU time much less.
  print(json.dumps({"seconds": seconds, "cpu_s": cpu_s, "new_k_s": new_k_s, "click_s": click_s,
                    "stack_s": stack_s, "stack_cpu_s": stack_cpu_s, "levels": len(stack),
                    "stack_click_s": stack_click_s, "stack_click_cpu_s": stack_click_cpu_s,
                    "stack_edit_s": stack_edit_s, "stack_edit_cpu_s": stack_edit_cpu_s,
                    "load_average": list(os.getloadavg()),
                    "process_s": time.perf_counter() - started, "peak_mb": peak,
                    "shape": list(volume.shape), "source": source, "slice_size": list(size),
                    "segments": int(len(np.unique(labels)))}))


def bench_torch(args, jax_seconds: float | None) -> dict:
  """The same train step in PyTorch (needs the `bench` extra)."""
  try:
    import torch
  except ImportError:
    print("torch: not installed (pip install '.[bench]'); skipped", flush=True)
    return {"skipped": "torch is not installed"}
  sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
  import torch_reference
  device = "cuda" if torch.cuda.is_available() else "cpu"
  images = torch.from_numpy(_sample_images(args.batch_size, args.image_size)).permute(
      0, 3, 1, 2).contiguous().to(device)
  step = torch_reference.CUTSStep(3, device=device)

  def run_once():
    step.step(images)
    if device == "cuda":
      torch.cuda.synchronize()

  run_once()
  seconds, times = _median_time(run_once, args.repeats)
  result = {"seconds": seconds, "times": times, "device": device,
            "torch_version": torch.__version__, "threads": torch.get_num_threads(),
            "images_per_s": args.batch_size / seconds}
  if jax_seconds:
    result["speedup_of_jax"] = seconds / jax_seconds
  print(f"torch train step: {seconds:.3f} s/step on {device}" +
        (f"; cuts_jax is {seconds / jax_seconds:.2f}x as fast" if jax_seconds else ""),
        flush=True)
  return result


def bench_time_to_result(args) -> dict:
  """Wall time of the retina CPU configuration, from the command's start to its Dice."""
  root = pathlib.Path(args.retina_root)
  if not root.is_dir():
    print(f"time_to_result: {root} not found; skipped", flush=True)
    return {"skipped": f"{root} not found"}
  import tempfile
  with tempfile.TemporaryDirectory() as workdir:
    command = [sys.executable, "-m", "cuts_jax.main", "--config=configs/retina.py",
               f"--workdir={workdir}", f"--config.data.root={root}"]
    start = time.perf_counter()
    output = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
  lines = [l for l in output.stderr.splitlines() if "mean one-pixel Dice" in l]
  if output.returncode or not lines:
    raise RuntimeError(f"the retina run failed:\n{output.stderr[-3000:]}")
  dice = float(lines[-1].split("images")[-1].split()[0])
  config = retina_config.get_config()
  print(f"time_to_result: {seconds:.0f} s to Dice {dice:.3f} ({config.training.num_steps} "
        "steps)", flush=True)
  return {"seconds": seconds, "dice": dice, "num_steps": config.training.num_steps}


def _machine() -> dict:
  device = jax.devices()[0]
  name = getattr(device, "device_kind", str(device))
  if device.platform == "cpu":
    name = f"{console.processor_name()} ({os.cpu_count()} cores)"
  return {"platform": device.platform, "device": name,
          "devices": jax.device_count(), "cpu_count": os.cpu_count(),
          "processor": console.processor_name(),
          "jax": jax.__version__, "python": platform.python_version(),
          "date": datetime.datetime.now().isoformat(timespec="seconds")}


def _markdown(results: dict) -> str:
  machine, settings = results["machine"], results["settings"]
  lines = [f"### {machine['device']} ({machine['platform']})", "",
           f"Measured {machine['date']}: {machine['devices']} device(s), "
           f"{machine['cpu_count']} CPU cores, jax {machine['jax']}; medians of "
           f"{settings['repeats']} runs after a warm-up; `{settings['command']}`.", "",
           *([machine["note"], ""] if "note" in machine else []),
           "| benchmark | figure |", "| --- | --- |"]
  for name, r in sorted(results.get("train_step", {}).items()):
    variant, batch = name.split("@batch")
    lines.append(f"| train step, {variant} (batch {batch}, trained on {r['trained_side']}x"
                 f"{r['trained_side']}) | {r['seconds']:.4f} s, {r['images_per_s']:.1f} "
                 f"images/s, {r['gflop_per_s']:.0f} GFLOP/s ({r['peak_fraction']:.0%} of "
                 f"{r.get('peak_gflops', settings['peak_gflops']):.0f}), compile "
                 f"{r['compile_s']:.1f} s |")
  for name, r in sorted(results.items()):
    if not name.startswith("torch@") or "seconds" not in r:
      continue
    ratio = f"; cuts_jax {r['speedup_of_jax']:.2f}x as fast" if "speedup_of_jax" in r else ""
    lines.append(f"| train step, PyTorch {r['torch_version']} on {r['device']} (batch "
                 f"{name.split('@batch')[1]}, 128x128) | {r['seconds']:.4f} s{ratio} |")
  for name, r in results.get("conv_layers", {}).items():
    cells = []
    for part in ("forward", "input_gradient", "weight_gradient"):
      torch_s = r.get(f"torch_{part}_s")
      cells.append(f"{part.replace('_', ' ')} {r[part + '_s']:.3f} s" +
                   (f" (PyTorch {torch_s:.3f} s)" if torch_s else ""))
    lines.append(f"| conv layer {name} ({r['gflop_per_part']:.1f} GFLOP a part) | "
                 + "; ".join(cells) + " |")
  if "pairs" in results:
    r = results["pairs"]
    lines.append(f"| pair selection + SSIM (batch {r.get('batch_size', settings['batch_size'])}) | "
                 f"{r['seconds'] * 1e3:.1f}"
                 f" ms, {r['verified_anchors_per_s']:.0f} verified anchors/s |")
  for size, r in results.get("segment", {}).items():
    memory = f", peak {r['peak_mb']:.0f} MB" if "peak_mb" in r else ""
    if "features_s" in r:
      lines.append(f"| segment {size}x{size} (at its own size) | {r['seconds']:.3f} s "
                   f"(features {r['features_s']:.3f} s; clusters + segments: host "
                   f"{r['clusters_host_s']:.3f} s, device {r['clusters_device_s']:.3f} s, "
                   f"auto {r['clusters_auto_s']:.3f} s){memory} |")
    else:  # Rows of older runs.
      lines.append(f"| segment {size}x{size} | {r['seconds']:.3f} s (embedding "
                   f"{r['embed_s']:.3f} s, clustering {r['cluster_s']:.3f} s){memory} |")
  if "select" in results:
    r = results["select"]
    lines.append(f"| select {r['size']}x{r['size']}, rule {r['rule']} over {r['levels']} scales, "
                 f"features cached | one click {r['one_click_s'] * 1e3:.2f} ms; two clicks and "
                 f"a negative {r['three_clicks_s'] * 1e3:.1f} ms; the scale stack from the "
                 f"features (levels snapped to the image's superpixels), once per image, "
                 f"{r['stack_s']:.3f} s |")
  if "volume" in results:
    r = results["volume"]
    more = (f"; then k = 6 on the kept features {r['new_k_s']:.1f} s, a click "
            f"{r['click_s']:.2f} s" if "new_k_s" in r else "")
    if "stack_s" in r:
      more += (f"; the 3-D scale stack ({r['levels']} levels) from the kept features "
               f"{r['stack_s']:.1f} s ({r['stack_cpu_s']:.1f} CPU s), a click on it "
               f"{r['stack_click_s']:.2f} s ({r['stack_click_cpu_s']:.2f} CPU s)")
    if "stack_edit_s" in r:
      more += (f", two clicks and a negative one (the later ones editing the mask) "
               f"{r['stack_edit_s']:.2f} s ({r['stack_edit_cpu_s']:.2f} CPU s)")
    if "load_average" in r:
      more += f"; load average {r['load_average'][0]:.1f} on {os.cpu_count()} cores"
    lines.append(f"| segment_volume {'x'.join(map(str, r['shape']))} ({r['source']}; axis-0 "
                 f"slices at {r['slice_size'][0]}x{r['slice_size'][1]}, k = 10, 3-D connected "
                 f"segments) | first {r['seconds']:.1f} s ({r['cpu_s']:.1f} CPU s) in a fresh "
                 f"process, compilation included ({r['process_s']:.1f} s with start-up), peak "
                 f"{r['peak_mb']:.0f} MB{more} |")
  if "time_to_result" in results and "seconds" in results["time_to_result"]:
    r = results["time_to_result"]
    lines.append(f"| time to result, retina CPU config | {r['seconds']:.0f} s to Dice "
                 f"{r['dice']:.3f} |")
  return "\n".join(lines) + "\n"


def _headline(results: dict) -> dict:
  out = {}
  step = results.get("train_step", {}).get(f"default@batch{results['settings']['batch_size']}")
  if step:
    out.update(train_step_s=step["seconds"], images_per_s=step["images_per_s"],
               gflop_per_s=step["gflop_per_s"])
  segment = results.get("segment", {})
  for size, r in segment.items():
    out[f"segment_{size}_s"] = r["seconds"]
    if "peak_mb" in r:
      out[f"segment_{size}_peak_mb"] = r["peak_mb"]
  torch_result = results.get(f"torch@batch{results['settings']['batch_size']}", {})
  if "speedup_of_jax" in torch_result:
    out["speedup_vs_torch"] = torch_result["speedup_of_jax"]
  if "pairs" in results and step:
    out["pairs_fraction_of_step"] = results["pairs"]["seconds"] / step["seconds"]
  if "select" in results:
    out.update(select_s=results["select"]["one_click_s"],
               scale_stack_s=results["select"]["stack_s"])
  if "volume" in results:
    out.update(segment_volume_s=results["volume"]["seconds"],
               segment_volume_peak_mb=results["volume"]["peak_mb"])
    for name in ("new_k_s", "click_s", "stack_s", "stack_click_s", "stack_edit_s"):
      if name in results["volume"]:
        out[f"segment_volume_{name}"] = results["volume"][name]
  if "time_to_result" in results and "seconds" in results["time_to_result"]:
    out["time_to_result_s"] = results["time_to_result"]["seconds"]
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--only", default=",".join(SECTIONS),
                      help=f"comma-separated sections of {SECTIONS}")
  parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 repeat")
  parser.add_argument("--json", action="store_true", help="print the headline JSON last")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--segment_sizes", default="128,512,2048",
                      help="comma-separated sides of the segment benchmark")
  parser.add_argument("--train_variants", default="",
                      help="comma-separated train_step variants (default: all)")
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--image_size", type=int, default=128)
  parser.add_argument("--peak_gflops", type=float, default=200.0,
                      help="the device's fp32 peak for the fraction (2-core Zen 4: ~160-240)")
  parser.add_argument("--retina_root", default=str(REPO_ROOT.parent / "shared/data/retina_ga"))
  parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "results.json"))
  parser.add_argument("--child_segment_memory", type=int, default=0, help=argparse.SUPPRESS)
  parser.add_argument("--child_volume", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.quick:
    args.repeats, args.batch_size, args.image_size = 1, 2, 32
  if args.child_segment_memory:
    _child_segment_memory(args.child_segment_memory, args)
    return
  if args.child_volume:
    _child_volume(args)
    return
  sections = [s for s in args.only.split(",") if s]
  unknown = set(sections) - set(SECTIONS)
  if unknown:
    parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
  settings = {k: v for k, v in vars(args).items()
              if k not in ("child_segment_memory", "child_volume")}
  settings["command"] = "python benchmarks/run.py " + " ".join(sys.argv[1:])
  results = {"machine": _machine(), "settings": settings}
  if "train_step" in sections:
    results["train_step"] = bench_train_step(args)
  if "conv_layers" in sections and not args.quick:
    results["conv_layers"] = bench_conv_layers(args)
  if "pairs" in sections:
    results["pairs"] = bench_pairs(args)
  if "segment" in sections:
    results["segment"] = bench_segment(args)
  if "select" in sections:
    results["select"] = bench_select(args)
  if "volume" in sections:
    results["volume"] = bench_volume(args)
  if "torch" in sections and not args.quick:
    jax_seconds = results.get("train_step", {}).get(f"default@batch{args.batch_size}",
                                                    {}).get("seconds")
    results[f"torch@batch{args.batch_size}"] = bench_torch(args, jax_seconds)
  if "time_to_result" in sections and not args.quick:
    results["time_to_result"] = bench_time_to_result(args)
  print(_markdown(results))
  if not args.quick:
    # Results of other sections and other machines are kept; this run's replace theirs.
    output = pathlib.Path(args.output)
    merged = json.loads(output.read_text()) if output.exists() else {}
    key = f"{results['machine']['platform']}:{results['machine']['device']}"
    machine_results = merged.setdefault(key, {})
    for section, value in results.items():
      if section in ("train_step", "segment", "conv_layers"):  # Rows merge by name.
        machine_results.setdefault(section, {}).update(value)
      else:
        machine_results[section] = value
    output.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    output.with_suffix(".md").write_text(
        "# Benchmark results\n\nWritten by `benchmarks/run.py`.\n\n" +
        "\n".join(_markdown(r) for r in merged.values()))
  if args.json:
    print(json.dumps(_headline(results)))


if __name__ == "__main__":
  main()
