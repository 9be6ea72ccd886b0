"""What the command-line programs share: how they stop on an error the user can fix."""

from __future__ import annotations

import contextlib
import os
import pathlib
import sys
from typing import Iterator, NoReturn

# Errors a user can fix without reading a traceback: bad data, config or arguments
# (ValueError, and the loaders' DataError), files and disks (OSError), and a run whose
# loss diverged (train.NonFiniteLossError is a FloatingPointError).
USER_ERRORS = (ValueError, OSError, FloatingPointError)


def program_name() -> str:
  """The program as started: "cuts_jax.apps.predict" for `python -m cuts_jax.apps.predict`."""
  spec = getattr(sys.modules.get("__main__"), "__spec__", None)
  return spec.name if spec is not None else pathlib.Path(sys.argv[0]).name


def exit_with_error(error: BaseException) -> NoReturn:
  """Ends the program with status 1 after one line on stderr: `<program>: error: <error>`.

  The process leaves at once, without interpreter teardown, so that nothing
  (such as tensorstore's "Event loop is closed" from its background threads)
  can print after that line: it stays the last thing the user reads.
  """
  print(f"{program_name()}: error: {error}", file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(1)


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
  """Runs the body; a `USER_ERRORS` exception ends the program via `exit_with_error`."""
  try:
    yield
  except USER_ERRORS as error:
    exit_with_error(error)
