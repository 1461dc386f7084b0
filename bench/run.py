"""Run every benchmark in bench/ (each in its own interpreter) and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: Each benchmark as its script and arguments.
BENCHMARKS = [["startup.py"], ["data.py"], ["sync.py"], ["train.py"], ["train.py", "dashboard"], ["recovery.py"],
              ["features/text.py"], ["features/image.py"], ["serving.py"]]


def main() -> int:
    here = Path(__file__).parent
    failed = []
    for script, *arguments in BENCHMARKS:
        name = " ".join([script, *arguments])
        print(f"== bench/{name}", flush=True)
        if subprocess.run([sys.executable, str(here / script), *arguments]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
