"""Every notebook in examples/ is stored with the outputs of its current code, and runs top to
bottom (one epoch, on the embedded synthetic data: the same code as on MovieLens-100K, in a
fraction of the time), so no example can rot."""

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("store_outputs", EXAMPLES[0].parent / "store_outputs.py")
store_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(store_outputs)


#: Notebooks executed by ``make test-all`` only: each trains several models (T2Diff's also evaluates
#: its diffusion chain at several step counts). ``make test`` still checks their stored outputs
#: against their code, and executes the ones that cover the export and the contract.
SLOW = {"t2diff.ipynb", "cs3.ipynb", "fit.ipynb", "sparcode.ipynb"}


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


@pytest.mark.parametrize("notebook", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_notebook_is_stored_with_its_outputs(notebook):
    """Readers on GitHub see results: every code cell ran, in order, without an error, and the
    outputs came from the code as it is now (``make notebooks`` stores them)."""
    nb = nbformat.read(notebook, as_version=4)
    stored = nb.metadata.get(store_outputs.KEY)
    assert stored, f"{notebook.name} has no stored outputs: run `make notebooks`"
    assert stored["source_sha256"] == store_outputs.source_digest(nb), (
        f"{notebook.name}'s code changed after its outputs were stored: run `make notebooks`"
    )
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    outputs = [o for cell in code for o in cell.get("outputs", [])]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
