"""MkDocs hook: the build fails when a public name has no docstring.

mkdocstrings renders an undocumented function as a bare signature and says nothing, so this
hook walks every public module of cuts_jax before the build (`public_api.missing_docstrings`:
each module, each function and class its `__all__` exports, each public method and property
of those classes) and stops it with the list of names to document.
"""

import pathlib
import sys

from mkdocs.exceptions import PluginError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import public_api  # pylint: disable=wrong-import-position


def on_pre_build(config) -> None:  # pylint: disable=unused-argument
  """Raises `PluginError` naming every public name without a docstring."""
  problems = public_api.missing_docstrings()
  if problems:
    raise PluginError("public names without a docstring (write one, Google style, or make "
                      "the name private with a leading underscore):\n  " +
                      "\n  ".join(problems))
