"""Test set-up: two CPU devices (for the data-parallel tests) before JAX is imported."""

import os
import pathlib
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=2").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # pylint: disable=g-import-not-at-top

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The configs/ folder is imported as a package, as `python -m cuts_jax.main` does from the root.
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data(relative: str) -> pathlib.Path:
  """A path under ../shared/data, or skip the test with the reason."""
  path = SHARED_DATA / relative
  if not path.exists():
    pytest.skip(f"{path} is not present (the shared test data lives beside the repo).")
  return path
