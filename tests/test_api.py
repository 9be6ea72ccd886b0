"""The public API's conventions, checked on every public module and function.

Public modules are those under cuts_jax/ with no underscore in their dotted
name, and the packages whose `__init__` is an API (`cuts_jax.clustering`). Each declares `__all__`; what it defines without a leading underscore is
in `__all__`; optional arguments are keyword-only (`f(x, *, axis=-1)`, not
`f(x, axis=-1)`); a PRNG `key` comes before the `image`/`images` it acts on;
and `import cuts_jax` for segmenting does not import the training stack.
"""

import dataclasses
import importlib
import inspect
import pkgutil
import subprocess
import sys

import cuts_jax

def _is_public(info):
  """A module, or a package whose `__init__` holds an API (it declares `__all__`)."""
  if any(part.startswith("_") for part in info.name.split(".")):
    return False
  return not info.ispkg or hasattr(importlib.import_module(info.name), "__all__")


PUBLIC_MODULES = sorted(
    ["cuts_jax"] + [info.name for info in pkgutil.walk_packages(cuts_jax.__path__, "cuts_jax.")
                    if _is_public(info)])


def _module(name):
  return importlib.import_module(name)


def _own_definitions(module):
  """Functions and classes that `module` itself defines at its top level."""
  return {name: value for name, value in vars(module).items()
          if (inspect.isfunction(value) or inspect.isclass(value))
          and value.__module__ == module.__name__}


def _public_functions():
  """(qualified name, function) of every public function and public method."""
  found = []
  for module_name in PUBLIC_MODULES:
    module = _module(module_name)
    for name in module.__all__:
      value = getattr(module, name)
      if inspect.isfunction(value):
        found.append((f"{module_name}.{name}", value))
      elif inspect.isclass(value) and value.__module__ == module.__name__:
        for attribute, member in vars(value).items():
          generated = attribute == "__init__" and dataclasses.is_dataclass(value)
          public = not attribute.startswith("_") or attribute in ("__init__", "__call__")
          if inspect.isfunction(member) and public and not generated:
            found.append((f"{module_name}.{name}.{attribute}", member))
  return found


PUBLIC_FUNCTIONS = _public_functions()


def test_the_public_modules_are_found():
  assert {"cuts_jax.segmentation", "cuts_jax.io.datasets", "cuts_jax.evaluation.metrics",
          "cuts_jax.apps.predict", "cuts_jax.train", "cuts_jax.clustering"} <= set(PUBLIC_MODULES)
  assert len(PUBLIC_FUNCTIONS) > 100


def test_every_public_module_declares_its_api():
  problems = []
  for module_name in PUBLIC_MODULES:
    module = _module(module_name)
    if not hasattr(module, "__all__"):
      problems.append(f"{module_name} has no __all__")
      continue
    problems += [f"{module_name}.__all__ names {n}, which it lacks"
                 for n in module.__all__ if not hasattr(module, n)]
    problems += [f"{module_name}.{n}: add it to __all__ or make it private (_{n})"
                 for n in sorted(_own_definitions(module))
                 if not n.startswith("_") and n not in module.__all__]
  assert not problems, problems


def test_optional_arguments_are_keyword_only():
  problems = [f"{name}: make {parameter.name} keyword-only (f(x, *, axis=-1), not "
              "f(x, axis=-1))"
              for name, function in PUBLIC_FUNCTIONS
              for parameter in inspect.signature(function).parameters.values()
              if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
              and parameter.default is not inspect.Parameter.empty]
  assert not problems, problems


def test_a_key_comes_before_the_image():
  problems = []
  for name, function in PUBLIC_FUNCTIONS:
    parameters = list(inspect.signature(function).parameters)
    problems += [f"{name}: put `key` before `{image}`" for image in ("image", "images")
                 if "key" in parameters and image in parameters
                 and parameters.index("key") > parameters.index(image)]
  assert not problems, problems


def test_segmenting_does_not_import_the_training_stack():
  code = ("import sys, cuts_jax; "
          "assert 'optax' not in sys.modules, 'optax'; "
          "assert not any(m.startswith('orbax') for m in sys.modules), 'orbax'; "
          "assert callable(cuts_jax.segment) and callable(cuts_jax.load)")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]


def test_the_package_exports_the_segmenting_names_with_docstrings():
  assert {"segment", "embed", "load", "select", "train_and_evaluate",
          "SegmentationParams"} <= set(cuts_jax.__all__)
  for name in cuts_jax.__all__:
    assert getattr(cuts_jax, name).__doc__, name
