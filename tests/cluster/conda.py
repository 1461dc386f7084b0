"""A real conda environment on a machine without conda or a conda channel: this machine's Python
interpreter made into a conda package (the package format conda-forge's are in) and installed by
rattler, the conda installer of pixi, which writes the ``conda-meta`` records conda-pack reads.

Text files holding the interpreter's installation path (its ``_sysconfigdata``) are marked with that
path as their prefix placeholder, as conda-build does, so the installer writes the environment's
path into them and conda-pack's ``conda-unpack`` rewrites it after unpacking elsewhere. (Binary
files keep their paths: this interpreter may find its libpython through its own installation's
RUNPATH, where conda-forge's uses ``$ORIGIN``; what the tests show is conda-pack's packing and
relocation, not a Python built to be moved.)
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"
#: parts of the standard library a Python package for workers does without (tests, GUI, installers)
LEFT_OUT = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__",
            f"config-{VERSION}-x86_64-linux-gnu"}


def conda_environment(prefix: Path, work: Path) -> Path:
    """A conda environment at ``prefix`` with this machine's Python (no other package)."""
    import rattler

    package = python_package(work / "channel")
    record = asyncio.run(rattler.RepoDataRecord.from_package_archive(package))
    asyncio.run(rattler.install([record], prefix, cache_dir=work / "cache", show_progress=False))
    return prefix


def python_package(channel: Path) -> Path:
    """``python-X.Y.Z-0.tar.bz2``: the interpreter of this Python's base installation, its standard
    library (without :data:`LEFT_OUT`) and libpython, as a linux-64 conda package."""
    base = Path(sys.base_prefix)
    if not (base / "bin" / f"python{VERSION}").is_file() or not (base / "lib" / f"python{VERSION}" / "os.py").is_file():
        pytest.skip(f"this Python's base installation {base} does not have a bin/ and lib/python{VERSION}/ layout")
    files = sorted(_installation_files(base))
    version = ".".join(map(str, sys.version_info[:3]))
    index = {"name": "python", "version": version, "build": "0", "build_number": 0, "depends": [],
             "subdir": "linux-64", "arch": "x86_64", "platform": "linux", "license": "PSF-2.0"}
    links = ["bin/python", "bin/python3"]  # as conda-forge's python package has them
    paths = [_paths_entry(base, relative) for relative in files] + [{"_path": link, "path_type": "softlink"}
                                                                    for link in links]
    channel.mkdir(parents=True, exist_ok=True)
    package = channel / f"python-{version}-0.tar.bz2"
    with tarfile.open(package, "w:bz2", compresslevel=1) as tar:
        for name, content in (("info/index.json", index), ("info/paths.json", {"paths": paths, "paths_version": 1})):
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for relative in files:
            tar.add(base / relative, arcname=relative, recursive=False)
        for link in links:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, f"python{VERSION}"
            tar.addfile(info)
    return package


def _installation_files(base: Path) -> Iterator[str]:
    yield f"bin/python{VERSION}"
    yield from (f"lib/{path.name}" for path in (base / "lib").glob(f"libpython{VERSION}*.so*"))
    stdlib = base / "lib" / f"python{VERSION}"
    for root, folders, names in os.walk(stdlib):
        folders[:] = [folder for folder in folders if folder not in LEFT_OUT]
        for name in names:
            yield str((Path(root) / name).relative_to(base))


def _paths_entry(base: Path, relative: str) -> dict:
    path = base / relative
    if path.is_symlink():
        return {"_path": relative, "path_type": "softlink"}
    data = path.read_bytes()
    entry = {"_path": relative, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
             "size_in_bytes": len(data)}
    if str(base).encode() in data and b"\0" not in data:
        entry.update(prefix_placeholder=str(base), file_mode="text")
    return entry
