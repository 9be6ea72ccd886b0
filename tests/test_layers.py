"""The package's layers: no module imports from a layer above its own, and no import cycles.

Read from the source with `ast` (nothing is imported), so the test costs nothing. LAYERS and
LAYER_NAMES are also the docs' module map (docs/scripts/gen_pages.py reads them as literals).
"""

import ast

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "cuts_jax"

# Lowest first. A module belongs to the layer of the longest prefix listed here.
LAYERS = {
    # 0, core: imports nothing of the package above the core.
    "cuts_jax._labels": 0,
    "cuts_jax._measured": 0,
    "cuts_jax._optional": 0,
    "cuts_jax._validation": 0,
    "cuts_jax.defaults": 0,
    "cuts_jax.pixels": 0,
    # 1, input/output and run plumbing.
    "cuts_jax.io": 1,
    "cuts_jax.runs": 1,
    # 2, the method.
    "cuts_jax.augment": 2,
    "cuts_jax.batches": 2,
    "cuts_jax.clustering": 2,
    "cuts_jax.conv": 2,
    "cuts_jax.embedding": 2,
    "cuts_jax.features": 2,
    "cuts_jax.scales": 2,
    "cuts_jax.losses": 2,
    "cuts_jax.model": 2,
    "cuts_jax.regions": 2,
    "cuts_jax.sampling": 2,
    "cuts_jax.segment_settings": 2,
    "cuts_jax.segmentation": 2,
    "cuts_jax.step": 2,
    "cuts_jax.train": 2,
    "cuts_jax.trained": 2,
    "cuts_jax.volume": 2,
    "cuts_jax.volume_features": 2,
    # 3, evaluation.
    "cuts_jax.evaluation": 3,
    # 4, the programs, and the package's public face.
    "cuts_jax.apps": 4,
    "cuts_jax.main": 4,
    "cuts_jax": 4,
}
# What each layer is, as the module map in the docs heads it.
LAYER_NAMES = {0: "core", 1: "input/output and run plumbing", 2: "the method", 3: "evaluation",
               4: "the programs and the public API"}


def _module_name(path):
  parts = path.relative_to(REPO_ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module):
  prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".")]
  return LAYERS[max(prefixes, key=len)] if prefixes else None


def _imports(module):
  """The cuts_jax modules `module` imports, anywhere in its source."""
  tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      # `from cuts_jax.io import datasets` imports the module cuts_jax.io.datasets;
      # `from cuts_jax.segmentation import segment` imports cuts_jax.segmentation.
      for alias in node.names:
        name = f"{node.module}.{alias.name}"
        found.add(name if name in MODULES else node.module)
  return {name for name in found if name == "cuts_jax" or name.startswith("cuts_jax.")}


def test_every_module_has_a_layer():
  assert not [m for m in MODULES if _layer(m) is None], "add new modules to LAYERS"


def test_every_layer_has_a_name():
  assert set(LAYERS.values()) == set(LAYER_NAMES)


def test_no_module_imports_from_a_higher_layer():
  problems = [f"{module} (layer {_layer(module)}) imports {name} (layer {_layer(name)})"
              for module in MODULES for name in sorted(_imports(module))
              if _layer(name) is not None and _layer(name) > _layer(module)]
  assert not problems, problems


def test_core_modules_import_only_the_core():
  core = [m for m in MODULES if _layer(m) == 0]
  outside = {m: sorted(n for n in _imports(m) if _layer(n) != 0) for m in core}
  assert core and not {m: names for m, names in outside.items() if names}


def test_there_are_no_import_cycles():
  graph = {module: sorted(n for n in _imports(module) if n in MODULES and n != module)
           for module in MODULES}
  state, path = {}, []

  def visit(module):
    state[module] = "open"
    path.append(module)
    for name in graph[module]:
      if state.get(name) == "open":
        raise AssertionError("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
      if name not in state:
        visit(name)
    path.pop()
    state[module] = "done"

  for module in graph:
    if module not in state:
      visit(module)
