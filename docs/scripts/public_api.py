"""The package's public API as the docs see it: its public modules and what each exports.

Shared by the page generator (`gen_pages.py`, one API page per public module) and the build
hook (`docstring_check.py`, which fails the build on a public name without a docstring).
Modules are read statically with griffe, as mkdocstrings renders them; a name in `__all__`
that only exists at run time (the package's PEP 562 lazy imports) is looked up by importing
its module.
"""

import dataclasses
import importlib
import inspect
import pathlib

import griffe

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = "cuts_jax"


@dataclasses.dataclass(frozen=True)
class Module:
  """A public module of the package.

  Attributes:
    name: its dotted name, e.g. "cuts_jax.io.medical".
    path: its source file.
    is_package: whether it is a package's `__init__.py`.
  """
  name: str
  path: pathlib.Path
  is_package: bool


def module_name(path: pathlib.Path, root: pathlib.Path = ROOT) -> str:
  """The dotted name of the module in `path`, a file under `root`."""
  parts = path.relative_to(root).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_public(name: str) -> bool:
  """Whether a dotted module name has no private part (`cuts_jax._validation` has one)."""
  return not any(part.startswith("_") for part in name.split("."))


def all_modules(package: str = PACKAGE, root: pathlib.Path = ROOT) -> list[Module]:
  """Every module of `package`, private ones included, found by walking its folder."""
  return sorted((Module(module_name(path, root), path, path.name == "__init__.py")
                 for path in (root / package).rglob("*.py")),
                key=lambda module: module.name)


def public_modules(package: str = PACKAGE, root: pathlib.Path = ROOT) -> list[Module]:
  """The public modules of `package`: no part of their dotted name starts with `_`."""
  return [module for module in all_modules(package, root) if is_public(module.name)]


def load(package: str = PACKAGE, root: pathlib.Path = ROOT) -> griffe.Module:
  """The package as griffe reads it from source (nothing imported)."""
  return griffe.load(package, search_paths=[str(root)], resolve_aliases=True,
                     resolve_external=False, docstring_parser="google")


def _member(package: griffe.Module, dotted: str):
  """The griffe object of a dotted module name inside `package`."""
  obj = package
  for part in dotted.split(".")[1:]:
    obj = obj.members[part]
  return obj


def runtime_exports(package: griffe.Module, module: str) -> dict[str, str]:
  """Names in `module.__all__` that only exist at run time, with the path that defines each.

  Raises:
    ValueError: if such a name cannot be found by importing the module either.
  """
  static = _member(package, module)
  missing = [name for name in (static.exports or ()) if name not in static.members]
  if not missing:
    return {}
  imported = importlib.import_module(module)
  found = {}
  for name in missing:
    value = getattr(imported, name, None)
    if value is None or not hasattr(value, "__module__"):
      raise ValueError(f"{module}.__all__ names {name!r}, which the module does not define")
    found[name] = f"{value.__module__}.{value.__qualname__}"
  return found


def _documented(obj) -> bool:
  return bool(obj.docstring and obj.docstring.value.strip())


def _parameter_problems(function) -> list[str]:
  """Names in the Args section of `function`'s docstring that it does not take.

  The docstrings may document several parameters at once ("seed, graph: as in ..."), which
  griffe's own check reads as one unknown name (mkdocs.yml turns that check off).
  """
  taken = {parameter.name for parameter in function.parameters}
  documented = []
  for section in function.docstring.parse("google", warn_unknown_params=False,
                                          warn_missing_types=False):
    if section.kind.value in ("parameters", "other parameters"):
      documented += [name.strip().lstrip("*") for item in section.value
                     for name in item.name.split(",")]
  return [f"{function.path} (its docstring documents {name!r}, which it does not take)"
          for name in documented if name and name not in taken]


def _class_problems(path: str, cls) -> list[str]:
  """Public methods and properties that `cls` itself defines without a docstring."""
  problems = []
  for name, member in cls.members.items():
    if name.startswith("_") or member.is_alias:
      continue
    method = member.is_function
    prop = member.is_attribute and "property" in member.labels
    if (method or prop) and not _documented(member):
      problems.append(f"{path}.{name} ({'property' if prop else 'method'})")
    elif method:
      problems += _parameter_problems(member)
  return problems


def _runtime_problems(path: str) -> list[str]:
  """The same checks for an object found by importing it (a lazily exported name)."""
  module_path, _, qualname = path.rpartition(".")
  value = getattr(importlib.import_module(module_path), qualname)
  problems = [] if inspect.getdoc(value) else [path]
  if inspect.isclass(value):
    problems += [f"{path}.{name} (method)" for name, member in vars(value).items()
                 if not name.startswith("_") and inspect.isfunction(member)
                 and not inspect.getdoc(member)]
  return problems


def missing_docstrings(package: str = PACKAGE, root: pathlib.Path = ROOT) -> list[str]:
  """Every public module, exported function or class, and public method without a docstring.

  A module's public names are its `__all__` (a module without one exports nothing but its
  docstring). Constants need no docstring. A documented function whose Args name a
  parameter it does not take is listed too (a docstring left behind by a rename).

  Args:
    package: the package's name.
    root: the folder that holds the package.

  Returns:
    One line per problem, named where the object is defined, e.g.
    "cuts_jax.apps.train.main (function)"; empty when everything is documented.
  """
  loaded = load(package, root)
  problems = []
  for module in public_modules(package, root):
    static = _member(loaded, module.name)
    if not _documented(static):
      problems.append(f"{module.name} (module docstring)")
    for name in static.exports or ():
      if name not in static.members:
        continue
      member = static.members[name]
      target = member.final_target if member.is_alias else member
      if target.is_function or target.is_class:
        if not _documented(target):
          problems.append(f"{target.path} ({target.kind.value})")
        elif target.is_function:
          problems += _parameter_problems(target)
        if target.is_class:
          problems += _class_problems(target.path, target)
    for path in runtime_exports(loaded, module.name).values():
      problems += _runtime_problems(path)
  # A name exported by two modules (defined in one, re-exported by another) is listed once.
  return list(dict.fromkeys(problems))
