"""Cluster Serving on Redis streams: clients queue requests, consumers on the Dask workers answer them.

Like Analytics Zoo's Cluster Serving. How a request travels:

1. :meth:`InputQueue.enqueue` adds an entry ``{"id", "tensor"}`` to the request stream and, in
   the same step, marks the id's result key ``{stream}:result:{id}`` as queued for that entry.
2. :func:`serve_queue` runs consumers on every Dask worker of the Workbench context, in one
   Redis consumer group (see :mod:`workbench.serving.consumer`). Each reads a batch of entries
   (``XREADGROUP``), predicts them together, and in one atomic step writes every result under
   its id's key (expiring ``result_ttl_s`` later), acknowledges (``XACK``) and deletes the entries.
3. :meth:`OutputQueue.query` reads a result, or raises :class:`RequestError` for a request that
   failed (a tensor that does not fit the model's signature, say): a bad request never stops a
   consumer.

A consumer lost with its worker leaves its entries pending in the group: the other consumers
claim entries idle for longer than ``claim_idle_ms`` (``XAUTOCLAIM``) and answer them, and the
server starts consumers on the workers that replace it. A claimed request may be computed twice,
but a result is only written for the entry its id's key points to, so each id ends with one result.

A request is one sample, without the batch dimension (the server batches requests together);
its tensors travel as ``.npy`` bytes (``np.save``, read with ``allow_pickle=False``), never as
pickles. Ids are the caller's: an id is refused while its request waits for an answer; queueing
it again once answered replaces the earlier result. Needs Redis 6.2 or newer (``XAUTOCLAIM``).
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import redis
from distributed import wait
from distributed.scheduler import KilledWorker

from workbench.arguments import check_positive_int
from workbench.context import current, scheduler_workers
from workbench.serving.model import InferenceModel

if TYPE_CHECKING:
    from distributed import Client, Future

    from workbench.context import Context
    from workbench.serving.consumer import ConsumerSettings

__all__ = ["InputQueue", "OutputQueue", "RequestError", "QueueServer", "QueueStatus", "serve_queue",
           "DEFAULT_STREAM", "DEFAULT_GROUP"]

DEFAULT_STREAM = "workbench:requests"
DEFAULT_GROUP = "workbench-serving"

#: Seconds between two looks of the server at its consumers and the cluster's workers.
_WATCH_INTERVAL = 0.5
#: Consumers stop when the server has not renewed its lease for this long (its process is gone).
_LEASE_MS = 10_000
#: How long serve_queue waits for every consumer to load the model and join the group.
_START_TIMEOUT = 120.0

log = logging.getLogger(__name__)


class RequestError(RuntimeError):
    """A queued request failed (its tensor does not fit the model, or the model raised)."""


def result_key(stream: str, request_id: str) -> str:
    """The Redis hash that holds the state, then the result, of request ``request_id``."""
    return f"{stream}:result:{request_id}"


def encode_tensor(value: Any) -> dict[str, bytes]:
    """An array as the field ``tensor``, or named arrays as fields ``tensor:<name>`` (``.npy`` bytes)."""
    if isinstance(value, Mapping):
        if not value:
            raise ValueError("no tensors: give at least one named array")
        for name in value:
            if not isinstance(name, str):
                raise TypeError(f"tensor names must be strings, got {name!r}")
        return {f"tensor:{name}": _npy(array, f"tensor {name!r}") for name, array in value.items()}
    return {"tensor": _npy(value, "the tensor")}


def decode_tensor(fields: Mapping[bytes, bytes]) -> np.ndarray | dict[str, np.ndarray]:
    """The array, or arrays by name, that :func:`encode_tensor` wrote into ``fields``."""
    if b"tensor" in fields:
        return _load_npy(fields[b"tensor"])
    named = {key[len(b"tensor:"):].decode(): _load_npy(data) for key, data in fields.items()
             if key.startswith(b"tensor:")}
    if not named:
        raise ValueError("no tensor in the message")
    return named


def _npy(value: Any, what: str) -> bytes:
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise TypeError(f"{what}: an array of Python objects cannot be queued; send numbers")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_npy(data: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"not a .npy array of numbers ({error})") from error


class _QueueClient:
    """A connection to the Redis server behind one request stream."""

    def __init__(self, url: str, stream: str = DEFAULT_STREAM):
        self.url = url
        self.stream = stream
        self._redis = redis.Redis.from_url(url)

    def close(self) -> None:
        self._redis.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# KEYS: the stream, then the result key of each request; ARGV: for each request its id, its number
# of tensor fields n, then n name/value pairs. Nothing is queued when an id is still queued.
_ENQUEUE_SCRIPT = """
local busy = {}
for k = 2, #KEYS do
  if redis.call('HGET', KEYS[k], 'status') == 'queued' then busy[#busy + 1] = k - 1 end
end
if #busy > 0 then return busy end
local a = 1
for k = 2, #KEYS do
  local n = tonumber(ARGV[a + 1])
  local entry = redis.call('XADD', KEYS[1], '*', 'id', ARGV[a], unpack(ARGV, a + 2, a + 1 + 2 * n))
  redis.call('DEL', KEYS[k])
  redis.call('HSET', KEYS[k], 'status', 'queued', 'entry', entry)
  a = a + 2 + 2 * n
end
return busy
"""


class InputQueue(_QueueClient):
    """Queues requests for the consumers of :func:`serve_queue` (Analytics Zoo's ``InputQueue``).

    Args:
        url: the Redis server, e.g. ``"redis://127.0.0.1:6379"``.
        stream: the request stream the server reads.
    """

    def __init__(self, url: str, stream: str = DEFAULT_STREAM):
        super().__init__(url, stream)
        self._enqueue = self._redis.register_script(_ENQUEUE_SCRIPT)

    def enqueue(self, request_id: str, tensor: Any) -> None:
        """Queue one sample (no batch dimension): an array, or arrays by input name.

        Raises ValueError when ``request_id`` is still waiting for its answer.
        """
        self.enqueue_batch([request_id], [tensor])

    def enqueue_batch(self, request_ids: Sequence[str], tensors: Sequence[Any]) -> None:
        """Queue one sample per id in one round trip (e.g. the rows of an array), all or none:
        nothing is queued when an id repeats or is still waiting for its answer."""
        request_ids = [_check_id(request_id) for request_id in request_ids]
        if len(request_ids) != len(tensors):
            raise ValueError(f"{len(request_ids)} ids for {len(tensors)} tensors: give one id per tensor")
        repeated = sorted(request_id for request_id, n in Counter(request_ids).items() if n > 1)
        if repeated:
            raise ValueError(f"ids {repeated} appear more than once: each request needs its own id")
        args: list[Any] = []
        for request_id, tensor in zip(request_ids, tensors):
            fields = encode_tensor(tensor)
            args += [request_id, len(fields)] + [part for item in fields.items() for part in item]
        busy = self._enqueue(keys=[self.stream, *(result_key(self.stream, i) for i in request_ids)], args=args)
        if busy:
            waiting = [request_ids[int(index) - 1] for index in busy]
            raise ValueError(f"ids {waiting} are still waiting for their answers on stream {self.stream!r}; "
                             "nothing was queued (an id can be used again once answered)")


class OutputQueue(_QueueClient):
    """Reads the answers to requests queued with :class:`InputQueue` (Analytics Zoo's ``OutputQueue``).

    Results stay readable until they expire (``result_ttl_s`` of :func:`serve_queue`).
    """

    def query(self, request_id: str, timeout: float | None = None) -> np.ndarray | dict[str, np.ndarray] | None:
        """The model's output for request ``request_id`` (one array, or arrays by output name).

        Returns None when it is not answered yet: at once when ``timeout`` is None, else after
        waiting up to ``timeout`` seconds. Raises :class:`RequestError` when the request failed
        and KeyError for an id that was never queued (or whose result expired).
        """
        key = result_key(self.stream, _check_id(request_id))
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while True:
            fields = self._redis.hgetall(key)
            if not fields:
                raise KeyError(f"no request {request_id!r} on stream {self.stream!r}: it was never queued, "
                               "or its result expired")
            status = fields[b"status"]
            if status == b"done":
                return decode_tensor(fields)
            if status == b"error":
                raise RequestError(f"request {request_id!r} failed: {fields[b'error'].decode()}")
            left = 0.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(pause, left))
            pause = min(2 * pause, 0.05)


def _check_id(request_id: Any) -> str:
    if not isinstance(request_id, str) or not request_id:
        raise TypeError(f"a request id must be a non-empty string, got {request_id!r}")
    return request_id


@dataclass(frozen=True)
class QueueStatus:
    """What a :class:`QueueServer` is doing.

    ``consumers``: the consumers running now, by name, with their worker's address;
    ``answered``: requests answered by each consumer of this server so far (lost ones included);
    ``pending``: requests of the group read by a consumer and not answered yet.
    """

    consumers: dict[str, str]
    answered: dict[str, int]
    pending: int


@dataclass
class _Consumer:
    worker: str
    future: Future


class QueueServer:
    """Consumers answering a request stream on the Dask workers; made by :func:`serve_queue`.

    A thread keeps ``consumers_per_worker`` consumers on every worker alive: it replaces
    consumers lost with their worker, adds consumers on workers that join, and renews the lease
    without which the consumers stop (so they end with the process that started them). A
    consumer that fails, rather than being lost, stops the server: :meth:`wait` raises its error.
    """

    def __init__(self, client: Client, model: InferenceModel, settings: ConsumerSettings,
                 consumers_per_worker: int):
        self.settings = settings
        self._client = client
        self._model = model
        self._per_worker = consumers_per_worker
        self._redis = redis.Redis.from_url(settings.url)
        self._consumers: dict[str, _Consumer] = {}
        self._started: set[str] = set()  # every consumer name this server used
        self._failure: BaseException | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()  # the watcher and stop() change the consumers one at a time
        self._watcher = threading.Thread(target=self._watch, name="workbench-queue-server", daemon=True)

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start the consumers and return once each has loaded the model and joined the group."""
        try:
            self._redis.xgroup_create(self.settings.stream, self.settings.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):  # BUSYGROUP: the group exists; join it
                raise
        try:
            self._renew_lease()
            with self._lock:
                self._reconcile()
            self._watcher.start()
            deadline = time.monotonic() + timeout
            while not self._stopped.is_set():
                with self._lock:
                    starting = set(self._consumers)
                if starting <= self._joined():
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the queue consumers did not start within {timeout:g} s")
                time.sleep(0.05)
            self.wait()  # stopped while starting: raises the failure
        except BaseException:
            self.stop()
            raise

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (Ctrl-C stops it); True once stopped. Raises a consumer's failure."""
        try:
            stopped = self._stopped.wait(timeout)
        except KeyboardInterrupt:
            self.stop()
            raise
        if self._failure is not None:
            raise RuntimeError(f"queue serving on stream {self.settings.stream!r} stopped: {self._failure}"
                               ) from self._failure
        return stopped

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the consumers: each finishes the batch it holds (within ``timeout`` seconds), then ends."""
        self._stopping.set()
        if self._watcher.is_alive() and threading.current_thread() is not self._watcher:
            self._watcher.join()
        with self._lock:
            if self._stopped.is_set():
                return
            try:
                self._end_consumers(timeout)
            finally:
                self._redis.close()
                self._stopped.set()

    def status(self) -> QueueStatus:
        """The consumers running, the requests each answered, and the requests being answered."""
        with self._lock:
            consumers = {name: consumer.worker for name, consumer in self._consumers.items()}
        answered = self._redis.hgetall(self.settings.answered_key)
        pending = self._redis.xpending(self.settings.stream, self.settings.group)["pending"]
        return QueueStatus(consumers, {name.decode(): int(n) for name, n in answered.items()}, int(pending))

    def __enter__(self) -> QueueServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped.is_set() else f"{len(self._consumers)} consumers"
        return f"<QueueServer stream={self.settings.stream!r} group={self.settings.group!r} {state}>"

    def _watch(self) -> None:
        while not self._stopping.wait(_WATCH_INTERVAL):
            try:
                self._renew_lease()
                with self._lock:
                    if not self._stopping.is_set():
                        self._reconcile()
            except Exception as error:
                self._failure = error
                log.error("queue serving on stream %r stopped: %s", self.settings.stream, error)
                self.stop()
                return

    def _renew_lease(self) -> None:
        with self._redis.pipeline() as pipe:
            pipe.set(self.settings.lease_key, 1, px=_LEASE_MS)
            pipe.pexpire(self.settings.answered_key, _LEASE_MS)
            pipe.execute()

    def _reconcile(self) -> None:
        """Raise a consumer's failure; forget consumers lost with their worker (or ended); start
        the consumers missing on the workers alive."""
        from workbench.serving.consumer import consume  # which imports this module

        alive = set(scheduler_workers(self._client))
        for name, consumer in list(self._consumers.items()):
            future, lost = consumer.future, consumer.worker not in alive
            error = future.exception() if future.status == "error" else None
            if error is not None and not lost and not isinstance(error, KilledWorker):
                raise RuntimeError(f"consumer {name} failed: {type(error).__name__}: {error}") from error
            if lost or future.done():
                future.cancel()
                del self._consumers[name]
        for worker in sorted(alive):
            for index in range(self._per_worker):
                name = f"{worker.split('://')[-1]}/{index}/{self.settings.run}"
                if name not in self._consumers:
                    future = self._client.submit(consume, self._model, self.settings, name, workers=[worker],
                                                 allow_other_workers=False, pure=False)
                    self._consumers[name] = _Consumer(worker, future)
                    self._started.add(name)

    def _end_consumers(self, timeout: float) -> None:
        try:
            self._redis.delete(self.settings.lease_key)  # each consumer ends after its current batch
        except redis.RedisError as error:  # Redis is gone: so are the consumers, with errors
            log.warning("queue server: could not remove its lease: %s", error)
        futures = [consumer.future for consumer in self._consumers.values()]
        try:
            wait(futures, timeout=timeout + self.settings.block_ms / 1000)
        except TimeoutError:
            log.warning("queue consumers still busy after %g s: cancelled", timeout)
        self._client.cancel(futures)
        self._consumers.clear()
        try:
            self._forget_idle_consumers()
            self._redis.delete(self.settings.answered_key)
        except redis.RedisError as error:  # e.g. the group was destroyed
            log.warning("queue server: could not tidy Redis up after stopping: %s", error)

    def _joined(self) -> set[str]:
        """The consumers of the group, by name."""
        return {c["name"].decode() for c in self._redis.xinfo_consumers(self.settings.stream, self.settings.group)}

    def _forget_idle_consumers(self) -> None:
        """Remove this server's consumers from the group, except those still holding requests
        (the next consumers claim them)."""
        for consumer in self._redis.xinfo_consumers(self.settings.stream, self.settings.group):
            name = consumer["name"].decode()
            if name in self._started and consumer["pending"] == 0:
                self._redis.xgroup_delconsumer(self.settings.stream, self.settings.group, name)


def serve_queue(model: str | os.PathLike | InferenceModel, url: str, *, stream: str = DEFAULT_STREAM,
                group: str = DEFAULT_GROUP, consumers_per_worker: int = 1, batch_size: int = 64,
                block_ms: int = 500, result_ttl_s: int = 3600, claim_idle_ms: int = 30_000,
                context: Context | None = None) -> QueueServer:
    """Answer the requests queued on ``stream`` with ``model``, on every worker of the Workbench context.

    Args:
        model: an :class:`InferenceModel`, or a path :meth:`InferenceModel.load` reads with its
            defaults (load it yourself for ``trust_code``, ``model`` or a backend).
        url: the Redis server, e.g. ``"redis://127.0.0.1:6379"`` (reachable from the workers).
        stream, group: the request stream and the consumer group the consumers share.
        consumers_per_worker: consumers on each worker (each answers one batch at a time).
        batch_size: most requests a consumer reads and predicts together.
        block_ms: how long a consumer waits for requests before it looks again (and notices a stop).
        result_ttl_s: how long a result stays readable.
        claim_idle_ms: how long a request may stay read but unanswered before another consumer
            takes it over (its consumer is taken for lost): longer than the slowest batch.
        context: the Workbench context (default: the current one).

    Returns:
        The running :class:`QueueServer` (a context manager); its consumers have joined the group.
    """
    from workbench.serving.consumer import ConsumerSettings  # which imports this module

    for name, value in [("consumers_per_worker", consumers_per_worker), ("batch_size", batch_size),
                        ("block_ms", block_ms), ("result_ttl_s", result_ttl_s), ("claim_idle_ms", claim_idle_ms)]:
        check_positive_int(name, value)
    context = context or current()
    if context is None:
        raise RuntimeError("no Workbench context: call wb.init() before serve_queue()")
    if isinstance(model, (str, os.PathLike)):
        model = InferenceModel.load(model)
    elif not isinstance(model, InferenceModel):
        raise TypeError(f"model must be an InferenceModel or the path of a saved model, not {type(model).__name__}")
    settings = ConsumerSettings(url=url, stream=stream, group=group, run=uuid.uuid4().hex[:8], batch_size=batch_size,
                                block_ms=block_ms, claim_idle_ms=claim_idle_ms, result_ttl_s=result_ttl_s)
    server = QueueServer(context.client, model, settings, consumers_per_worker)
    server.start()
    return server
