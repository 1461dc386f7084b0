"""Clusters beyond the laptop.

- :mod:`.tls`: TLS for every scheduler, worker and client connection (a team CA and certificates);
- :mod:`.jobqueue`: Dask workers as SLURM / PBS / SGE jobs (dask-jobqueue);
- :mod:`.yarn`: Dask workers as YARN containers (skein), running a packed environment;
- :mod:`.pack`: ``workbench pack``: this virtual environment as a relocatable, cached, checked archive;
- :mod:`.gateway`: a new cluster from a dask-gateway;
- :mod:`.kubernetes`: a dask-kubernetes ``KubeCluster`` with Workbench's worker sizes.

Nothing here is imported by ``import workbench``; each module loads its own libraries when used.
"""
