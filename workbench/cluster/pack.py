"""Environment shipping: the driver's Python environment as one archive that the workers unpack.

A cluster without the driver's packages (YARN, most batch clusters) runs Workbench workers from an
archive of the driver's environment. The usual failure there is a worker environment that differs
from the driver's (another Python, another torch), so an archive carries its fingerprint:

- :func:`environment_fingerprint`: what an environment is (Python, platform, package versions);
- :func:`pack_environment`: archive a venv with venv-pack or a conda environment with conda-pack,
  Workbench included even when it is installed editable, cached by the fingerprint (an unchanged
  environment is packed once);
- :func:`check_environment`: refuse an archive that does not match the driver, saying what differs
  (an archive made by another tool, e.g. ``venv-pack`` or ``conda pack``, by the packages it holds).

A venv archive is relocatable but does not contain Python itself: its ``bin/python`` links to the
venv's base interpreter (``home`` in ``pyvenv.cfg``), which must exist at the same path on every
worker machine. A conda environment's archive carries its Python.

The fingerprint of an environment is read by that environment's own Python, running this file as a
script; that is why this module imports only the standard library at the top.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["EnvironmentMismatch", "environment_fingerprint", "pack_environment", "check_environment",
           "read_manifest", "default_cache_dir"]

#: the distribution and package of this project: copied into an archive when installed editable
PROJECT = ("analytics-workbench", "workbench")
#: the manifest's name, next to an archive (``<archive>.json``) and as the archive's first member
MANIFEST_NAME = "workbench-environment.json"
#: archive suffixes and their tarfile compression: gzip level 1 packs 2.4x faster than level 6 for 15 %
#: more bytes (numpy, pandas and scipy: 3.7 s and 77 MiB against 8.8 s and 67 MiB); ``.tar`` (none)
#: is fastest to pack and unpack where the network is fast
_FORMATS = {".tar.gz": "tar.gz", ".tgz": "tar.gz", ".tar": "tar"}
_COMPRESS_LEVEL = 1
#: files of a venv that venv-pack writes itself (relocatable activate scripts) or rewrites
_VENV_PACK_WRITES = {"pyvenv.cfg", "bin/activate", "bin/activate.csh", "bin/activate.fish"}
_NAMES_SHOWN = 5


class EnvironmentMismatch(ValueError):
    """An environment archive whose Python or packages differ from the driver's."""


def environment_fingerprint(prefix: str | os.PathLike = sys.prefix) -> dict[str, Any]:
    """What the environment at ``prefix`` is: ``python`` (version), ``implementation``, ``platform``,
    ``packages`` ({normalized name: version}) and ``editable`` ({name: digest of the project's code},
    so that an edited checkout is seen as a change although its version is the same)."""
    return _fingerprint(_describe(Path(prefix)))


def default_cache_dir() -> Path:
    """Where :func:`pack_environment` keeps archives: ``$XDG_CACHE_HOME/workbench/environments``
    (``~/.cache/workbench/environments``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "workbench" / "environments"


def pack_environment(output: str | os.PathLike | None = None, *, prefix: str | os.PathLike = sys.prefix,
                     exclude: Iterable[str] = (), cache_dir: str | os.PathLike | None = None,
                     force: bool = False) -> Path:
    """Archive the virtual or conda environment at ``prefix``; the archive's path.

    ``output`` ends in ``.tar.gz``, ``.tgz`` or ``.tar`` (what YARN unpacks); without it the archive
    goes to ``cache_dir`` (default :func:`default_cache_dir`) under a name made of the hash of the
    environment's fingerprint and of ``exclude``, so an unchanged environment is packed only once.
    An up-to-date archive at ``output`` is reused too; ``force`` packs again, replacing any file there.

    ``exclude``: glob patterns matched against the names of the entries of site-packages, e.g.
    ``"tensorflow*"`` leaves TensorFlow's package and its ``.dist-info`` out (only top-level entries:
    ``"numba*"`` does not reach into pandas' ``numba_.py``); the packages left out this way are
    recorded, and :func:`check_environment` does not count them as missing.

    The Workbench project, when installed editable (PEP 660), is put into the archive's
    site-packages instead of the pointer to its checkout; any other editable package is refused.
    A venv archive's ``bin/python`` links to the venv's base interpreter, which every worker needs
    at the same path; a conda environment's archive (conda-pack) holds Python, and its
    ``bin/conda-unpack`` fixes the paths in conda's files once unpacked.
    """
    prefix = Path(prefix).absolute()
    patterns = _checked_patterns(exclude)
    environment = _describe(prefix)
    kind = _kind(prefix)
    _refuse_foreign_editables(environment)
    fingerprint = _fingerprint(environment)
    key = hashlib.sha256(json.dumps([fingerprint, sorted(patterns)], sort_keys=True).encode()).hexdigest()[:16]
    if output is None:
        output = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"environment-{key}.tar.gz"
        force = force or not _manifest_path(output).exists()  # a half-written cache entry is replaced
    output = Path(output).absolute()
    archive_format = _archive_format(output)

    if output.exists() and not force:
        if _key_of(output) == key:
            return output
        raise FileExistsError(f"{output} exists and is not an archive of this environment: "
                              "choose another name, or replace it with --force (force=True)")

    excluded = {name: version for name, version, relative in _packages(environment)
                if _excluded(relative, environment, patterns)}
    manifest = {"key": key, "kind": kind, "exclude": sorted(patterns), "excluded_packages": excluded,
                "base_prefix": environment["base_prefix"],
                "fingerprint": {**fingerprint, "packages": {name: version for name, version in
                                                            fingerprint["packages"].items() if name not in excluded}}}
    _write_archive(environment, output, archive_format, patterns, manifest)
    return output


def read_manifest(archive: str | os.PathLike) -> dict[str, Any]:
    """The manifest :func:`pack_environment` wrote with ``archive``: from ``<archive>.json``, else from
    the archive itself (its first member)."""
    manifest = _manifest_of(Path(archive))
    if manifest is None:
        raise ValueError(f"{archive} was not made by `workbench pack`: it has no {MANIFEST_NAME}")
    return manifest


def check_environment(archive: str | os.PathLike, prefix: str | os.PathLike = sys.prefix) -> dict[str, Any]:
    """Refuse ``archive`` (:class:`EnvironmentMismatch`) when its Python or packages differ from the
    environment at ``prefix`` (the driver's); its manifest when they match. Packages the archive
    left out on purpose (``exclude``) are not counted as missing.

    An archive made by another tool (``venv-pack``, ``conda-pack``, ``zip``) has no manifest: its
    Python and packages are read from its file names (the ``.dist-info`` folders of its
    site-packages, its ``pyvenv.cfg`` or conda's record of Python), which means reading a
    compressed archive whole (seconds per GB); the manifest returned then holds that fingerprint."""
    archive = Path(archive)
    manifest = _manifest_of(archive) or {"fingerprint": _fingerprint_of_files(archive), "excluded_packages": {}}
    packed, here = manifest["fingerprint"], environment_fingerprint(prefix)
    if packed["python"].count(".") == 1:  # only lib/pythonX.Y told the version
        here = {**here, "python": ".".join(here["python"].split(".")[:2])}
    differences = [f"{label} {packed[key]} in the archive, {here[key]} here"
                   for key, label in (("implementation", "Python implementation"), ("python", "Python"),
                                      ("platform", "platform"))
                   if packed.get(key) is not None and packed[key] != here[key]]
    theirs, ours = packed["packages"], here["packages"]
    missing = sorted(set(ours) - set(theirs) - set(manifest["excluded_packages"]))
    extra = sorted(set(theirs) - set(ours))
    other_versions = sorted(name for name in set(theirs) & set(ours) if theirs[name] != ours[name])
    if other_versions:
        differences.append(_listed(f"{len(other_versions)} package(s) at another version",
                                    [f"{name} {theirs[name]} in the archive, {ours[name]} here"
                                     for name in other_versions]))
    if missing:
        differences.append(_listed(f"{len(missing)} package(s) missing from the archive",
                                    [f"{name} {ours[name]}" for name in missing]))
    if extra:
        differences.append(_listed(f"{len(extra)} package(s) only in the archive",
                                    [f"{name} {theirs[name]}" for name in extra]))
    differences += [f"{name}'s code changed since it was packed" for name, digest in packed["editable"].items()
                    if here["editable"].get(name, digest) != digest]
    if differences:
        raise EnvironmentMismatch(f"the environment archive {archive} does not match the Python environment "
                                  f"{Path(prefix)}: " + "; ".join(differences)
                                  + ". Pack this environment again (`workbench pack`).")
    return manifest


def _listed(what: str, items: list[str]) -> str:
    shown = ", ".join(items[:_NAMES_SHOWN])
    return f"{what}: {shown}" + (f" and {len(items) - _NAMES_SHOWN} more" if len(items) > _NAMES_SHOWN else "")


# --- reading an archive ---------------------------------------------------------------------------

#: ``lib/python3.11/site-packages/six-1.16.0.dist-info/...`` (or ``.egg-info``), under any root folder
_PACKAGE_METADATA = re.compile(r"(?:^|/)lib/python(\d+\.\d+)/site-packages/([^/]+)\.(?:dist|egg)-info(?:/|$)")
#: conda's record of its Python package: ``conda-meta/python-3.11.7-<build>.json``
_CONDA_PYTHON = re.compile(r"(?:^|/)conda-meta/python-(\d+\.\d+\.\d+)-[^/]+\.json$")
_PYVENV_CFG = re.compile(r"^(?:\./)?(?:[^/]+/)?pyvenv\.cfg$")


def _manifest_of(archive: Path) -> dict[str, Any] | None:
    """The manifest of ``archive`` (its ``.json`` sidecar, else its first member); None if it has none."""
    sidecar = _manifest_path(archive)
    if sidecar.exists():
        return json.loads(sidecar.read_text())
    if not archive.is_file():
        raise FileNotFoundError(f"no environment archive {archive}")
    if archive.name.endswith(".zip"):
        return None  # `workbench pack` writes tar archives only
    try:
        with tarfile.open(archive) as tar:
            member = tar.next()
            if member is not None and member.name == MANIFEST_NAME:
                return json.loads(tar.extractfile(member).read())
    except tarfile.TarError as error:
        raise ValueError(f"{archive} is not a tar archive ({error})") from error
    return None


def _fingerprint_of_files(archive: Path) -> dict[str, Any]:
    """The fingerprint of an archive without a manifest, read from its file names: packages from the
    ``.dist-info`` folders of its site-packages; Python from ``pyvenv.cfg`` (a venv), conda's record
    of its ``python`` package, else ``lib/pythonX.Y`` (major.minor only). Implementation and
    platform are not known (None)."""
    names, pyvenv_cfg = _names_and_pyvenv_cfg(archive)
    pythons, packages = set(), {}
    for name in names:
        metadata = _PACKAGE_METADATA.search(name)
        if metadata:
            pythons.add(metadata.group(1))
            distribution, _, version = metadata.group(2).partition("-")  # egg-info: six-1.16.0-py3.11
            packages[_normalized(distribution)] = version.split("-")[0]
    if len(pythons) != 1:
        found = f"site-packages of Python {', '.join(sorted(pythons))}" if pythons else "no lib/pythonX.Y/site-packages"
        raise ValueError(f"{archive} is not an archive of one Python environment: it has {found}")
    python = pythons.pop()
    conda_python = [match.group(1) for match in map(_CONDA_PYTHON.search, names) if match]
    venv_python = [value.strip() for key, _, value in (line.partition("=") for line in pyvenv_cfg.splitlines())
                   if key.strip() in ("version", "version_info")]
    for version in conda_python + venv_python:
        if version.startswith(python + "."):
            python = ".".join(version.split(".")[:3])
            break
    return {"python": python, "implementation": None, "platform": None, "packages": dict(sorted(packages.items())),
            "editable": {}}


def _names_and_pyvenv_cfg(archive: Path) -> tuple[list[str], str]:
    """The member names of a tar or zip archive, and the text of its top-level ``pyvenv.cfg`` ("" if none)."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as folder:
            names = folder.namelist()
            config = next((name for name in names if _PYVENV_CFG.match(name)), None)
            return names, folder.read(config).decode() if config else ""
    names, pyvenv_cfg = [], ""
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                names.append(member.name)
                if member.isfile() and _PYVENV_CFG.match(member.name):
                    pyvenv_cfg = tar.extractfile(member).read().decode()
    except tarfile.TarError as error:
        raise ValueError(f"{archive} is not a tar archive ({error})") from error
    return names, pyvenv_cfg


# --- reading an environment ---------------------------------------------------------------------

def _describe(prefix: Path) -> dict[str, Any]:
    """What the Python of ``prefix`` reports about itself (:func:`_describe_this_python`)."""
    python = prefix / "bin" / "python"
    if not python.exists():
        raise ValueError(f"{prefix} is not a Python environment: it has no bin/python")
    # -I: neither the current directory nor this file's folder shadows the environment's packages
    done = subprocess.run([str(python), "-I", __file__], capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"the Python of {prefix} failed to describe its environment: {done.stderr.strip()}")
    return json.loads(done.stdout)


def _describe_this_python() -> dict[str, Any]:
    """The running Python's version, platform and installed distributions (standard library only)."""
    import importlib.metadata
    import importlib.util
    import platform
    import sysconfig

    site_dirs = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    distributions = []
    for site_dir in site_dirs:
        for info in sorted(Path(site_dir).glob("*.*-info")):
            distribution = importlib.metadata.Distribution.at(info)
            direct_url = json.loads(distribution.read_text("direct_url.json") or "{}")
            editable = bool(direct_url.get("dir_info", {}).get("editable"))
            distributions.append({
                "name": distribution.metadata["Name"], "version": distribution.version, "path": str(info),
                "editable": editable,
                "files": [str(file) for file in distribution.files or ()] if editable else []})
    spec = importlib.util.find_spec(PROJECT[1])
    external = {}  # .pth files adding folders outside the environment (pre-PEP 660 editable installs)
    for site_dir in site_dirs:
        for pth in Path(site_dir).glob("*.pth"):
            lines = [line.strip() for line in pth.read_text().splitlines()]
            paths = [os.path.normpath(os.path.join(site_dir, line)) for line in lines
                     if line and not line.startswith(("#", "import ", "import\t"))]
            outside = [path for path in paths if os.path.isdir(path) and not path.startswith(sys.prefix + os.sep)]
            if outside:
                external[pth.name] = outside
    return {"python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": sysconfig.get_platform(), "prefix": sys.prefix, "base_prefix": sys.base_prefix,
            "site_packages": sysconfig.get_paths()["purelib"], "distributions": distributions,
            "project_dir": os.path.dirname(spec.origin) if spec is not None and spec.origin else None,
            "external_paths": external}


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Typing_Extensions`` is ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _packages(environment: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(normalized name, version, metadata folder relative to the prefix) of every distribution."""
    for distribution in environment["distributions"]:
        yield (_normalized(distribution["name"]), distribution["version"],
               os.path.relpath(distribution["path"], environment["prefix"]))


def _project(environment: dict[str, Any]) -> dict[str, Any] | None:
    """The Workbench distribution when it is installed editable, else None."""
    return next((d for d in environment["distributions"] if _normalized(d["name"]) == PROJECT[0] and d["editable"]),
                None)


def _fingerprint(environment: dict[str, Any]) -> dict[str, Any]:
    project = _project(environment)
    editable = {PROJECT[0]: _digest(Path(environment["project_dir"]))} if project else {}
    return {"python": environment["python"], "implementation": environment["implementation"],
            "platform": environment["platform"],
            "packages": {name: version for name, version, _ in sorted(_packages(environment))},
            "editable": editable}


def _project_files(folder: Path) -> list[Path]:
    """The files of the project's package, compiled bytecode left out."""
    return sorted(path for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts)


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in _project_files(folder):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _refuse_foreign_editables(environment: dict[str, Any]) -> None:
    """Only the Workbench project can be packed from a checkout; another editable package would be
    a pointer to a folder the workers do not have."""
    foreign = sorted(d["name"] for d in environment["distributions"]
                     if d["editable"] and _normalized(d["name"]) != PROJECT[0])
    project = _project(environment)
    own_pth = {Path(file).name for file in project["files"]} if project else set()
    pointers = sorted(f"{pth} ({', '.join(paths)})" for pth, paths in environment["external_paths"].items()
                      if pth not in own_pth)
    if foreign or pointers:
        raise ValueError("cannot pack editable packages other than Workbench (the workers would not have "
                         "their source): " + "; ".join(foreign + pointers)
                         + ". Install them normally (pip install PATH, without -e), or uninstall them")


# --- writing the archive ------------------------------------------------------------------------

def _checked_patterns(exclude: Iterable[str]) -> list[str]:
    patterns = [exclude] if isinstance(exclude, str) else list(exclude)
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern or "/" in pattern:
            raise ValueError(f"exclude patterns name entries of site-packages (globs such as 'tensorflow*'), "
                             f"not paths: {pattern!r}")
    return patterns


def _excluded(relative: str, environment: dict[str, Any], patterns: list[str]) -> bool:
    """Whether ``relative`` (a path in the environment) is, or is inside, an entry of site-packages
    that one of ``patterns`` names (the bytecode of a top-level module counts as the module)."""
    site_packages = os.path.relpath(environment["site_packages"], environment["prefix"])
    inside = Path(relative).relative_to(site_packages).parts if Path(relative).is_relative_to(site_packages) else ()
    if inside[:1] == ("__pycache__",) and len(inside) == 2:
        inside = (inside[1].split(".")[0],)  # __pycache__/six.cpython-311.pyc: six
    return bool(inside) and any(fnmatch.fnmatch(inside[0], pattern) for pattern in patterns)


def _archive_format(output: Path) -> str:
    for suffix, archive_format in _FORMATS.items():
        if output.name.endswith(suffix):
            return archive_format
    raise ValueError(f"{output.name}: an environment archive ends in {', '.join(_FORMATS)}")


def _manifest_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".json")


def _key_of(archive: Path) -> str | None:
    try:
        return read_manifest(archive).get("key")
    except (OSError, ValueError):
        return None


def _write_archive(environment: dict[str, Any], output: Path, archive_format: str, patterns: list[str],
                   manifest: dict[str, Any]) -> None:
    """Write the archive (manifest first) through a temporary file, then its ``.json`` next to it:
    a venv with venv-pack's relocation, a conda environment with conda-pack's."""
    pack = {"conda": _pack_conda, "venv": _pack_venv}[manifest["kind"]]
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    partial_manifest = _manifest_path(partial)
    try:
        partial_manifest.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        with partial.open("wb") as stream:
            pack(environment, patterns, stream, archive_format, partial_manifest)
        os.replace(partial, output)
        os.replace(partial_manifest, _manifest_path(output))
    finally:
        partial.unlink(missing_ok=True)
        partial_manifest.unlink(missing_ok=True)


def _kind(prefix: Path) -> str:
    """"conda" for a conda environment (its ``conda-meta`` records), "venv" for a virtual environment."""
    if (prefix / "conda-meta").is_dir():
        return "conda"
    if (prefix / "pyvenv.cfg").exists():
        return "venv"
    raise ValueError(f"{prefix} is neither a virtual environment (no pyvenv.cfg) nor a conda environment "
                     "(no conda-meta): only those are packed")


def _pack_venv(environment: dict[str, Any], patterns: list[str], stream: Any, archive_format: str,
               manifest: Path) -> None:
    """venv-pack's ``Packer`` makes the scripts in ``bin/`` relocatable and adds its activate scripts
    (its ``Env`` refuses any environment with an editable package, so its parts are used directly)."""
    from venv_pack.core import File, Packer, VenvPackException, check_prefix
    from venv_pack.formats import archive

    prefix = Path(environment["prefix"])
    try:
        context = check_prefix(str(prefix))
    except VenvPackException as error:
        raise ValueError(str(error)) from error
    skipped, added = _project_substitution(environment)
    skipped |= _VENV_PACK_WRITES
    files = [(str(prefix / relative), relative) for relative in _walk(prefix)
             if relative not in skipped and not _excluded(relative, environment, patterns)] + added
    with archive(stream, archive_format, compress_level=_COMPRESS_LEVEL) as tar:
        tar.add(str(manifest), MANIFEST_NAME)
        packer = Packer(context, tar, None)
        for source, target in files:
            packer.add(File(source, target))
        packer.finish()


def _pack_conda(environment: dict[str, Any], patterns: list[str], stream: Any, archive_format: str,
                manifest: Path) -> None:
    """conda-pack's ``Packer`` records where conda's files hold the environment's path, which the
    ``conda-unpack`` script it adds rewrites once unpacked; the Python interpreter is in the archive."""
    from conda_pack.core import CondaEnv, CondaPackException, File, Packer
    from conda_pack.formats import archive

    prefix = environment["prefix"]
    try:  # _refuse_foreign_editables let only the project through, whose files replace its pointer
        conda_files = CondaEnv.from_prefix(prefix, ignore_editable_packages=True).files
    except CondaPackException as error:
        raise ValueError(f"conda-pack cannot pack {prefix}: {error}") from error
    skipped, added = _project_substitution(environment)
    files = [file for file in conda_files if file.target not in skipped
             and not _excluded(file.target, environment, patterns)]
    files += [File(source, target, is_conda=False) for source, target in added]
    history = Path(prefix) / "conda-meta" / "history"  # conda-pack's time for the files it writes
    mtime = history.stat().st_mtime if history.exists() else time.time()
    with archive(stream, None, "", archive_format, compress_level=_COMPRESS_LEVEL, mtime=mtime) as tar:
        tar.add(str(manifest), MANIFEST_NAME)
        packer = Packer(prefix, tar)
        for file in files:
            packer.add(file)
        packer.finish()


def _project_substitution(environment: dict[str, Any]) -> tuple[set[str], list[tuple[str, str]]]:
    """When Workbench is installed editable: the files that point at its checkout (the .pth / import
    finder and the record saying "editable"), which are not packed, and (source, target) of the
    project's package files, packed in site-packages in their place. Nothing to do otherwise."""
    project = _project(environment)
    if not project:
        return set(), []
    prefix = Path(environment["prefix"])
    site_packages = Path(os.path.relpath(environment["site_packages"], prefix))
    metadata = Path(os.path.relpath(project["path"], prefix))
    skipped = {str(site_packages / file) for file in project["files"] if "/" not in file
               and file.endswith((".pth", ".py"))}
    skipped.add(str(metadata / "direct_url.json"))
    package = Path(environment["project_dir"])
    added = [(str(path), str(site_packages / PROJECT[1] / path.relative_to(package)))
             for path in _project_files(package)]
    return skipped | {target for _, target in added}, added


def _walk(prefix: Path) -> Iterator[str]:
    """Paths relative to ``prefix`` of its files and symbolic links (a link to a folder is not followed)."""
    for root, folders, files in os.walk(prefix):
        relative_root = os.path.relpath(root, prefix)
        links = [name for name in folders if os.path.islink(os.path.join(root, name))]  # e.g. lib64 -> lib
        for name in links + files:
            yield os.path.normpath(os.path.join(relative_root, name))


if __name__ == "__main__":  # run by the environment's own Python: see _describe
    json.dump(_describe_this_python(), sys.stdout)
