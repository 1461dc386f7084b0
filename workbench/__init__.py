"""Workbench: distributed deep learning on Dask and Jupyter.

Prototype on a laptop with an embedded Dask cluster, then run the same notebook on any
Dask cluster by changing only the cluster setting::

    import workbench as wb
    ctx = wb.init()                      # local; or wb.init("tcp://scheduler:8786")
    df = wb.data.read_parquet("events/")
    est = wb.Estimator.from_torch(make_model, optimizer="adam", loss="cross_entropy")
    est.fit(df, feature_cols=["x1", "x2"], label_cols="y", epochs=5, batch_size=256)

Importing ``workbench`` is cheap: Dask's distributed runtime, pandas, and the deep-learning
frameworks load only when first used. In a kernel of a JupyterLab server with the Workbench
extension, importing it also starts reporting the context and fits to the sidebar
(:mod:`workbench.lab.reporting`).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from workbench.context import Context, current, init, stop

__version__ = "0.1.0.dev0"
__all__ = ["Context", "current", "init", "stop", "data", "feature", "datasets", "train", "optim", "nets", "ml",
           "models", "serving", "Estimator", "Net", "__version__"]

_LAZY_SUBMODULES = {
    "data": "workbench.data",
    "feature": "workbench.feature",
    "datasets": "workbench.datasets",
    "models": "workbench.models",
    "train": "workbench.train",
    "optim": "workbench.train.optimizers",
    "nets": "workbench.nets",
    "ml": "workbench.ml",
    "serving": "workbench.serving",
}
_LAZY_NAMES = {"Estimator": "workbench.train.estimator", "Net": "workbench.nets"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(_LAZY_SUBMODULES[name])
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


if os.environ.get("WORKBENCH_LAB_CHANNEL"):  # lab.channel.CHANNEL_ENV_VAR, set by the server extension
    from workbench.lab.reporting import activate

    activate()
