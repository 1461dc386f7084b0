"""Saving and loading an Estimator as a directory.

Layout (one file per kind of content, so each is read with the safest loader for it):

- ``workbench.json``: format version, backend, optimizer config, training config, history,
  the input/output signature, and the loss and metrics given by name;
- ``optimizer.npz``: optimizer state arrays, read with ``numpy.load(allow_pickle=False)``;
- the model, written by its backend: for PyTorch ``weights.pt`` (a ``state_dict`` read back
  with ``torch.load(weights_only=True)``) and ``model.pkl`` (the creator function or module);
  for Keras the native ``model.keras``, read in Keras' safe mode;
- ``loss.pkl`` / ``metrics.pkl``: only for a loss, or metrics, given as objects or functions.

Loading never runs code stored in the directory unless the caller passes ``trust_code=True``.
That code is in the cloudpickled ``.pkl`` files, and in a ``model.keras`` holding Python code
(a ``Lambda`` layer: Keras' safe mode refuses it). Without ``trust_code`` the caller gives such
a part again: ``model=`` (the creator or module; it then receives the saved weights),
``loss=``, ``metrics=``; a part given is never read from its ``.pkl`` file. A part needed and
not given raises :class:`UntrustedCodeError` (a ``ValueError``) naming the file. Weights are
only ever read as plain tensors, trusted or not: a ``weights.pt`` holding anything else is
refused with :class:`UntrustedCodeError` as well. Every other failure names the file at fault:
``FileNotFoundError`` for a missing one, ``ValueError`` for one that cannot be read (damaged,
not written by Workbench, or not fitting the given model).

A directory is written next to its target and renamed into place, so a reader never sees a
half-written one.
"""

from __future__ import annotations

import importlib
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd

from workbench.serving.signature import Signature

__all__ = ["save", "load", "load_model", "read_config", "read_signature", "UntrustedCodeError", "FORMAT_VERSION"]

FORMAT_VERSION = 1


class UntrustedCodeError(ValueError):
    """Loading would run Python code stored in a saved file, and Workbench refused to run it."""


def save(estimator: Any, path: Path) -> None:
    """Write ``estimator`` to the directory ``path`` (replacing it atomically)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"cannot save to {path}: it is a file, and an estimator is saved as a directory")
    for parent in path.parents:  # the nearest one that exists must be a directory
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot save to {path}: {parent} is a file, not a directory")
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    staging.mkdir()
    try:
        backend, history = estimator.backend, estimator.history_
        config = {
            "format_version": FORMAT_VERSION,
            "backend": backend.name,
            "optimizer": estimator.optimizer.get_config(),
            "clip_norm": estimator.clip_norm,
            "loss": backend.loss_config,
            "metrics": [m if isinstance(m, str) else None for m in estimator.metric_specs],
            "step": int(estimator.step_),
            "epochs": int(estimator.epochs_),
            "learning_rate_override": estimator._lr_override,
            "feature_cols": estimator.feature_cols_,
            "label_cols": estimator.label_cols_,
            "signature": None if estimator.signature_ is None else estimator.signature_.to_dict(),
            "history": None if history is None else json.loads(history.reset_index().to_json(orient="records")),
        }
        (staging / "workbench.json").write_text(json.dumps(config, indent=2))
        backend.save(estimator.model_, staging)
        if backend.loss_config is None:
            (staging / "loss.pkl").write_bytes(backend.loss_bytes)
        if None in config["metrics"]:
            (staging / "metrics.pkl").write_bytes(cloudpickle.dumps(estimator.metric_specs))
        np.savez(staging / "optimizer.npz", **(estimator.optimizer_state_ or {}))
        _replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load(cls: type, path: Path, model: Any = None, loss: Any = None, metrics: list | None = None,
         trust_code: bool = False) -> Any:
    """Rebuild an estimator saved by :func:`save`; ``model``, ``loss`` and ``metrics`` replace the saved ones."""
    from workbench.train.optimizers import optimizer_from_config

    path = Path(path)
    config = _read_config(path)
    backend_class = _backend_class(config["backend"])
    definition, module = backend_class.load_model(path, model, trust_code)
    if loss is None:
        loss = config.get("loss") or read_code(path / "loss.pkl", "loss", trust_code)
    if metrics is None:
        pickled = None in config["metrics"]  # a metric object or function, saved in metrics.pkl
        metrics = read_code(path / "metrics.pkl", "metrics", trust_code) if pickled else config["metrics"]
    estimator = cls(backend_class(definition, loss), optimizer_from_config(config["optimizer"]), metrics,
                    config["clip_norm"], model=module)
    optimizer_file = path / "optimizer.npz"
    with reading(optimizer_file), np.load(optimizer_file, allow_pickle=False) as arrays:
        estimator.optimizer_state_ = {name: arrays[name] for name in arrays.files} or None
    estimator.step_ = config["step"]
    estimator.epochs_ = config["epochs"]
    estimator._lr_override = config["learning_rate_override"]
    estimator.feature_cols_ = config["feature_cols"]
    estimator.label_cols_ = config["label_cols"]
    estimator.signature_ = read_signature(config)
    if config["history"] is not None:
        estimator.history_ = pd.DataFrame(config["history"]).set_index("epoch")
    return estimator


def load_model(path: Path, model: Any = None, trust_code: bool = False) -> Any:
    """Only the framework model saved at ``path`` (no loss, metrics or optimizer), by :func:`load`'s rules."""
    path = Path(path)
    return _backend_class(_read_config(path)["backend"]).load_model(path, model, trust_code)[1]


def read_signature(config: dict[str, Any]) -> Signature | None:
    """The input/output signature in a ``workbench.json``'s settings (None: saved before any fit)."""
    return None if config.get("signature") is None else Signature.from_dict(config["signature"])


def read_config(path: Path) -> dict[str, Any]:
    """The checked settings (``workbench.json``) of the estimator saved at ``path``."""
    return _read_config(Path(path))


def read_code(file: Path, argument: str, trust_code: bool) -> Any:
    """The object cloudpickled in ``file``, read only with ``trust_code`` (unpickling runs its code).

    ``argument`` names the load argument that gives the object instead, for the error message.
    """
    with reading(file):
        if not trust_code:
            raise UntrustedCodeError(
                f"{file} holds pickled Python code, which loading it would run: pass {argument}=... to give "
                f"the {argument} yourself, or trust_code=True if you trust the directory and whoever wrote it"
            )
        return cloudpickle.loads(file.read_bytes())


@contextmanager
def reading(file: Path) -> Iterator[None]:
    """Report a missing ``file`` as ``FileNotFoundError``, and a failure to read it as ``ValueError``, naming it."""
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: the directory is not a complete saved Workbench estimator")
    try:
        yield
    except UntrustedCodeError:
        raise
    except Exception as error:
        raise ValueError(f"cannot load {file}: {error}") from error


def _read_config(path: Path) -> dict[str, Any]:
    """The checked contents of ``workbench.json``."""
    file = path / "workbench.json"
    if not path.exists():
        raise FileNotFoundError(f"no saved Workbench estimator at {path}: it does not exist")
    if not path.is_dir():
        raise ValueError(
            f"{path} is a file, not a directory written by Estimator.save: load a TorchScript or Keras model "
            "file with wb.Net.load, or give the model to Estimator.from_torch / Estimator.from_keras"
        )
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a saved Workbench estimator (no workbench.json)")
    with reading(file):
        config = json.loads(file.read_text())
    if not isinstance(config, dict):
        raise ValueError(f"{file} holds a JSON {type(config).__name__}, not a Workbench estimator's settings")
    if config.get("format_version") != FORMAT_VERSION or config.get("backend") not in _BACKENDS:
        raise ValueError(
            f"{file}: unsupported format {config.get('format_version')!r} / backend {config.get('backend')!r}"
        )
    return config


_BACKENDS = {"torch": "workbench.train.backends.torch:TorchBackend", "keras": "workbench.train.backends.keras:KerasBackend"}


def _backend_class(name: str) -> type:
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
