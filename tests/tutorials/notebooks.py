"""Execute a tutorial notebook as a reader would, and read back the results it reports.

A tutorial ends with a cell that displays its headline results as JSON
(``display({"application/json": results, "text/plain": ...}, raw=True)``); :func:`execute` runs
the notebook in a fresh "Workbench (local)" kernel (nbclient) inside ``workdir`` (the files it
writes stay there) and returns that JSON. Also a command, to time one tutorial by hand::

    .venv/bin/python -m tests.tutorials.notebooks tutorials/01-quickstart.ipynb
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

KERNEL = "workbench-local"
RESULTS_MIME = "application/json"


def execute(path: Path, workdir: Path, timeout: float = 600) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
    """Run every cell of the notebook at ``path`` with ``workdir`` as the current directory;
    the executed notebook and the results of its last JSON output."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, kernel_name=KERNEL, timeout=timeout,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook, reported_results(notebook)


def reported_results(notebook: nbformat.NotebookNode) -> dict[str, Any]:
    """The last ``application/json`` output of the notebook (its headline results)."""
    found = [output["data"][RESULTS_MIME] for cell in notebook.cells if cell.cell_type == "code"
             for output in cell.get("outputs", []) if RESULTS_MIME in output.get("data", {})]
    if not found:
        raise AssertionError("the notebook displayed no results as application/json")
    return dict(found[-1])


if __name__ == "__main__":
    for name in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            _, results = execute(Path(name).resolve(), Path(scratch))
            print(f"{name}: {time.perf_counter() - started:.1f} s {results}")
