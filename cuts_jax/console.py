"""Console output: progress lines without the libraries' chatter."""

import logging as std_logging

from absl import logging


class _QuietLibraries(std_logging.Filter):
  """Drops the INFO lines orbax and jax write for every checkpoint and compile."""

  NOISY_PATHS = ("/orbax/", "/jax/_src/", "/etils/")

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.WARNING:
      return True
    return not any(part in record.pathname for part in self.NOISY_PATHS)


def setup_logging() -> None:
  """INFO-level progress from cuts_jax on stderr; libraries only from WARNING up."""
  logging.set_verbosity(logging.INFO)
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
    handler.addFilter(_QuietLibraries())
