"""The Workbench server extension: the REST API, the kernels' channel folder, the server's clusters."""

from __future__ import annotations

import os
import shutil

from jupyter_server.extension.application import ExtensionApp

from workbench.lab.channel import CHANNEL_ENV_VAR, create_channel_dir
from workbench.lab.clusters import ServerClusters
from workbench.lab.handlers import routes
from workbench.lab.hub import KernelHub

__all__ = ["WorkbenchLab"]


class WorkbenchLab(ExtensionApp):
    """Serves the Workbench REST API and owns the channel folder and the server's clusters."""

    name = "workbench"
    load_other_extensions = True

    def initialize_settings(self) -> None:
        self.channel_dir = create_channel_dir(self.serverapp.runtime_dir)
        os.environ[CHANNEL_ENV_VAR] = str(self.channel_dir)  # kernels started from now on inherit it
        self.server_clusters = ServerClusters()
        self.hub = KernelHub(self.channel_dir, self._notebooks)
        self.log.info("Workbench: kernels report on %s", self.channel_dir)

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes(self.hub, self.server_clusters))

    async def stop_extension(self) -> None:
        await self.server_clusters.close_all()
        shutil.rmtree(self.channel_dir, ignore_errors=True)

    async def _notebooks(self) -> dict[str, str]:
        """{kernel id: path} of the server's sessions (notebooks, consoles)."""
        sessions = await self.serverapp.session_manager.list_sessions()
        return {session["kernel"]["id"]: session["path"] for session in sessions if session.get("kernel")}
