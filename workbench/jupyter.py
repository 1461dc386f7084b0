"""Whether this code runs in a Jupyter kernel, and which one.

Several parts behave differently inside a kernel: ``fit`` shows its dashboard there, widgets
talk to the kernel's subshells, and a kernel started by a JupyterLab server with the Workbench
extension reports its cluster and fits to that server (:mod:`workbench.lab.reporting`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["current_kernel", "current_kernel_id"]


def current_kernel() -> Any | None:
    """The IPython kernel object running this code, or None outside a Jupyter kernel."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has imported it already
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None)


def current_kernel_id() -> str | None:
    """The Jupyter kernel id of this kernel (from its connection file ``kernel-<id>.json``)."""
    if current_kernel() is None:
        return None
    from ipykernel.connect import get_connection_file

    name = Path(get_connection_file()).stem
    return name.removeprefix("kernel-")
