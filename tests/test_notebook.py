"""The Colab notebook runs top to bottom (on CPU, with tiny settings), so it cannot rot."""

import json

import pytest

from conftest import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "cuts_jax_colab.ipynb"


def _tiny_parameters(workdir):
  return "\n".join([
      'CONFIG_NAME = "tiny"',
      "NUM_STEPS = 4",
      "IMAGE_SIZE = 32",
      "CROP_SIZE = 0",
      "DATA_LIMIT = 4",
      "NUM_CLUSTERS = 4",
      f"WORKDIR = {str(workdir)!r}",
      'REPO_URL = "unused: the test runs inside the checkout"',
  ])


def test_notebook_parameters_come_first():
  nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (the notebook "
                                 "extra: pip install 'cuts_jax[notebook]')")
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
  assert "parameters" in code_cells[0].metadata.get("tags", [])
  assert all(not cell.outputs for cell in code_cells), "commit the notebook without outputs"


@pytest.mark.slow  # A kernel that trains and segments: about a minute.
def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (the notebook "
                                 "extra: pip install 'cuts_jax[notebook]')")
  nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (the notebook "
                                 "extra: pip install 'cuts_jax[notebook]')")
  pytest.importorskip("ipykernel", reason="ipykernel is not installed (the notebook extra)")
  pytest.importorskip("matplotlib", reason="matplotlib is not installed (the viz extra)")
  # The kernel inherits the environment; conftest's MPLBACKEND=Agg would stop the inline
  # backend that shows the notebook's figures. Only after matplotlib is imported here: an
  # import without it would let this test process pick a display backend, and every later
  # test in the process (this one runs first under pytest-xdist) draw through it.
  monkeypatch.delenv("MPLBACKEND", raising=False)
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  parameters = next(cell for cell in notebook.cells
                    if "parameters" in cell.metadata.get("tags", []))
  workdir = tmp_path / "workdir"
  parameters.source = _tiny_parameters(workdir)
  # The kernel inherits this process's environment: CPU, with conftest's two forced devices.
  client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                   resources={"metadata": {"path": str(NOTEBOOK.parent)}})
  client.execute()
  outputs = [output for cell in notebook.cells if cell.cell_type == "code"
             for output in cell.outputs]
  text = "".join(output.get("text", "") for output in outputs)
  assert "Installing" not in text  # Inside the checkout nothing is pip-installed.
  assert "2 device(s) of type cpu" in text
  assert "trained to step 4" in text
  figures = [output for output in outputs if "image/png" in output.get("data", {})]
  assert len(figures) == 3  # Click figure, several images, training curves.
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
