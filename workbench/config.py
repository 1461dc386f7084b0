"""The user's Workbench settings: a small YAML file that ``workbench config`` edits.

The file is ``$WORKBENCH_CONFIG``, else ``$XDG_CONFIG_HOME/workbench/config.yaml``, else
``~/.config/workbench/config.yaml``. The Workbench (cluster) kernel reads its ``cluster`` key each
time it starts, so moving a notebook to another cluster is ``workbench config set cluster ADDRESS``
and a kernel restart. Values are checked when they are set, the way ``wb.init`` checks them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "KNOWN_KEYS", "path", "get", "set", "unset", "items"]

CONFIG_ENV_VAR = "WORKBENCH_CONFIG"

_HEADER = "# Workbench user config; edit with `workbench config set KEY VALUE`\n"


class ConfigError(ValueError):
    """An unknown key, a value that does not check out, or a config file that cannot be read."""


def _check_cluster(value: str) -> str:
    """The cluster as ``wb.init`` will read it (``host:port`` becomes ``tcp://host:port``)."""
    from workbench.context import _resolve_cluster

    try:
        return _resolve_cluster(value)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def _check_count(value: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise ConfigError(f"expected a whole number >= 1, got {value!r}")
    return count


def _check_memory(value: str) -> str:
    """A size such as ``8 GiB`` (kept as written, once it parses)."""
    from dask.utils import parse_bytes

    try:
        parse_bytes(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"expected a size such as '8 GiB', got {value!r}") from error
    return str(value)


def _check_text(value: str) -> str:
    if not str(value).strip():
        raise ConfigError("expected a non-empty value")
    return str(value).strip()


def _check_security(value: str) -> str:
    """A certificate directory written by ``workbench tls create`` (its files are checked)."""
    from workbench.cluster import tls

    directory = Path(value).expanduser().absolute()
    try:
        tls.security(directory)
    except (OSError, ValueError) as error:
        raise ConfigError(str(error)) from error
    return str(directory)


#: Each known key and the function that checks (and normalises) a value for it. Besides
#: ``cluster``, the keys size the worker jobs of a batch cluster and switch TLS on: the
#: Workbench (cluster) kernel passes them to ``wb.init`` as the ``workbench.*`` dask config.
_CHECKS: dict[str, Callable[[str], Any]] = {
    "cluster": _check_cluster,
    "workers": _check_count,
    "worker-cores": _check_count,
    "worker-memory": _check_memory,
    "queue": _check_text,
    "security": _check_security,
}
KNOWN_KEYS = tuple(_CHECKS)


def path() -> Path:
    """The config file in use (it may not exist yet)."""
    if os.environ.get(CONFIG_ENV_VAR):
        return Path(os.environ[CONFIG_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "workbench" / "config.yaml"


def items() -> dict[str, str]:
    """Every setting in the config file (empty when there is no file)."""
    file = path()
    try:
        text = file.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ConfigError(f"cannot read the Workbench config {file}: {error.strerror}") from error
    try:
        settings = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"the Workbench config {file} is not valid YAML{where}; fix or delete it") from error
    if settings is None:  # an empty file
        return {}
    if not isinstance(settings, dict):
        raise ConfigError(
            f"the Workbench config {file} must be a mapping of keys to values, not a "
            f"{type(settings).__name__}; fix or delete it"
        )
    return settings


def get(key: str) -> str | None:
    """The value of ``key``, or None when it is not set."""
    _check_key(key)
    return items().get(key)


def set(key: str, value: str) -> str:
    """Check ``value`` for ``key``, store it, and return it as stored (normalised)."""
    _check_key(key)
    stored = _CHECKS[key](value)
    _write({**items(), key: stored})
    return stored


def unset(key: str) -> bool:
    """Remove ``key``; True when it was set."""
    _check_key(key)
    settings = items()
    if key not in settings:
        return False
    del settings[key]
    _write(settings)
    return True


def _check_key(key: str) -> None:
    if key not in _CHECKS:
        raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(KNOWN_KEYS)}")


def _write(settings: dict[str, str]) -> None:
    """Replace the file in one step, so a reader (a starting kernel) never sees half of it."""
    file = path()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
        try:
            with os.fdopen(descriptor, "w") as out:
                out.write(_HEADER + yaml.safe_dump(settings, default_flow_style=False))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, file)
        finally:
            Path(temp).unlink(missing_ok=True)  # only left when something failed
    except OSError as error:
        raise ConfigError(f"cannot write the Workbench config {file}: {error.strerror}") from error
