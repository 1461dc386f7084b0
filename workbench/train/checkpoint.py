"""Saving and loading an Estimator as a directory.

Layout (one file per kind of content, so each is read with the safest loader for it):

- ``workbench.json``: format version, backend, optimizer config, training config, history;
- ``optimizer.npz``: optimizer state arrays, read with ``numpy.load(allow_pickle=False)``;
- the model, written by its backend: for PyTorch ``weights.pt`` (a ``state_dict`` read back
  with ``torch.load(weights_only=True)``) and ``model.pkl`` (the creator function or module);
  for Keras the native ``model.keras``;
- ``loss.pkl`` / ``metrics.pkl``: the loss and custom metrics. The ``.pkl`` files are
  cloudpickled: loading them runs code, so load only directories you trust.

A directory is written next to its target and renamed into place, so a reader never sees a
half-written one.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def save(estimator: Any, path: Path) -> None:
    """Write ``estimator`` to the directory ``path`` (replacing it atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    staging.mkdir()
    try:
        history = estimator.history_
        config = {
            "format_version": FORMAT_VERSION,
            "backend": estimator.backend.name,
            "optimizer": estimator.optimizer.get_config(),
            "clip_norm": estimator.clip_norm,
            "metrics": [m if isinstance(m, str) else None for m in estimator.metric_specs],
            "step": int(estimator.step_),
            "epochs": int(estimator.epochs_),
            "learning_rate_override": estimator._lr_override,
            "feature_cols": estimator.feature_cols_,
            "label_cols": estimator.label_cols_,
            "history": None if history is None else json.loads(history.reset_index().to_json(orient="records")),
        }
        (staging / "workbench.json").write_text(json.dumps(config, indent=2))
        estimator.backend.save(estimator.model_, staging)
        if any(not isinstance(m, str) for m in estimator.metric_specs):
            (staging / "metrics.pkl").write_bytes(cloudpickle.dumps(estimator.metric_specs))
        np.savez(staging / "optimizer.npz", **(estimator.optimizer_state_ or {}))
        _replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load(cls: type, path: Path) -> Any:
    """Rebuild an estimator saved by :func:`save`."""
    from workbench.train.optimizers import optimizer_from_config

    path = Path(path)
    config_file = path / "workbench.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved Workbench estimator (no workbench.json)")
    config = json.loads(config_file.read_text())
    if config.get("format_version") != FORMAT_VERSION or config.get("backend") not in _BACKENDS:
        raise ValueError(
            f"{path}: unsupported format {config.get('format_version')!r} / backend {config.get('backend')!r}"
        )
    backend, module = _backend_class(config["backend"]).load(path)
    metrics_file = path / "metrics.pkl"
    metrics = cloudpickle.loads(metrics_file.read_bytes()) if metrics_file.exists() else config["metrics"]
    estimator = cls(backend, optimizer_from_config(config["optimizer"]), metrics, config["clip_norm"], model=module)
    with np.load(path / "optimizer.npz", allow_pickle=False) as arrays:
        estimator.optimizer_state_ = {name: arrays[name] for name in arrays.files} or None
    estimator.step_ = config["step"]
    estimator.epochs_ = config["epochs"]
    estimator._lr_override = config["learning_rate_override"]
    estimator.feature_cols_ = config["feature_cols"]
    estimator.label_cols_ = config["label_cols"]
    if config["history"] is not None:
        estimator.history_ = pd.DataFrame(config["history"]).set_index("epoch")
    return estimator


_BACKENDS = {"torch": "workbench.train.backends.torch:TorchBackend", "keras": "workbench.train.backends.keras:KerasBackend"}


def _backend_class(name: str) -> type:
    import importlib

    module, attribute = _BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def _replace(staging: Path, path: Path) -> None:
    """Move ``staging`` to ``path``; an existing ``path`` is swapped out, then removed."""
    if path.exists():
        retired = path.with_name(f".{path.name}.{uuid.uuid4().hex}.old")
        path.rename(retired)
        staging.rename(path)
        shutil.rmtree(retired)
    else:
        staging.rename(path)
