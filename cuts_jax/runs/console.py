"""Console output: progress lines without the libraries' chatter."""

import logging as std_logging
import pathlib
import platform

from absl import logging

__all__ = ["processor_name", "setup_logging"]


class _QuietLibraries(std_logging.Filter):
  """Drops the INFO lines orbax and jax write for every checkpoint and compile."""

  NOISY_PATHS = ("/orbax/", "/jax/_src/", "/etils/")

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.WARNING:
      return True
    return not any(part in record.pathname for part in self.NOISY_PATHS)


def setup_logging() -> None:
  """INFO-level progress from cuts_jax; other libraries only from WARNING up.

  The filter sits on the "absl" logger itself, so it also applies where the
  records reach another handler (a notebook's, for instance).
  """
  logging.set_verbosity(logging.INFO)
  absl_logger = std_logging.getLogger("absl")
  if not any(isinstance(f, _QuietLibraries) for f in absl_logger.filters):
    absl_logger.addFilter(_QuietLibraries())


def processor_name() -> str:
  """The CPU's model name, for results files that record their hardware."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()
