"""Runs the notebooks at their defaults and stores them with their outputs (``make notebooks``).

Each notebook is executed top to bottom in a fresh kernel, in place, and its metadata records
what produced the outputs: a digest of its code cells (``tests/test_examples.py`` fails when the
code changed after the outputs were stored), the dataset and epochs it ran with, the seconds it
took and the tfcs3 version. A notebook that fails keeps its previous file.

    python examples/store_outputs.py                 # every notebook
    python examples/store_outputs.py cs3.ipynb       # some of them
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KEY = "tfcs3"


def source_digest(notebook: nbformat.NotebookNode) -> str:
    """SHA-256 of the notebook's code cells, in order."""
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(code).encode()).hexdigest()


def store(path: Path) -> float:
    """Executes ``path`` in place; returns the seconds it took."""
    from nbclient import NotebookClient

    import tfcs3

    notebook = nbformat.read(path, as_version=4)
    started = time.time()
    NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    seconds = time.time() - started
    first = next(c for c in notebook.cells if c.cell_type == "code")
    said = "".join(o.get("text", "") for o in first.get("outputs", []) if o.output_type == "stream")
    notebook.metadata[KEY] = {
        "source_sha256": source_digest(notebook),
        "run": said.strip().splitlines()[-1] if said.strip() else "",
        "seconds": round(seconds, 1),
        "tfcs3_version": tfcs3.__version__,
        "executed": time.strftime("%Y-%m-%d"),
    }
    nbformat.write(notebook, path)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook file names in examples/ (default: all)")
    args = parser.parse_args()
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the notebooks' own default (quiet) applies
    names = args.notebooks or sorted(p.name for p in HERE.glob("*.ipynb"))
    failed = []
    for name in names:
        path = HERE / name
        if not path.is_file():
            print(f"{name}: no such notebook in {HERE}", file=sys.stderr)
            return 2
        print(f"{name} ...", end="", flush=True)
        try:
            print(f" {store(path):.0f} s")
        except Exception as error:  # noqa: BLE001 - report every notebook, then fail
            print(f" FAILED: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
