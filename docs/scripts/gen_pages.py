"""Writes the site's generated pages from the repository (run by mkdocs-gen-files each build).

None of these pages is a copy kept by hand:
- `index.md`, `changelog.md`, `license.md`: README.md, CHANGELOG.md and LICENSE;
- the hand-written pages under docs/, whose links to repository files (as GitHub shows them)
  are rewritten to the pages those files become;
- `reference/`: one page per public module of cuts_jax, found by walking the package
  (`public_api.public_modules`), so a module added or renamed appears without editing the
  docs; its nav (`reference/SUMMARY.md`) follows the package's tree;
- `architecture.md`: the hand-written page plus the module map, every module in its layer
  as `tests/test_layers.py` assigns them (the table the layer test checks imports against)
  with the first paragraph of its docstring;
- `results/`, `benchmarks/`: every Markdown file of experiments/results/ and benchmarks/,
  with the figures and tables beside it (a figure its file does not show is added under it);
  the hand-written `index.md` of each comes first in its nav.

Links between repository files are rewritten to the pages they became, so a README link that
works on GitHub works on the site, and a link to a file the site lacks fails the strict build.
"""

import ast
import logging
import pathlib
import posixpath
import re
import sys

import mkdocs_gen_files

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import public_api  # pylint: disable=wrong-import-position

ROOT = public_api.ROOT
LOG = logging.getLogger("mkdocs.plugins.gen_pages")

# Repository folders whose Markdown files become pages: (folder, its folder on the site).
FOLDERS = (("experiments/results", "results"), ("benchmarks", "benchmarks"))
# Files beside those pages that the site carries: figures are shown, the others linked.
FIGURES = (".png", ".jpg", ".svg")
DATA_FILES = (".csv", ".json", ".txt")
# Repository files that become one page each.
SINGLE_PAGES = {"README.md": "index.md", "CHANGELOG.md": "changelog.md",
                "LICENSE": "license.md"}

# `[text](target)` and `![alt](target)`, target without spaces, an optional "title".
_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
_EXTERNAL = re.compile(r"^([a-z][a-z0-9+.-]*:|#|/)", re.IGNORECASE)


def _site_paths() -> dict[str, str]:
  """Repository path -> site path of every repository file the generated pages carry."""
  paths = dict(SINGLE_PAGES)
  for folder, site in FOLDERS:
    for path in sorted((ROOT / folder).iterdir()):
      if path.suffix in (".md",) + FIGURES + DATA_FILES:
        paths[f"{folder}/{path.name}"] = f"{site}/{path.name}"
  return paths


SITE_PATHS = _site_paths()


def rewrite_links(text: str, source: str, page: str) -> str:
  """Rewrites the relative links of `source` (a repository path) for the site page `page`.

  Targets under docs/ lose that prefix; other repository files go to the page they became
  (`SITE_PATHS`). A target the site lacks is logged as a warning, which fails a strict build.
  Fenced code is left alone.
  """

  def replace(match: re.Match) -> str:
    target = match.group(2)
    if _EXTERNAL.match(target):
      return match.group(0)
    path, hash_, anchor = target.partition("#")
    repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
    if repo_path in SITE_PATHS:
      site_path = SITE_PATHS[repo_path]
    elif repo_path.startswith("docs/"):
      site_path = repo_path[len("docs/"):]
    else:
      LOG.warning("%s links to %s, which the site does not carry: link to a page under "
                  "docs/ or add the file to docs/scripts/gen_pages.py", source, repo_path)
      return match.group(0)
    relative = posixpath.relpath(site_path, posixpath.dirname(page) or ".")
    return f"{match.group(1)}{relative}{hash_}{anchor}{match.group(3)}"

  # Prose between fences is rewritten as a whole: a link's text may span lines.
  chunks, prose, fenced = [], [], False
  for line in text.splitlines(keepends=True):
    fence = line.lstrip().startswith(("```", "~~~"))
    if fence and not fenced:
      chunks.append(_LINK.sub(replace, "".join(prose)))
      prose = []
    fenced ^= fence
    (chunks if fenced or fence else prose).append(line)
  chunks.append(_LINK.sub(replace, "".join(prose)))
  return "".join(chunks)


def _write(page: str, text: str, source: str) -> None:
  with mkdocs_gen_files.open(page, "w") as f:
    f.write(text)
  mkdocs_gen_files.set_edit_path(page, source)


def single_pages() -> None:
  """index.md, changelog.md and license.md."""
  for source, page in SINGLE_PAGES.items():
    text = (ROOT / source).read_text(encoding="utf-8")
    if source == "LICENSE":
      text = f"# License\n\n```text\n{text}```\n"
    _write(page, rewrite_links(text, source, page), source)


def handwritten_pages() -> None:
  """The pages under docs/, with links to repository files rewritten like the README's.

  So a guide can link `../../experiments/results/retina.md`, which works on GitHub too.
  """
  docs = ROOT / "docs"
  for path in sorted(docs.rglob("*.md")):
    page = path.relative_to(docs).as_posix()
    if page.startswith("scripts/"):
      continue
    text = path.read_text(encoding="utf-8")
    rewritten = rewrite_links(text, f"docs/{page}", page)
    if rewritten != text:
      _write(page, rewritten, f"docs/{page}")


def _title(text: str, default: str) -> str:
  for line in text.splitlines():
    if line.startswith("# "):
      return line[2:].strip()
  return default


def folder_pages(folder: str, site: str) -> None:
  """One page per Markdown file of `folder`, with the files beside it, and its nav."""
  source_dir = ROOT / folder
  pages = sorted(source_dir.glob("*.md"))
  stems = sorted((path.stem for path in pages), key=len, reverse=True)
  owned = {path.stem: [] for path in pages}
  for path in sorted(source_dir.iterdir()):
    if path.suffix not in FIGURES + DATA_FILES:
      continue
    with mkdocs_gen_files.open(f"{site}/{path.name}", "wb") as f:
      f.write(path.read_bytes())
    # A file belongs to the page with the longest name it starts with
    # (retina_ablation_*.png to retina_ablation.md, retina_cuts.png to retina.md).
    owner = next((stem for stem in stems
                  if path.stem == stem or path.stem.startswith(stem + "_")), None)
    if owner is not None:
      owned[owner].append(path)

  nav = ["* [Overview](index.md)\n"]
  for path in pages:
    text = path.read_text(encoding="utf-8").rstrip() + "\n"
    figures = [p.name for p in owned[path.stem] if p.suffix in FIGURES and p.name not in text]
    data = [p.name for p in owned[path.stem] if p.suffix in DATA_FILES and p.name not in text]
    if figures:
      text += "\n## Figures\n\n" + "".join(f"![{name}]({name})\n\n" for name in figures)
    if data:
      text += "\n## Files\n\n" + "".join(f"- [{name}]({name})\n" for name in data)
    page = f"{site}/{path.name}"
    _write(page, rewrite_links(text, f"{folder}/{path.name}", page), f"{folder}/{path.name}")
    nav.append(f"* [{_title(text, path.stem)}]({path.name})\n")
  with mkdocs_gen_files.open(f"{site}/SUMMARY.md", "w") as f:
    f.writelines(nav)


def _cell(docstring: str) -> str:
  """The first paragraph of a docstring on one line, safe in a Markdown table cell."""
  paragraph = docstring.strip().split("\n\n", 1)[0]
  return " ".join(paragraph.split()).replace("|", "\\|")


def _reference_page(module: public_api.Module) -> str:
  parts = module.name.split(".")
  if module.is_package:
    return posixpath.join(*parts, "index.md")
  return posixpath.join(*parts[:-1], parts[-1] + ".md")


def reference_pages() -> None:
  """One API page per public module, and the nav that nests them as the package does."""
  loaded = public_api.load()
  nav = mkdocs_gen_files.Nav()
  for module in public_api.public_modules():
    page = _reference_page(module)
    nav[tuple(module.name.split("."))] = page
    text = f"::: {module.name}\n"
    runtime = public_api.runtime_exports(loaded, module.name)
    if runtime:
      # Documented on their own modules' pages; listed here (one identifier, one page).
      text += (f"\n## Imported on first use\n\nAlso exported by `{module.name}`, imported "
               "from their own modules when first used:\n\n| name | what it is |\n"
               "| --- | --- |\n")
      for name, path in runtime.items():
        docstring = loaded[path.split(".", 1)[1]].docstring
        text += f"| [`{name}`][{path}] | {_cell(docstring.value if docstring else '')} |\n"
    source = module.path.relative_to(ROOT).as_posix()
    _write(f"reference/{page}", text, source)
  with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as f:
    f.writelines(nav.build_literate_nav())


def _layers() -> tuple[dict[str, int], dict[int, str]]:
  """LAYERS and LAYER_NAMES of tests/test_layers.py, read as literals (nothing imported)."""
  tree = ast.parse((ROOT / "tests" / "test_layers.py").read_text(encoding="utf-8"))
  found = {}
  for node in tree.body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
      name = getattr(node.targets[0], "id", None)
      if name in ("LAYERS", "LAYER_NAMES"):
        found[name] = ast.literal_eval(node.value)
  return found["LAYERS"], found["LAYER_NAMES"]


def _summary(path: pathlib.Path) -> str:
  """The first paragraph of a module's docstring, as a table cell."""
  return _cell(ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "")


def module_map() -> None:
  """Appends the module map, layer by layer, to the hand-written architecture.md."""
  layers, names = _layers()
  rows = {layer: [] for layer in sorted(names)}
  for module in public_api.all_modules():
    prefixes = [p for p in layers if module.name == p or module.name.startswith(p + ".")]
    if not prefixes:
      LOG.warning("%s has no layer: add it to LAYERS in tests/test_layers.py", module.name)
      continue
    file = module.path.relative_to(ROOT / public_api.PACKAGE).as_posix()
    cell = f"`{file}`"
    if public_api.is_public(module.name):
      cell = f"[{cell}](reference/{_reference_page(module)})"
    rows[layers[max(prefixes, key=len)]].append(f"| {cell} | {_summary(module.path)} |\n")
  with mkdocs_gen_files.open("architecture.md", "a") as f:
    for layer, lines in rows.items():
      f.write(f"\n## {layer}. {names[layer]}\n\n| module (in `cuts_jax/`) | what it holds |\n"
              "| --- | --- |\n")
      f.writelines(lines)


single_pages()
handwritten_pages()
for _folder, _site in FOLDERS:
  folder_pages(_folder, _site)
reference_pages()
module_map()
