"""Stopping the processes tests start (servers, daemons, Dask processes), by PID."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGTERM (a graceful stop), then SIGKILL if it has not exited within ``timeout`` seconds; the exit status."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
