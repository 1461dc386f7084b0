"""Start-up costs: `import workbench` and `wb.init()` to a ready 2-worker local cluster.

Prints medians over several runs, each in a fresh interpreter so nothing is cached in-process.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

RUNS = 5

IMPORT = "import time; t = time.perf_counter(); import workbench; print(time.perf_counter() - t)"
INIT = (
    "import time, workbench as wb; t = time.perf_counter(); ctx = wb.init(workers=2); "
    "ctx.client.wait_for_workers(2); print(time.perf_counter() - t); wb.stop()"
)
BASELINE_IMPORT = "import time; t = time.perf_counter(); import distributed; print(time.perf_counter() - t)"


def median_seconds(code: str) -> float:
    runs = [
        float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()[-1])
        for _ in range(RUNS)
    ]
    return statistics.median(runs)


def main() -> None:
    import_time = median_seconds(IMPORT)
    distributed_time = median_seconds(BASELINE_IMPORT)
    init_time = median_seconds(INIT)
    print(f"startup (median of {RUNS} fresh interpreters)")
    print(f"  import workbench                 {import_time * 1000:8.0f} ms   (goal < 1000 ms)")
    print(f"  import distributed (reference)   {distributed_time * 1000:8.0f} ms   ratio {import_time / distributed_time:.2f}x")
    print(f"  wb.init() to 2 ready workers     {init_time:8.2f} s")


if __name__ == "__main__":
    main()
