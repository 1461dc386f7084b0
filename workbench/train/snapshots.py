"""Snapshots of a fit in progress: what a rollback after a worker loss, or a resume, starts from.

A snapshot holds the parameters and optimizer state (one file per parameter-server shard,
written by the shard itself) and the rest of the run's state, written by the driver: step,
epoch, data position (which rows the epoch in progress has consumed), the epoch's metric sums
so far, the model buffers, the finished epochs' history and the fault events.

Layout of a ``checkpoint_dir`` (a local path or any fsspec URL)::

    step-000000001200/
        shard-0000.npz ...   parameters and optimizer state of each slice
        run-<id>.npz         data position and model buffers
        manifest.json        everything else; written last, it commits the snapshot

Every file is written under a temporary name and then moved into place, and a folder without
a manifest is never loaded, so a snapshot cut short by a crash is ignored. The two newest
snapshots are kept. Everything is read with ``numpy.load(allow_pickle=False)`` and JSON:
loading a snapshot runs no code from it.

Without a directory, snapshots stay in the driver's memory: they survive worker loss, not a
restart of the driver.
"""

from __future__ import annotations

import copy
import io
import json
import posixpath
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

__all__ = ["Snapshot", "Stored", "SnapshotError", "MemoryStore", "DirectoryStore", "open_store", "write_arrays", "read_arrays"]

FORMAT_VERSION = 1
_KEEP = 2


class SnapshotError(ValueError):
    """A snapshot cannot be used: damaged, or taken from a different model or data."""


@dataclass
class Snapshot:
    """The state of a fit between two steps.

    Attributes:
        step: optimizer steps taken (over all fits of the estimator).
        epoch: the estimator's epoch in progress.
        epochs_done: epochs of this fit finished.
        consumed: one flag per training row: trained on in ``epoch`` already.
        totals: sums over the epoch so far: ``loss_sum``, ``samples``, ``skipped`` (batches),
            ``metric_sums`` (one array, or None, per metric).
        buffers: the model's non-trainable state (averaged over replicas).
        history: the logs of this fit's finished epochs.
        events: worker losses and joins so far (dicts).
        lr_override: the learning rate set by ``set_learning_rate``, if any.
        params, state: the flat parameters and optimizer state; None while they are on disk.
    """

    step: int
    epoch: int
    epochs_done: int
    consumed: np.ndarray
    totals: dict[str, Any]
    buffers: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    lr_override: float | None = None
    params: np.ndarray | None = None
    state: dict[str, np.ndarray] | None = None
    stored: Stored | None = None

    def copy(self) -> Snapshot:
        """A copy to change; the parameter arrays, never changed in place, are shared."""
        return replace(self, consumed=self.consumed.copy(), totals=copy.deepcopy(self.totals),
                       buffers=self.buffers.copy(), history=copy.deepcopy(self.history), events=list(self.events))


@dataclass
class Stored:
    """Where a snapshot read from a directory keeps its parameters, and what fit wrote it."""

    folder: str
    shards: int
    size: int
    fingerprint: dict[str, Any]


class ParameterSource(Protocol):
    """What a store needs from the parameter server (see ``ParameterServer``)."""

    bounds: list[tuple[int, int]]

    def snapshot(self) -> dict[str, Any]: ...

    def save(self, folder_url: str) -> None: ...


class MemoryStore:
    """Snapshots kept by the driver (the default without ``checkpoint_dir``)."""

    url = None

    def clear(self) -> None:
        pass

    def commit(self, snapshot: Snapshot, server: ParameterSource | None, fingerprint: dict[str, Any]) -> None:
        """Gather the parameters into ``snapshot`` (no ``server``: they are unchanged and set)."""
        if server is None:
            return
        gathered = server.snapshot()
        snapshot.params, snapshot.state = gathered["params"], gathered["state"]

    def parameters(self, snapshot: Snapshot) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return snapshot.params, snapshot.state


class DirectoryStore:
    """Snapshots in a directory: local path or fsspec URL (``s3://...``, ``hdfs://...``)."""

    def __init__(self, url: str):
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.committed: list[str] = []
        self.bounds: list[list[int]] = []  # of the shard files in the newest committed folder

    def check_writable(self) -> None:
        """Fail now, naming the directory, rather than at the first snapshot.

        Folders made for the probe are removed again: a fit that fails before its first snapshot
        leaves nothing behind (the first commit makes them).
        """
        if self.fs.isfile(self.root):
            raise NotADirectoryError(f"checkpoint_dir {self.url} is a file, not a directory")
        made = []  # the folders that do not exist yet, deepest first
        folder = self.root
        while folder and not self.fs.exists(folder) and posixpath.dirname(folder) != folder:
            made.append(folder)
            folder = posixpath.dirname(folder)
        probe = posixpath.join(self.root, f".workbench-probe-{uuid.uuid4().hex}")
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
        except OSError as error:
            raise PermissionError(f"checkpoint_dir {self.url} is not writable: {error}") from error
        finally:
            for folder in made:
                try:
                    self.fs.rmdir(folder)
                except (OSError, NotImplementedError):  # not empty, or a store without folders
                    break

    def clear(self) -> None:
        """Remove the snapshots of an earlier fit (a new fit starts over)."""
        for folder in self._folders():
            self.fs.rm(folder, recursive=True)

    def commit(self, snapshot: Snapshot, server: ParameterSource | None, fingerprint: dict[str, Any]) -> None:
        """Shards write their slices (no ``server``: they are unchanged since the last commit
        of this step), then the driver writes the rest; the manifest commits."""
        folder = posixpath.join(self.root, f"step-{snapshot.step:012d}")
        self.fs.makedirs(folder, exist_ok=True)
        if server is not None:
            server.save(self._url(folder))
            self.bounds = [list(b) for b in server.bounds]
        run_file = f"run-{uuid.uuid4().hex[:12]}.npz"  # a new name: the old manifest keeps its own
        packed = np.packbits(snapshot.consumed)
        write_arrays(self.fs, posixpath.join(folder, run_file), {"consumed": packed, "buffers": snapshot.buffers})
        manifest = {
            "format_version": FORMAT_VERSION,
            "fingerprint": fingerprint,
            "run_file": run_file,
            "bounds": self.bounds,
            "rows": int(len(snapshot.consumed)),
            "step": snapshot.step,
            "epoch": snapshot.epoch,
            "epochs_done": snapshot.epochs_done,
            "totals": _jsonable(snapshot.totals),
            "history": _jsonable(snapshot.history),
            "events": _jsonable(snapshot.events),
            "lr_override": snapshot.lr_override,
        }
        _write_atomic(self.fs, posixpath.join(folder, "manifest.json"), json.dumps(manifest).encode())
        snapshot.stored = Stored(folder, len(self.bounds), self.bounds[-1][1] if self.bounds else 0, fingerprint)
        for entry in self.fs.ls(folder, detail=False):
            name = posixpath.basename(entry)
            if name.startswith("run-") and name != run_file:
                self.fs.rm_file(entry)
        self.committed = [*(f for f in self.committed if f != folder), folder][-_KEEP:]
        for stale in self._folders():
            if stale not in self.committed:
                self.fs.rm(stale, recursive=True)

    def latest(self) -> Snapshot | None:
        """The newest committed snapshot (parameters left on disk), or None."""
        for folder in sorted(self._folders(), reverse=True):
            manifest_path = posixpath.join(folder, "manifest.json")
            if self.fs.exists(manifest_path):
                return self._read(folder, manifest_path)
        return None

    def parameters(self, snapshot: Snapshot) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The flat parameters and optimizer state, read back from the shard files."""
        if snapshot.params is not None:
            return snapshot.params, snapshot.state
        folder, stored = snapshot.stored.folder, snapshot.stored
        slices = [read_arrays(self.fs, posixpath.join(folder, f"shard-{n:04d}.npz")) for n in range(stored.shards)]
        params = np.concatenate([s.pop("params") for s in slices])
        if len(params) != stored.size:
            raise SnapshotError(f"snapshot {self._url(folder)} holds {len(params)} parameters, expected {stored.size}")
        state = {name: np.concatenate([s[name] for s in slices]) for name in slices[0]}
        return params, state

    def check_fingerprint(self, snapshot: Snapshot, fingerprint: dict[str, Any]) -> None:
        """Refuse a snapshot of another model, optimizer or data set."""
        saved = snapshot.stored.fingerprint
        differences = [f"{key}: {saved.get(key)!r} there, {value!r} here" for key, value in fingerprint.items()
                       if saved.get(key) != value]
        if differences:
            raise SnapshotError(
                f"checkpoint_dir {self.url} holds a snapshot of a different fit ({'; '.join(differences)}); "
                "resume with the same model, optimizer and data, or use another checkpoint_dir"
            )

    def _read(self, folder: str, manifest_path: str) -> Snapshot:
        try:
            manifest = json.loads(self.fs.cat_file(manifest_path))
            if manifest.get("format_version") != FORMAT_VERSION:
                raise SnapshotError(f"unsupported snapshot format {manifest.get('format_version')!r}")
            run = read_arrays(self.fs, posixpath.join(folder, manifest["run_file"]))
            rows = manifest["rows"]
            snapshot = Snapshot(
                step=manifest["step"],
                epoch=manifest["epoch"],
                epochs_done=manifest["epochs_done"],
                consumed=np.unpackbits(run["consumed"], count=rows).astype(bool),
                totals=_totals_from_json(manifest["totals"]),
                buffers=run["buffers"],
                history=manifest["history"],
                events=manifest["events"],
                lr_override=manifest["lr_override"],
                stored=Stored(folder, len(manifest["bounds"]), manifest["bounds"][-1][1] if manifest["bounds"] else 0,
                              manifest["fingerprint"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SnapshotError(
                f"snapshot {self._url(folder)} is damaged ({type(error).__name__}: {error}); delete that folder "
                "to resume from the snapshot before it"
            ) from error
        self.committed = [folder]
        self.bounds = manifest["bounds"]
        return snapshot

    def _folders(self) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        return [entry for entry in self.fs.ls(self.root, detail=False)
                if posixpath.basename(entry.rstrip("/")).startswith("step-")]

    def _url(self, path: str) -> str:
        return self.fs.unstrip_protocol(path)


def open_store(checkpoint_dir: Any) -> MemoryStore | DirectoryStore:
    """The store for ``fit(checkpoint_dir=...)``: in memory for None, else a directory."""
    import os

    if checkpoint_dir is None:
        return MemoryStore()
    store = DirectoryStore(os.fspath(checkpoint_dir))
    store.check_writable()
    return store


def write_arrays(fs_or_url: Any, path: str | None, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as one ``.npz`` file, atomically; ``fs_or_url`` alone may be a full URL."""
    fs, path = _resolve(fs_or_url, path)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _write_atomic(fs, path, buffer.getvalue())


def read_arrays(fs_or_url: Any, path: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (no pickles); a damaged file raises naming it."""
    fs, path = _resolve(fs_or_url, path)
    try:
        with np.load(io.BytesIO(fs.cat_file(path)), allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except FileNotFoundError as error:
        raise SnapshotError(f"snapshot file {path} is missing") from error
    except Exception as error:  # zip, npy header and pickle refusals all mean a damaged file
        raise SnapshotError(f"snapshot file {path} is damaged ({type(error).__name__}: {error})") from error


def _resolve(fs_or_url: Any, path: str | None) -> tuple[Any, str]:
    if path is not None:
        return fs_or_url, path
    import fsspec

    return fsspec.core.url_to_fs(fs_or_url)


def _write_atomic(fs: Any, path: str, data: bytes) -> None:
    temporary = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
    fs.pipe_file(temporary, data)
    fs.mv(temporary, path)


def _jsonable(value: Any) -> Any:
    """Numbers, arrays and containers as plain JSON values."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _totals_from_json(totals: dict[str, Any]) -> dict[str, Any]:
    sums = [None if s is None else np.asarray(s) for s in totals["metric_sums"]]
    return {**totals, "metric_sums": sums}
