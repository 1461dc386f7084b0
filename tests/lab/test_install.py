"""The package installs its JupyterLab extension and enables its server extension."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

JUPYTER = str(Path(sys.executable).with_name("jupyter"))


def listing(*command: str) -> str:
    done = subprocess.run([JUPYTER, *command], capture_output=True, text=True, timeout=120, check=True)
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # without the colours


def test_jupyter_labextension_list_shows_the_extension_enabled_and_ok():
    assert re.search(r"analytics-workbench v\S+ enabled OK \(python, analytics-workbench\)",
                     listing("labextension", "list"))


def test_jupyter_server_extension_list_shows_workbench_lab_enabled_and_ok():
    found = listing("server", "extension", "list")
    assert re.search(r"workbench\.lab enabled", found) and re.search(r"workbench\.lab\s+OK", found)
