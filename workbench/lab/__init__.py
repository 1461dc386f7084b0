"""The Jupyter server extension behind the Workbench sidebar in JupyterLab.

Pieces, in the order a request meets them:

- :mod:`~workbench.lab.handlers`: the authenticated REST API under ``/workbench/api/``, which
  the TypeScript extension in ``extensions/`` polls;
- :mod:`~workbench.lab.hub`: asks the server's kernels over a local channel of Unix sockets
  (:mod:`~workbench.lab.channel`), no network port involved;
- :mod:`~workbench.lab.reporting`: the kernel's end, which answers from its live Workbench
  context and its fits (:mod:`~workbench.lab.jobs`);
- :mod:`~workbench.lab.clusters`: the cluster records, and the local clusters the server
  starts itself ("New local cluster").

The extension (:class:`~workbench.lab.app.WorkbenchLab`) is enabled by the config file the
package installs (``etc/jupyter/jupyter_server_config.d/workbench.json``).
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The server extension (imported only by the Jupyter server: kernels import lighter parts)."""
    from workbench.lab.app import WorkbenchLab

    return [{"module": "workbench.lab.app", "app": WorkbenchLab}]
