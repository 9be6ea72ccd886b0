"""The console: a run's own lines plainly; absl's prefixes and libraries' chatter only on request.

The training CLI's own output, from another working directory: test_configs.py.
"""

import logging as std_logging
import re

from absl import logging
import jax._src.xla_bridge
import orbax.checkpoint
import pytest

from conftest import REPO_ROOT
from cuts_jax.runs import console

# absl's line prefix, "I1201 09:00:00.123456 140140211575680 train.py:340] ".
ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")


def _record(logger, level, pathname, message):
  return std_logging.LogRecord(logger, level, pathname, 7, message, None, None)


OWN = _record("absl", std_logging.INFO, str(REPO_ROOT / "cuts_jax" / "train.py"),
              "step 2/4  loss 6.9688")
SCRIPT = _record("absl", std_logging.INFO, "/home/someone/my_experiment.py", "my own line")
PROBE = _record("jax._src.xla_bridge", std_logging.INFO, jax._src.xla_bridge.__file__,
                "Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so")
PROBE_WARNING = _record("jax._src.xla_bridge", std_logging.WARNING, jax._src.xla_bridge.__file__,
                        "An NVIDIA GPU may be present on this machine, but a CUDA-enabled "
                        "jaxlib is not installed. Falling back to cpu.")
LIBRARY_INFO = _record("absl", std_logging.INFO, orbax.checkpoint.__file__, "Saving checkpoint")
LIBRARY_WARNING = _record("absl", std_logging.WARNING, orbax.checkpoint.__file__, "disk is slow")


@pytest.fixture
def handler():
  yield logging.get_absl_handler()
  console.setup_logging(verbosity=logging.INFO)  # What the other tests expect.


def test_by_default_own_lines_are_plain_and_library_chatter_is_hidden(handler):
  console.setup_logging()
  assert handler.filter(OWN) and handler.format(OWN) == "step 2/4  loss 6.9688"
  assert handler.filter(SCRIPT) and handler.format(SCRIPT) == "my own line"
  assert not handler.filter(PROBE) and not handler.filter(PROBE_WARNING)
  assert not handler.filter(LIBRARY_INFO)
  assert handler.filter(LIBRARY_WARNING) and handler.format(LIBRARY_WARNING) == \
      "warning: disk is slow"


def test_verbosity_shows_everything_with_absl_prefixes(handler):
  console.setup_logging(verbosity=1)
  for record in (OWN, SCRIPT, PROBE, PROBE_WARNING, LIBRARY_INFO, LIBRARY_WARNING):
    assert handler.filter(record) and ABSL_PREFIX.match(handler.format(record)), record.msg
