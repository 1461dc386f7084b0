"""Launcher of the Workbench kernels: ``python -m workbench.kernel local|cluster -f CONNECTION_FILE``.

The kernelspecs start this module rather than ipykernel itself so that the cluster is decided when
the kernel starts, not when it was installed: "local" pins ``WORKBENCH_CLUSTER=local``, "cluster"
reads the ``cluster`` key of the user config (:mod:`workbench.config`) each time, with the worker
sizes and TLS directory of the same file. Moving a notebook to another cluster is therefore
``workbench config set cluster ...`` (``slurm`` and ``workers 8``, say) and a kernel restart; the
notebook and the kernelspecs stay as they are. Then ipykernel runs in this process.
"""

from __future__ import annotations

import os
import sys

from workbench import config
from workbench.context import CLUSTER_ENV_VAR, KERNEL_ENV_VAR

KINDS = ("local", "cluster")


def main(argv: list[str] | None = None) -> None:
    """Set the kernel's cluster environment from ``argv[0]`` and run ipykernel with the rest."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in KINDS:
        sys.exit(f"usage: python -m workbench.kernel {{{'|'.join(KINDS)}}} -f CONNECTION_FILE")
    kind, kernel_args = argv[0], argv[1:]
    os.environ[KERNEL_ENV_VAR] = kind
    if kind == "local":
        os.environ[CLUSTER_ENV_VAR] = "local"
    else:
        try:
            cluster = config.get("cluster")
        except config.ConfigError as error:
            sys.exit(f"Workbench (cluster) kernel: {error}")
        if cluster:
            os.environ[CLUSTER_ENV_VAR] = cluster
        else:  # only the user config names this kernel's cluster, never the server's environment
            os.environ.pop(CLUSTER_ENV_VAR, None)
        apply_cluster_settings()

    from ipykernel.kernelapp import launch_new_instance

    # this process imported workbench before it was a kernel: report to JupyterLab once it is one
    launch_new_instance(argv=[*kernel_args, "--ext", "workbench.lab.reporting"])


def apply_cluster_settings() -> None:
    """The user config's sizes and TLS directory as the ``workbench.*`` dask config that ``wb.init`` reads
    (dask has been imported already, so its environment variables would come too late)."""
    import dask.config

    try:
        settings = config.items()
    except config.ConfigError as error:
        sys.exit(f"Workbench (cluster) kernel: {error}")
    dask.config.set({f"workbench.{key}": settings[key] for key in config.KNOWN_KEYS
                     if key != "cluster" and key in settings})


if __name__ == "__main__":
    main()
