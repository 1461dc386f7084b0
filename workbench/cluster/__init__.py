"""Clusters beyond the laptop.

- :mod:`.tls`: TLS for every scheduler, worker and client connection (a team CA and certificates);
- :mod:`.jobqueue`: Dask workers as SLURM / PBS / SGE jobs (dask-jobqueue).

Nothing here is imported by ``import workbench``; each module loads its own libraries when used.
"""
