"""The README's API tour runs as written (on a generated `events/` dataset)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs(tmp_path, monkeypatch, no_context):
    tour = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    rng = np.random.default_rng(0)
    (tmp_path / "events").mkdir()
    for part in range(3):
        pd.DataFrame(
            {"x1": rng.random(100), "x2": rng.random(100), "label": rng.integers(0, 2, 100), "other": "text"}
        ).to_parquet(tmp_path / "events" / f"part-{part}.parquet")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(tour, str(README), "exec"), namespace)
    assert len(namespace["history"]) == 3 and 0 <= namespace["scores"]["accuracy"] <= 1
    assert len(namespace["predictions"].compute()) == 300, "one prediction per row"
    assert (namespace["restored"].get_weights() == namespace["est"].get_weights()).all()
    assert namespace["ctx"].closed
