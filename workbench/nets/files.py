"""Loading a saved model for ``Net.load``: the format is recognised from the content, not the name.

TorchScript files and ``.keras`` files are both zip archives; they are told apart by the
entries inside (TorchScript has ``code/``, Keras has ``config.json``). A ``torch.save``
archive (a pickled module or state dict), and a Keras file under a name Keras does not load,
are recognised and refused with what to do instead.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["load_model", "identify"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DESCRIPTIONS = {
    "workbench": "a saved Workbench model directory",
    "torchscript": "a TorchScript file",
    "keras": "a Keras model file",
}


def load_model(path: str | os.PathLike, model: Any = None, trust_code: bool = False) -> Any:
    """The framework model saved at ``path`` (a torch ``nn.Module`` or a ``keras.Model``).

    ``model`` and ``trust_code`` apply to a directory written by ``Estimator.save``, as for
    ``Estimator.load``; its errors name the file at fault.
    """
    path = Path(path)
    kind = identify(path)
    if kind == "workbench":
        from workbench.train import checkpoint

        return checkpoint.load_model(path, model=model, trust_code=trust_code)
    if model is not None:
        raise ValueError(f"model= rebuilds the model of a saved Workbench directory; {path} is {_DESCRIPTIONS[kind]}")
    try:
        return _LOADERS[kind](path)
    except Exception as error:  # each loader fails its own way on a damaged file
        raise ValueError(f"cannot load {path} ({_DESCRIPTIONS[kind]}): {error}") from error


def identify(path: Path) -> str:
    """What ``path`` holds: "workbench", "torchscript" or "keras"; a clear error for anything else."""
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}")
    if path.is_dir():
        if (path / "workbench.json").is_file():
            return "workbench"
        raise ValueError(f"{path} is a directory but not a saved Workbench model (no workbench.json)")
    with path.open("rb") as file:
        if file.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
            return _keras_file(path, (".h5", ".hdf5"))  # the legacy Keras HDF5 format
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            entries = archive.namelist()
        if "config.json" in entries:
            return _keras_file(path, (".keras",))
        if any("/code/" in entry for entry in entries):
            return "torchscript"
        if any(entry.endswith("/data.pkl") for entry in entries):
            raise ValueError(
                f"{path} is a torch.save() file (a pickled module or state dict), not TorchScript: "
                "load it with torch.load and pass the module to Net(), or save it with torch.jit.save"
            )
    raise ValueError(
        f"{path} is not a model Net can load: expected a TorchScript file, a Keras .keras/.h5 file "
        "or a directory written by Estimator.save"
    )


def _keras_file(path: Path, suffixes: tuple[str, ...]) -> str:
    """"keras", if the name has a suffix Keras accepts (it picks its loader by file name)."""
    if path.suffix not in suffixes:
        raise ValueError(f"{path} is a Keras model file, but Keras loads it only under a {' or '.join(suffixes)} name")
    return "keras"


def _load_torchscript(path: Path) -> Any:
    import torch

    from workbench.nets.torchscript import from_script

    return from_script(torch.jit.load(path, map_location="cpu"))


def _load_keras(path: Path) -> Any:
    from workbench.train.backends.keras import import_keras

    return import_keras().saving.load_model(path, compile=False)


_LOADERS = {"torchscript": _load_torchscript, "keras": _load_keras}
