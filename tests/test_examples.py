"""Every notebook in examples/ runs top to bottom (one epoch, on the embedded synthetic data: the
same code as on MovieLens-100K, in a fraction of the time), so no example can rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.ipynb"))


#: Notebooks run by ``make test-all`` only (T2Diff's evaluates its diffusion chain at several step counts).
SLOW = {"t2diff.ipynb"}


@pytest.mark.parametrize(
    "notebook",
    [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW else p for p in EXAMPLES],
    ids=[p.name for p in EXAMPLES],
)
def test_notebook_runs(notebook, monkeypatch, tmp_path):
    monkeypatch.setenv("TFCS3_EXAMPLE_EPOCHS", "1")
    monkeypatch.setenv("TFCS3_EXAMPLE_DATASET", "synthetic")
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [
        o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []) if o.output_type == "error"
    ]
    assert not errors


def test_there_are_examples():
    assert EXAMPLES, "examples/ has no notebooks"
