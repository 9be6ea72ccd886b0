"""Speed and memory of `cuts_jax.segment_hierarchy`, beside the authors' diffusion condensation.

    python benchmarks/hierarchy.py [--workdir=/tmp/retina] \
        [--msphate_python=/path/to/venv-with-multiscale-phate/bin/python]

For each image side (128, 256, 512) the retina sample image of scikit-image
is segmented at its own size (`at_training_size=False`): the median wall time
of `segment_hierarchy` over `--repeats` runs after one warm-up (compilation),
split into the features (the jitted encoder and the projection) and the
hierarchy built from them (`hierarchy_from_features`: landmark spectral
coordinates, fine k-means, connected segments, Ward merges). The peak memory
of the largest size is measured in a fresh process (its VmHWM).

The comparison: the same 128 x 128 features (16,384 points) given to the
authors' diffusion condensation, `multiscale_phate.Multiscale_PHATE().fit`
(PyPI `multiscale-phate`, as their MICCAI 2024 release calls it), timed in the
interpreter `--msphate_python` (it pins old numpy/scikit-learn releases, so it
lives in its own environment). Both run in this one command, so their ratio is
measured under the same load. Results go to benchmarks/hierarchy.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

import cuts_jax  # pylint: disable=g-import-not-at-top
from cuts_jax import defaults
from cuts_jax import hierarchy
from cuts_jax import pixels
from cuts_jax import segmentation
from cuts_jax import step as step_lib

import run  # pylint: disable=g-import-not-at-top  (benchmarks/run.py, beside this file)

_MSPHATE_SNIPPET = """
import json, sys, time
import numpy as np
import multiscale_phate
from multiscale_phate import version
points = np.load(sys.argv[1])
started = time.perf_counter()
operator = multiscale_phate.Multiscale_PHATE(random_state=0, n_jobs=1)
operator.fit(points)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "levels": len(operator.NxTs),
                  "version": version.__version__}))
"""



def _params(workdir: str | None):
  if workdir:
    return cuts_jax.load(workdir)
  config = defaults.get_config()
  state = step_lib.create_train_state(jax.random.key(0), config, image_shape=(64, 64, 3))
  return segmentation.SegmentationParams.from_train_state(state, config)


def _image(size: int) -> np.ndarray:
  from skimage import data as sample  # pylint: disable=import-outside-toplevel
  return pixels.resize_image(pixels.to_unit_range(sample.retina()), (size, size))


def _median(function, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    function()
    times.append(time.perf_counter() - started)
  return statistics.median(times)


def _child_memory(size: int, workdir: str | None) -> None:
  params = _params(workdir)
  image = _image(size)
  before = run.peak_rss_mb()
  cuts_jax.segment_hierarchy(params, image, at_training_size=False)
  peak = run.peak_rss_mb()
  print(json.dumps({"peak_mb": peak, "before_mb": before}))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", default=None, help="a trained model (default: untrained "
                      "paper encoder; the timings do not depend on the weights)")
  parser.add_argument("--sizes", default="128,256,512")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--msphate_python", default=None)
  parser.add_argument("--msphate_timeout", type=float, default=900.0,
                      help="seconds; a slower fit is reported as a lower bound")
  parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "hierarchy.md"))
  parser.add_argument("--child_memory", type=int, default=0, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child_memory:
    _child_memory(args.child_memory, args.workdir)
    return
  params = _params(args.workdir)
  sizes = [int(s) for s in args.sizes.split(",")]
  rows = []
  features_128 = None
  for size in sizes:
    image = _image(size)
    cuts_jax.segment_hierarchy(params, image, at_training_size=False)  # Compiles.
    features = segmentation.segment_features(params, image)
    if size == 128:
      features_128 = features
    total = _median(lambda: cuts_jax.segment_hierarchy(params, image, at_training_size=False),
                    args.repeats)
    feature_s = _median(lambda: segmentation.segment_features(params, image), args.repeats)
    tree_s = _median(lambda: hierarchy.hierarchy_from_features(features), args.repeats)
    levels = hierarchy.hierarchy_from_features(features)
    rows.append({"size": size, "seconds": total, "features_s": feature_s, "hierarchy_s": tree_s,
                 "levels": len(levels.labels)})
    print(f"segment_hierarchy {size}x{size}: {total:.3f} s (features {feature_s:.3f} s, "
          f"hierarchy {tree_s:.3f} s), {len(levels.labels)} levels", flush=True)
  child = subprocess.run([sys.executable, __file__, "--child_memory", str(sizes[-1])]
                         + ([f"--workdir={args.workdir}"] if args.workdir else []),
                         capture_output=True, text=True, check=True)
  memory = json.loads(child.stdout.strip().splitlines()[-1])
  print(f"peak memory at {sizes[-1]}x{sizes[-1]}: {memory['peak_mb']:.0f} MB", flush=True)
  msphate = None
  if args.msphate_python and features_128 is not None:
    with tempfile.TemporaryDirectory() as folder:
      points = pathlib.Path(folder) / "features.npy"
      np.save(points, features_128.reshape(-1, features_128.shape[-1]).astype(np.float64))
      ours = _median(lambda: hierarchy.hierarchy_from_features(features_128), args.repeats)
      try:
        result = subprocess.run([args.msphate_python, "-c", _MSPHATE_SNIPPET, str(points)],
                                capture_output=True, text=True, timeout=args.msphate_timeout)
      except subprocess.TimeoutExpired:
        result = None
      if result is None:
        msphate = {"seconds": args.msphate_timeout, "levels": "?", "version": "?",
                   "ours_s": ours, "timed_out": True}
        print(f"diffusion condensation did not finish in {args.msphate_timeout:.0f} s; "
              f"hierarchy_from_features {ours:.3f} s", flush=True)
      elif result.returncode == 0:
        msphate = json.loads(result.stdout.strip().splitlines()[-1])
        msphate["ours_s"] = ours
        print(f"diffusion condensation (multiscale_phate {msphate['version']}) on the same "
              f"128x128 features: {msphate['seconds']:.1f} s, {msphate['levels']} levels; "
              f"hierarchy_from_features {ours:.3f} s: {msphate['seconds'] / ours:.0f}x faster",
              flush=True)
      else:
        reason = (f"killed by signal {-result.returncode} (9: the kernel's out-of-memory "
                  "killer)" if result.returncode < 0 else
                  result.stderr.strip().splitlines()[-1] if result.stderr.strip() else
                  f"exit status {result.returncode}")
        msphate = {"error": reason}
        print(f"multiscale_phate failed: {msphate['error']}", flush=True)
  lines = ["# segment_hierarchy: speed and memory", "",
           f"Produced on {datetime.date.today().isoformat()} by", "", "```bash",
           "python benchmarks/hierarchy.py " + " ".join(sys.argv[1:]), "```", "",
           f"- Machine: {platform.processor() or platform.machine()}, "
           f"{jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__}, "
           "shared with other jobs (ratios from this one run are what to compare).",
           f"- Model: {args.workdir or 'the paper encoder, untrained'}; image: scikit-image's "
           "retina sample resized to each side, segmented at its own size.",
           f"- Median of {args.repeats} runs after one warm-up run (compilation excluded).", "",
           "| side | segment_hierarchy (s) | features (s) | hierarchy from features (s) | "
           "levels |", "| --- | --- | --- | --- | --- |"]
  lines += [f"| {r['size']} | {r['seconds']:.3f} | {r['features_s']:.3f} | "
            f"{r['hierarchy_s']:.3f} | {r['levels']} |" for r in rows]
  lines += ["", f"Peak memory of one `segment_hierarchy` at {sizes[-1]}x{sizes[-1]} in a fresh "
            f"process: {memory['peak_mb']:.0f} MB (the whole process: jax, the model and the "
            "call).", ""]
  if msphate and msphate.get("timed_out"):
    lines += [f"Diffusion condensation (`multiscale_phate.Multiscale_PHATE(random_state=0)"
              f".fit`) of the same 128x128 features (16,384 points) did not finish within "
              f"{msphate['seconds']:.0f} s (stopped); `hierarchy_from_features` "
              f"{msphate['ours_s']:.3f} s: more than **{msphate['seconds'] / msphate['ours_s']:.0f}x**"
              " faster in this run.", ""]
  elif msphate and "seconds" in msphate:
    lines += [f"Diffusion condensation (`multiscale_phate.Multiscale_PHATE(random_state=0)"
              f".fit`, version {msphate['version']}) of the same 128x128 features (16,384 "
              f"points): {msphate['seconds']:.1f} s for {msphate['levels']} levels; "
              f"`hierarchy_from_features` {msphate['ours_s']:.3f} s: "
              f"**{msphate['seconds'] / msphate['ours_s']:.0f}x** faster in this run.", ""]
  elif msphate:
    lines += [f"multiscale_phate did not run: {msphate['error']}", ""]
  pathlib.Path(args.output).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
