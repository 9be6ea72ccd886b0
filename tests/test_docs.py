"""The documentation site builds strictly, and its docstring check catches what it should.

The build is what CI runs (`mkdocs build --strict`): a broken link, a page the nav misses or
a public name without a docstring fails it. It needs the `docs` extra; without it the test
is skipped with the reason.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO_ROOT

_DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python",
                  "mkdocs_gen_files", "mkdocs_literate_nav", "griffe")


def _missing_docs_packages():
  missing = []
  for name in _DOCS_PACKAGES:
    try:
      found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # A parent package is missing.
      found = False
    if not found:
      missing.append(name)
  return missing


requires_docs = pytest.mark.skipif(
    bool(_missing_docs_packages()),
    reason=f"the docs extra is not installed (missing {_missing_docs_packages()}): "
           "pip install '.[docs]'")


@pytest.fixture(scope="module")
def public_api():
  sys.path.insert(0, str(REPO_ROOT / "docs" / "scripts"))
  try:
    import public_api as module  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.pop(0)
  return module


@requires_docs
def test_the_site_builds_strictly(tmp_path):
  env = dict(os.environ, DISABLE_MKDOCS_2_WARNING="true", NO_MKDOCS_2_WARNING="1",
             PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
  site = tmp_path / "site"
  result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(site)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
  # Generated from the repository: the package's API page, every public module's page, a
  # results page with its figure beside it, the module map with its layers.
  assert "cuts_jax.segment" in (site / "reference" / "cuts_jax" / "index.html").read_text()
  assert (site / "reference" / "cuts_jax" / "io" / "medical" / "index.html").exists()
  assert (site / "results" / "brain_volume" / "index.html").exists()
  assert (site / "results" / "brain_volume.png").exists()
  assert "the method" in (site / "architecture" / "index.html").read_text()


@requires_docs
def test_the_docstring_check_names_what_lacks_a_docstring(tmp_path, public_api):
  package = tmp_path / "pkg"
  (package / "_private").mkdir(parents=True)
  (package / "__init__.py").write_text('"""A package."""\n')
  (package / "_private" / "__init__.py").write_text("")
  (package / "_private" / "hidden.py").write_text("def anything(x):\n  return x\n")
  (package / "tools.py").write_text(textwrap.dedent('''\
      """Tools."""

      __all__ = ["Box", "documented", "undocumented", "renamed"]


      def documented(x):
        """Returns x."""
        return x


      def undocumented(x):
        return x


      def renamed(y):
        """Returns y.

        Args:
          y, z: the value.
        """
        return y


      class Box:
        """A box."""

        def open(self):
          return self

        @property
        def size(self):
          return 1

        def _private(self):
          return None
      '''))
  (package / "plain.py").write_text("X = 1\n")
  problems = public_api.missing_docstrings("pkg", tmp_path)
  assert sorted(problems) == sorted([
      "pkg.plain (module docstring)",
      "pkg.tools.undocumented (function)",
      "pkg.tools.Box.open (method)",
      "pkg.tools.Box.size (property)",
      "pkg.tools.renamed (its docstring documents 'z', which it does not take)",
  ])

