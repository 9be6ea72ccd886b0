"""Console output: the run's own lines, plainly; the libraries' chatter only when asked for.

By default (absl's `--verbosity` not given, or 0 or less) a run shows its own
log lines as they are, without absl's prefix ("I1201 09:00:00.123 ...
train.py:123]"), warnings and errors as "warning: ...", and hides what other
libraries log below WARNING (orbax per checkpoint, jax per compilation) and
JAX's probing of the backends ("Unable to initialize backend 'tpu'", "An
NVIDIA GPU may be present on this machine, ..."). `--verbosity=1` shows
everything, debug lines included, in absl's usual format.
"""

from __future__ import annotations

import functools
import logging as std_logging
import os
import pathlib
import platform
import site
import sysconfig
from typing import Optional

from absl import flags
from absl import logging

__all__ = ["processor_name", "setup_logging"]

# Loggers of JAX's backend discovery: what they say short of an error is noise to a user.
_BACKEND_PROBE_LOGGERS = ("jax._src.xla_bridge",)

_PACKAGE_DIR = os.path.realpath(pathlib.Path(__file__).parents[1])


def _library_dirs() -> tuple[str, ...]:
  paths = sysconfig.get_paths()
  dirs = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
  dirs.update(site.getsitepackages())
  dirs.add(site.getusersitepackages())
  return tuple(os.path.realpath(d) + os.sep for d in dirs)


_LIBRARY_DIRS = _library_dirs()


@functools.lru_cache(maxsize=1024)
def _is_own(pathname: str) -> bool:
  """Whether a log line comes from cuts_jax or a script of its user, not from a library."""
  path = os.path.realpath(pathname)
  return path.startswith(_PACKAGE_DIR + os.sep) or not path.startswith(_LIBRARY_DIRS)


class _LibraryChatter(std_logging.Filter):
  """Drops other libraries' lines below WARNING, and backend probes below ERROR."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.name.startswith(_BACKEND_PROBE_LOGGERS):
      return record.levelno >= std_logging.ERROR
    return record.levelno >= std_logging.WARNING or _is_own(record.pathname)


class _PlainFormatter(std_logging.Formatter):
  """The message alone; "warning: " (or "error: ") before anything worse than INFO."""

  def format(self, record: std_logging.LogRecord) -> str:
    text = record.getMessage()
    if record.levelno >= std_logging.WARNING:
      text = f"{record.levelname.lower()}: {text}"
    if record.exc_info:
      text += "\n" + self.formatException(record.exc_info)
    return text


def _requested_verbosity() -> Optional[int]:
  """absl's --verbosity when it was given on the command line, else None."""
  if flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present:
    return flags.FLAGS.verbosity
  return None


def setup_logging(*, verbosity: Optional[int] = None) -> None:
  """Sets up console logging for a run (a command-line program, a script, a notebook).

  Args:
    verbosity: absl's scale (1: debug, 0: info, -1: warning, -2: error).
      None: the `--verbosity` flag when one was given, else 0. Above 0,
      nothing is hidden and absl's own line format is kept.
  """
  if verbosity is None:
    verbosity = _requested_verbosity()
  if verbosity is None:
    verbosity = logging.INFO
  # The absl handler on the root logger, as `absl.app.run` installs it, so that
  # scripts and notebooks print the same lines as the command-line programs.
  logging.use_absl_handler()
  handler = logging.get_absl_handler()
  for old in [f for f in handler.filters if isinstance(f, _LibraryChatter)]:
    handler.removeFilter(old)
  logging.set_verbosity(verbosity)
  if verbosity > logging.INFO:
    handler.setFormatter(logging.PythonFormatter())
    return
  handler.addFilter(_LibraryChatter())
  handler.setFormatter(_PlainFormatter())


def processor_name() -> str:
  """The CPU's model name, for results files that record their hardware."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()
