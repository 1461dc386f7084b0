"""Sharded scatter/gather parameter server on Dask actors.

The flat float32 parameter vector is cut into one contiguous slice per worker. Slice *n*
lives in a :class:`ParameterShard`, a Dask actor placed on worker *n*, together with that
slice's optimizer state. Every step each worker pushes gradient slice *n* to shard *n*
(scatter); when all workers' slices are in, the shard sums them, updates its parameters and
sends the new slice back to every worker (gather).

Dask's actor machinery places the shards, carries the control calls (endpoints, state,
learning rate, snapshot) and makes the shards visible to the scheduler. The per-step bytes go
over one plain TCP stream per (worker, remote shard) pair opened by the actor, so numpy buffers
travel without pickling or extra copies, in chunks: a shard updates chunk *k* and sends it
back while chunk *k+1* is still arriving; a worker streams a slice as soon as its backward
pass has finished that slice's gradients. A worker's own shard is reached in-process and keeps
its slice inside that worker's model buffer. Streams are authenticated with a random token
handed out through the actor.

Gradients arrive already weighted (each worker scales its loss by its share of the global
batch), so the shard only sums them.
"""

from __future__ import annotations

import secrets
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from workbench.train.optimizers import clip_scale, optimizer_from_config
from workbench.train.snapshots import write_arrays

__all__ = ["ParameterServer", "ParameterShard", "ShardConnections", "StepAborted", "slice_bounds"]

#: Elements per pipelined chunk (8 MiB of float32; smaller chunks cost more in thread hand-offs than they gain in overlap).
CHUNK_ELEMENTS = 1 << 21
_TOKEN_BYTES = 16
_HEADER = struct.Struct("!q")  # step number
_NORM = struct.Struct("!d")  # squared gradient norm of a slice, or a clipping scale


class StepAborted(RuntimeError):
    """A step could not finish because another participant failed (not the root cause)."""


def slice_bounds(size: int, num_shards: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` ranges splitting ``size`` elements into near-equal slices."""
    edges = [shard * size // num_shards for shard in range(num_shards + 1)]
    return list(zip(edges[:-1], edges[1:]))


class ParameterServer:
    """The driver's handle on all shards: start them on the workers, snapshot, close.

    Args:
        client: the Dask client.
        params: the full flat float32 parameter vector.
        workers: one worker address per shard (shard *n* on ``workers[n]``).
        optimizer: optimizer config (see :mod:`workbench.train.optimizers`).
        clip_norm: clip the global gradient norm to this value.
        step: optimizer steps already taken; state: full-length optimizer state (resuming).
        wait: ``wait(calls) -> results`` for a list of actor calls; the default blocks on each,
            a fit passes one that also watches for lost workers.
    """

    def __init__(
        self,
        client,
        params: np.ndarray,
        workers: list[str],
        optimizer: dict[str, Any],
        clip_norm: float | None = None,
        step: int = 0,
        state: dict[str, np.ndarray] | None = None,
        wait: Callable[[list], list] | None = None,
    ):
        self.client = client
        self.workers = list(workers)
        self.wait = wait or (lambda calls: [call.result() for call in calls])
        self.size = params.size
        self.bounds = slice_bounds(params.size, len(workers))
        # weights (not training data) go to their shard's worker directly, outside the graph
        slices = [
            client.scatter(params[lo:hi], workers=[worker], direct=True, hash=False)  # own key per fit
            for (lo, hi), worker in zip(self.bounds, workers)
        ]
        futures = [
            client.submit(
                ParameterShard,
                index,
                initial,
                optimizer,
                len(workers),
                clip_norm,
                step,
                None if state is None else {name: value[lo:hi] for name, value in state.items()},
                actor=True,
                workers=[worker],
                allow_other_workers=False,
                pure=False,
            )
            for index, ((lo, hi), worker, initial) in enumerate(zip(self.bounds, workers, slices))
        ]
        self.futures = futures
        self.actors = self.wait(futures)
        self.keys = [future.key for future in futures]
        self.clip_norm = clip_norm

    def call_all(self, method: str, *args: Any, workers: set[str] | None = None) -> list[Any]:
        """Call an actor method on every shard (or those on ``workers``) concurrently; return
        the results in shard order."""
        calls = [getattr(actor, method)(*args) for actor, worker in zip(self.actors, self.workers)
                 if workers is None or worker in workers]
        return self.wait(calls)

    def snapshot(self) -> dict[str, Any]:
        """The full parameter vector, optimizer state and step, gathered from the shards."""
        parts = self.call_all("snapshot")
        return {
            "params": np.concatenate([p["params"] for p in parts]),
            "state": {name: np.concatenate([p["state"][name] for p in parts]) for name in parts[0]["state"]},
            "step": parts[0]["step"],
        }

    def save(self, folder_url: str) -> None:
        """Every shard writes its slice and optimizer state to ``folder_url/shard-NNNN.npz``."""
        self.call_all("save", folder_url)

    def connect_args(self) -> tuple:
        """What a worker passes to :class:`ShardConnections`."""
        return self.actors, self.keys, self.bounds, self.clip_norm

    def close(self, alive: set[str] | None = None) -> None:
        """Stop the shards; with ``alive``, first fail any step in flight, and reach only the
        shards on those workers (the others are gone with their worker)."""
        if alive is not None:
            self.call_all("abort", "the fit is recovering from a lost worker", workers=alive)
        self.call_all("close", workers=alive)
        for future in self.futures:
            future.release()


class ParameterShard:
    """One slice of the parameters and its optimizer state (a Dask actor).

    Args:
        index: the slice's position (shard *index* of the server).
        params: the initial values of this slice.
        optimizer: config of a :class:`~workbench.train.optimizers.SliceOptimizer`.
        num_workers: how many workers contribute a gradient every step.
        clip_norm: clip the global gradient norm to this value (all shards together).
        step: optimizer steps already taken (when resuming).
        state: optimizer state arrays for this slice (when resuming).
    """

    def __init__(
        self,
        index: int,
        params: np.ndarray,
        optimizer: dict[str, Any],
        num_workers: int,
        clip_norm: float | None = None,
        step: int = 0,
        state: dict[str, np.ndarray] | None = None,
    ):
        self.index = index
        self.params = np.array(params, dtype=np.float32)
        self.optimizer = optimizer_from_config(optimizer)
        self.state = state if state is not None else self.optimizer.init_state(self.params.size)
        self.num_workers = num_workers
        self.clip_norm = clip_norm
        self.step = step
        self.epoch = 0
        self.lr_override: float | None = None
        self._round = _Round(self, num_workers)
        self._server = _ShardServer(self._round, num_workers - 1)

    # -- control plane (Dask actor calls) ----------------------------------------------------

    def endpoint(self) -> tuple[str, int, bytes]:
        """Where workers on other processes stream their gradients: host, port, token."""
        return self._server.host, self._server.port, self._server.token

    def snapshot(self) -> dict[str, Any]:
        """Parameters, optimizer state and step, copied."""
        return {
            "params": self.params.copy(),
            "state": {name: value.copy() for name, value in self.state.items()},
            "step": self.step,
        }

    def get_params(self) -> np.ndarray:
        return self.params

    def save(self, folder_url: str) -> None:
        """Write this slice and its optimizer state into a snapshot folder (atomically)."""
        write_arrays(f"{folder_url}/shard-{self.index:04d}.npz", None, {"params": self.params, **self.state})

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_learning_rate(self, lr: float | None) -> None:
        """Override the optimizer's schedule from now on (None: back to the schedule)."""
        self.lr_override = lr

    def learning_rate(self) -> float:
        if self.lr_override is not None:
            return self.lr_override
        return self.optimizer.learning_rate(self.step + 1, self.epoch)

    def abort(self, reason: str) -> None:
        """Fail the current step for every participant, so that none waits for a dead rank."""
        self._round.fail(StepAborted(reason))

    def close(self) -> None:
        self._server.close()

    # -- data plane, in-process ------------------------------------------------------------

    def adopt(self, buffer: np.ndarray) -> None:
        """Keep this slice's parameters in the co-located worker's model buffer.

        Updates then write straight into the model (no copy back), which is safe because a
        shard updates only once every worker, its own included, has pushed the step.
        """
        np.copyto(buffer, self.params)
        self.params = buffer

    def contribute_local(self, step: int, grad: np.ndarray, exchange_norm) -> None:
        """The co-located worker's push and pull, without a socket."""
        self._round.run_participant(0, step, grad, exchange_norm)


class _Round:
    """One synchronous step of a shard: gather contributions, update, hand parameters back.

    Participant 0 is the co-located worker; participants 1.. are remote streams. Chunks are
    updated as soon as every participant has delivered them.
    """

    def __init__(self, shard: ParameterShard, num_workers: int):
        self.shard = shard
        self.num_workers = num_workers
        size = shard.params.size
        self.chunks = [(lo, min(lo + CHUNK_ELEMENTS, size)) for lo in range(0, max(size, 1), CHUNK_ELEMENTS)]
        self.contributions: list[np.ndarray | None] = [None]  # the co-located worker's gradient
        # receive buffers of the remote participants (participant 0 hands over its own array,
        # which becomes the sum: the worker rewrites its gradient buffer every step anyway)
        self.received = [None] + [np.empty(size, np.float32) for _ in range(num_workers - 1)]
        self.scratch = np.empty(size, np.float32)  # optimizer work space, allocated once
        self.arrived = [0] * len(self.chunks)
        self.updated_step = [shard.step] * len(self.chunks)
        self.norm_parts: list[float] = []
        self.scales: list[float] = []
        self.failure: BaseException | None = None
        self.lock = threading.Condition()

    def run_participant(self, who: int, step: int, grad: np.ndarray, exchange_norm) -> None:
        """Deliver ``grad`` chunk by chunk, then wait until every chunk is updated.

        ``exchange_norm(sq_norm) -> scale`` is called once when gradients are clipped: it
        shares this shard's squared norm with the worker and returns the global clip scale.
        """
        self.check_step(step)
        self.contributions[who] = grad
        for chunk in range(len(self.chunks)):
            self.arrive(chunk, step)
        if self.shard.clip_norm is not None:
            self.clip(step, exchange_norm)
        for chunk in range(len(self.chunks)):
            self.wait_updated(chunk, step)

    def check_step(self, step: int) -> None:
        if step != self.shard.step + 1:
            raise RuntimeError(f"shard is at step {self.shard.step} but a worker pushed step {step}")

    def arrive(self, chunk: int, step: int) -> None:
        with self.lock:
            self.arrived[chunk] += 1
            if self.arrived[chunk] < self.num_workers:
                return
            self.arrived[chunk] = 0
        lo, hi = self.chunks[chunk]
        grad = self._sum(lo, hi)
        if self.shard.clip_norm is None:
            self._update(lo, hi, step, scale=1.0)
            self._mark_updated(chunk, step)
        else:
            with self.lock:
                self.norm_parts.append(float(np.dot(grad, grad)))
                self.lock.notify_all()

    def clip(self, step: int, exchange_norm) -> None:
        """Share this slice's squared norm, collect every worker's scale, update all chunks."""
        with self.lock:
            self.lock.wait_for(lambda: len(self.norm_parts) == len(self.chunks) or self.failure)
            self._raise_failure()
            sq_norm = sum(self.norm_parts)
        scale = exchange_norm(sq_norm)
        with self.lock:
            self.scales.append(scale)
            if len(self.scales) < self.num_workers:
                return
            self.norm_parts, self.scales = [], []
        self._update(0, self.scratch.size, step, scale=scale)
        for chunk in range(len(self.chunks)):
            self._mark_updated(chunk, step)

    def wait_updated(self, chunk: int, step: int) -> None:
        with self.lock:
            self.lock.wait_for(lambda: self.updated_step[chunk] >= step or self.failure)
            self._raise_failure()

    def fail(self, error: BaseException) -> None:
        with self.lock:
            self.failure = error
            self.lock.notify_all()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise StepAborted(f"parameter shard failed: {self.failure}") from self.failure

    def _sum(self, lo: int, hi: int) -> np.ndarray:
        """Add every remote gradient chunk into the local one; return the sum."""
        total = self.contributions[0][lo:hi]
        for who in range(1, self.num_workers):
            total += self.received[who][lo:hi]
        return total

    def _update(self, lo: int, hi: int, step: int, scale: float) -> None:
        shard = self.shard
        grad = self.contributions[0][lo:hi]
        if scale != 1.0:
            grad *= scale
        state = {name: value[lo:hi] for name, value in shard.state.items()}
        shard.optimizer.step(shard.params[lo:hi], grad, state, step, shard.learning_rate(), self.scratch[lo:hi])

    def _mark_updated(self, chunk: int, step: int) -> None:
        with self.lock:
            self.updated_step[chunk] = step
            if all(s == step for s in self.updated_step):
                self.shard.step = step
            self.lock.notify_all()


class _ShardServer:
    """Accepts one authenticated stream per remote worker and serves its steps."""

    def __init__(self, round_: _Round, num_remote: int):
        from distributed import get_worker
        from distributed.comm import get_address_host

        self.round = round_
        self.token = secrets.token_bytes(_TOKEN_BYTES)
        self.host = get_address_host(get_worker().address)
        self.listener = socket.create_server((self.host, 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        self.next_participant = 1
        self.num_remote = num_remote
        threading.Thread(target=self._accept, name="workbench-shard-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            _tune(conn)
            token = _recv_exact(conn, _TOKEN_BYTES, eof_ok=True)
            if not secrets.compare_digest(token, self.token) or self.next_participant > self.num_remote:
                conn.close()
                continue
            who, self.next_participant = self.next_participant, self.next_participant + 1
            threading.Thread(target=self._serve, args=(conn, who), name=f"workbench-shard-{who}", daemon=True).start()

    def _serve(self, conn: socket.socket, who: int) -> None:
        """Read each step's gradient chunks from one worker; a twin thread sends parameters."""
        round_ = self.round
        buffer = memoryview(round_.received[who]).cast("B")
        sender = ThreadPoolExecutor(1, thread_name_prefix="workbench-shard-send")
        try:
            while True:
                header = _recv_exact(conn, _HEADER.size, eof_ok=True)
                if not header:  # the worker closed the stream: fine only once the shard is closed
                    raise StepAborted(f"worker {who} of this shard disconnected")
                (step,) = _HEADER.unpack(header)
                round_.check_step(step)
                sending = sender.submit(self._send_params, conn, step)
                for chunk, (lo, hi) in enumerate(round_.chunks):
                    _recv_into(conn, buffer[lo * 4 : hi * 4])
                    round_.arrive(chunk, step)
                if round_.shard.clip_norm is not None:
                    round_.clip(step, lambda sq: self._exchange_norm(conn, sq))
                sending.result()
        except Exception as error:  # a broken stream fails the step for everyone
            if not self.closed:
                round_.fail(error)
        finally:
            sender.shutdown(wait=False)
            conn.close()

    @staticmethod
    def _exchange_norm(conn: socket.socket, sq_norm: float) -> float:
        conn.sendall(_NORM.pack(sq_norm))
        return _NORM.unpack(_recv_exact(conn, _NORM.size))[0]

    def _send_params(self, conn: socket.socket, step: int) -> None:
        for chunk, (lo, hi) in enumerate(self.round.chunks):
            self.round.wait_updated(chunk, step)
            # read the array only now: the co-located worker may have adopted it since the header
            conn.sendall(memoryview(self.round.shard.params[lo:hi]).cast("B"))

    def close(self) -> None:
        self.closed = True
        self.listener.close()


class ShardConnections:
    """A worker's side of the parameter server: push gradients, pull parameters, every step.

    Args:
        shards: the shard actors, in slice order.
        keys: their Dask keys (to find the co-located shard in this worker process).
        bounds: ``(start, stop)`` of each shard's slice in the flat vector.
        clip_norm: the gradient clipping norm the shards were started with.
        params: this worker's flat parameter buffer: filled with the shards' current values
            here, then updated in place by every step.
        eager: stream each gradient slice as soon as backward has finished it (overlapping
            communication with backward); otherwise nothing leaves before :meth:`finish`, so
            the worker can still inspect or discard the whole gradient.
    """

    def __init__(self, shards: list, keys: list[str], bounds: list[tuple[int, int]], clip_norm: float | None,
                 params: np.ndarray, eager: bool = True):
        from distributed import get_worker

        self.eager = eager
        self.backward_done = threading.Event()
        actors = get_worker().state.actors
        self.shards = shards
        self.bounds = bounds
        self.clip_norm = clip_norm
        self.params = params
        self.local: dict[int, ParameterShard] = {}
        self.remote: dict[int, socket.socket] = {}
        for index, (shard, key) in enumerate(zip(shards, keys)):
            if key in actors:
                self.local[index] = actors[key]
                lo, hi = bounds[index]
                actors[key].adopt(params[lo:hi])
            else:
                host, port, token = shard.endpoint().result()
                np.copyto(params[slice(*bounds[index])], shard.get_params().result())
                conn = socket.create_connection((host, port))
                _tune(conn)
                conn.sendall(token)
                self.remote[index] = conn
        self.pool = ThreadPoolExecutor(max(1, 2 * len(self.remote)), thread_name_prefix="workbench-push")

    def push_pull(self, step: int, grad: np.ndarray) -> None:
        """Send ``grad`` slices for ``step``; on return ``params`` holds the updated values.

        ``grad`` is consumed: co-located shards sum into it and use it as work space.
        """
        self.start(step, grad)
        self.finish()

    def start(self, step: int, grad: np.ndarray) -> None:
        """Open ``step``: slices may now be sent with :meth:`slice_ready` as backward fills them."""
        self.step, self.grad = step, grad
        self.sent: set[int] = set()
        self.norms = _NormExchange(len(self.bounds), self.clip_norm)
        self.backward_done = threading.Event()
        self.pending: list[Future] = [
            self.pool.submit(self._receive, conn, self.params[slice(*self.bounds[index])])
            for index, conn in self.remote.items()
        ]

    def slice_ready(self, index: int) -> None:
        """Shard ``index``'s gradient slice is final: stream it now, overlapping the backward."""
        if self.eager:
            self._send_slice(index)

    def _send_slice(self, index: int) -> None:
        if index in self.remote and index not in self.sent:
            self.sent.add(index)
            lo, hi = self.bounds[index]
            self.pending.append(self.pool.submit(self._send, self.remote[index], self.step, self.grad[lo:hi]))

    def finish(self) -> None:
        """The whole gradient is final: send what is left, serve local shards, wait for the step."""
        self.backward_done.set()
        for index in self.remote:
            self._send_slice(index)
        for index, shard in self.local.items():
            lo, hi = self.bounds[index]
            shard.contribute_local(self.step, self.grad[lo:hi], self.norms.share)
        for future in self.pending:
            future.result()

    @staticmethod
    def _send(conn: socket.socket, step: int, grad: np.ndarray) -> None:
        conn.sendall(_HEADER.pack(step))
        conn.sendall(memoryview(np.ascontiguousarray(grad)).cast("B"))

    def _receive(self, conn: socket.socket, out: np.ndarray) -> None:
        # new parameters land in the model only once its backward no longer reads them
        self.backward_done.wait()
        if self.clip_norm is not None:
            (sq_norm,) = _NORM.unpack(_recv_exact(conn, _NORM.size))
            conn.sendall(_NORM.pack(self.norms.share(sq_norm)))
        _recv_into(conn, memoryview(out).cast("B"))

    def abort(self, error: BaseException) -> None:
        """This worker failed mid-step: fail the step on every shard (control plane).

        The calls are not waited for: a shard whose worker is gone would hold this worker up.
        """
        self.backward_done.set()  # release this worker's receive threads too
        for shard in self.shards:
            shard.abort(f"a worker failed: {type(error).__name__}: {error}")

    def close(self) -> None:
        for conn in self.remote.values():
            conn.close()
        self.pool.shutdown(wait=False)


class _NormExchange:
    """Collects every shard's squared gradient norm and answers each with the global scale."""

    def __init__(self, num_shards: int, clip_norm: float | None):
        self.clip_norm = clip_norm
        self.num_shards = num_shards
        self.parts: list[float] = []
        self.lock = threading.Condition()

    def share(self, sq_norm: float) -> float:
        with self.lock:
            self.parts.append(sq_norm)
            self.lock.notify_all()
            self.lock.wait_for(lambda: len(self.parts) == self.num_shards)
            return clip_scale(sum(self.parts), self.clip_norm)


def _tune(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        conn.setsockopt(socket.SOL_SOCKET, option, 4 << 20)


def _recv_into(conn: socket.socket, view: memoryview) -> None:
    while view:
        count = conn.recv_into(view)
        if count == 0:
            raise StepAborted("parameter-server stream closed mid-message")
        view = view[count:]


def _recv_exact(conn: socket.socket, size: int, eof_ok: bool = False) -> bytes:
    """Read ``size`` bytes; ``b""`` when the peer closed cleanly before any and ``eof_ok``."""
    data = bytearray(size)
    view = memoryview(data)
    while view:
        count = conn.recv_into(view)
        if count == 0:
            if eof_ok and len(view) == size:
                return b""
            raise StepAborted("parameter-server stream closed mid-message")
        view = view[count:]
    return bytes(data)
