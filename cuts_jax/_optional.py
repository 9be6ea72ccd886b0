"""Optional dependencies: declared once at module top, imported when first used.

    nibabel = _optional.module("nibabel", extra="medical", purpose="reading and writing NIfTI")

    def read_nifti(path):
      _optional.require(nibabel)   # Fails here, naming the extra, when it is not installed.
      image = nibabel.load(path)

The real import happens at the first attribute access (or `require`), not when
the declaring module is imported: `import cuts_jax` stays light, a missing
extra fails only the function that needs it, with the pip command that installs
it, and a test can hide a package (None in `sys.modules`) after cuts_jax is
imported.
"""

from __future__ import annotations

import importlib
import types
from typing import Optional


class _OptionalModule:
  """Stands for a module that may be missing; attribute access imports it."""

  def __init__(self, name: str, *, extra: Optional[str], purpose: str):
    self._optional_name = name
    self._optional_hint = (f'pip install "cuts_jax[{extra}]"' if extra
                           else f"pip install {name.split('.')[0]}")
    self._optional_purpose = purpose

  def _optional_import(self) -> types.ModuleType:
    try:
      return importlib.import_module(self._optional_name)
    except ImportError as error:
      raise ImportError(f"{self._optional_purpose} needs {self._optional_name}: "
                        f"{self._optional_hint}") from error

  def __getattr__(self, attribute: str):
    return getattr(self._optional_import(), attribute)

  def __repr__(self) -> str:
    return f"<optional module {self._optional_name!r}>"


def module(name: str, *, extra: Optional[str], purpose: str) -> types.ModuleType:
  """A stand-in for module `name` that imports it on first use.

  Args:
    name: the module, e.g. "matplotlib.pyplot".
    extra: the cuts_jax extra that installs it (named in the error), or None.
    purpose: what needs it, e.g. "drawing figures" (named in the error).
  """
  return _OptionalModule(name, extra=extra, purpose=purpose)  # type: ignore[return-value]


def require(*modules: types.ModuleType) -> tuple[types.ModuleType, ...]:
  """Imports optional modules now, so that a missing one fails before any work is done.

  Returns:
    The real modules, in order.

  Raises:
    ImportError: naming the pip command that installs the first missing one.
  """
  return tuple(m._optional_import() if isinstance(m, _OptionalModule) else m for m in modules)
