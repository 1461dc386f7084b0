"""The HTTP model server behind ``workbench serve``: a Starlette app run by uvicorn.

Routes:

- ``POST /predict``: JSON ``{"inputs": [[...], ...]}`` (one-input model),
  ``{"inputs": {"name": [[...]], ...}}`` (inputs by name) or ``{"records": [{"column": value}, ...]}``
  (a model trained on table columns); or a ``.npy`` array with ``Content-Type: application/x-npy``.
  The answer is ``{"outputs": [[...], ...]}`` (by output name for several outputs), or a
  ``.npy`` array with ``Accept: application/x-npy``.
- ``GET /health`` (always open, even with a token), ``GET /signature``, ``GET /metrics`` (Prometheus).

Concurrent requests are merged into batches by a :class:`~workbench.serving.batching.DynamicBatcher`.
Every refusal is JSON ``{"error": "..."}``: 400 for a request that does not fit the signature,
401 without the token, 413 for a body over ``max_body_bytes``, 503 (``Retry-After``) when
``max_queue`` requests already wait. On SIGTERM or SIGINT the server stops accepting
connections, answers every request it has accepted, then exits.
"""

from __future__ import annotations

import hmac
import io
import json
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workbench.arguments import check_positive_int
from workbench.serving.batching import DynamicBatcher, Output, QueueFull
from workbench.serving.metrics import CONTENT_TYPE_LATEST, MetricsMiddleware, ServerMetrics
from workbench.serving.model import InferenceModel
from workbench.serving.signature import Signature, SignatureError

__all__ = ["create_app", "serve", "NPY"]

#: the media type of a request or answer that is one ``.npy`` array
NPY = "application/x-npy"
JSON = "application/json"

Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(model: InferenceModel, name: str = "model", *, max_batch_size: int = 64, max_latency_ms: float = 5.0,
               max_queue: int = 256, max_body_bytes: int = 8 * 2**20, token: str | None = None) -> Starlette:
    """The Starlette app serving ``model`` (see the module docstring); ``name`` is reported by /health.

    ``max_queue`` counts requests waiting for the model; ``token`` requires
    ``Authorization: Bearer TOKEN`` on every route but /health. The app's batcher is
    ``app.state.batcher``: it runs while the app's lifespan does.
    """
    check_positive_int("max_body_bytes", max_body_bytes)
    if token is not None and not token:
        raise ValueError("the token is empty: give a non-empty token, or none")
    metrics = ServerMetrics(max_batch_size, queued=lambda: batcher.queued)
    batcher = DynamicBatcher(model.predict, max_batch_size, max_latency_ms, max_queue, model.concurrency,
                             on_batch=metrics.observe_batch)
    protect = _bearer_token(token)

    async def predict(request: Request) -> Response:
        body = await _read_body(request, max_body_bytes)
        arrays = _decode(body, request.headers.get("content-type", JSON), model.signature)
        try:
            output = await batcher.predict(dict(zip(model.signature.input_names, arrays)))
        except QueueFull as error:
            raise HTTPException(503, f"the server is busy: {error}; retry later", {"Retry-After": "1"}) from error
        return _encode(output, request.headers.get("accept", ""))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": name, "backend": model.backend})

    async def signature(request: Request) -> Response:
        return JSONResponse(model.signature.to_dict())

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.close()

    routes = [Route("/predict", protect(predict), methods=["POST"]), Route("/health", health),
              Route("/signature", protect(signature)), Route("/metrics", protect(prometheus))]
    app = Starlette(
        routes=routes, lifespan=lifespan,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics, routes=[route.path for route in routes])],
        exception_handlers={HTTPException: _error_answer, SignatureError: _error_answer},
    )
    app.state.batcher = batcher
    return app


def serve(model: InferenceModel, host: str = "127.0.0.1", port: int = 8000, name: str = "model",
          **options: Any) -> None:
    """Serve ``model`` over HTTP on ``host:port`` (0: any free port) until SIGTERM or SIGINT.

    ``options`` are :func:`create_app`'s. Prints ``Serving NAME (BACKEND) on URL`` on stdout
    once the port is bound; returns after a graceful shutdown (every accepted request answered).
    """
    app = create_app(model, name, **options)
    listener = _listen(host, port)
    server = _Server(uvicorn.Config(app, lifespan="on", access_log=False), on_exit=app.state.batcher.flush)
    print(f"Serving {name} ({model.backend}) on {_url(listener)}", flush=True)
    with _signals_already_handled():
        server.run(sockets=[listener])


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it is over ``limit`` bytes, whether its
    Content-Length says so or its chunks add up to more."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is over the server's limit of {limit} bytes (--max-body-bytes)")


def _decode(body: bytes, content_type: str, signature: Signature) -> list[np.ndarray]:
    """The model's input arrays (checked, in input order) from a JSON or ``.npy`` body."""
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == NPY:
        arrays = signature.check(_npy_array(body))
    elif media_type in (JSON, ""):
        arrays = _json_arrays(body, signature)
    else:
        raise HTTPException(415, f"unsupported Content-Type {media_type!r}: send {JSON} or {NPY}")
    if len(arrays[0]) == 0:
        raise HTTPException(400, "no rows: send at least one row")
    return arrays


def _npy_array(body: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)  # never unpickle what a client sent
    except (ValueError, EOFError, OSError) as error:
        raise HTTPException(400, f"the body is not a .npy array: {error}") from error
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise HTTPException(400, f"the body is an .npz archive: send one .npy array ({NPY})")
    return array


def _json_arrays(body: bytes, signature: Signature) -> list[np.ndarray]:
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except ValueError as error:  # also a body that is not UTF-8
        raise HTTPException(400, f"the body is not valid JSON: {error}") from error
    if not isinstance(payload, dict):
        raise HTTPException(400, 'the body must be a JSON object: {"inputs": ...} or {"records": [...]}')
    unknown = sorted(set(payload) - {"inputs", "records"})
    if unknown:
        raise HTTPException(400, f'unknown field(s) {unknown}: send "inputs" or "records"')
    if "inputs" in payload and "records" in payload:
        raise HTTPException(400, 'send "inputs" or "records", not both')
    if "records" in payload:
        if not isinstance(payload["records"], list):
            raise HTTPException(400, '"records" must be a list of objects, one per row')
        return signature.check(signature.records_to_batch(payload["records"]))
    if "inputs" not in payload:
        raise HTTPException(400, 'missing field "inputs" (or "records" for a model trained on table columns)')
    return signature.check(payload["inputs"])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (the model's inputs must be finite)")


def _encode(output: Output, accept: str) -> Response:
    """The model's output as ``.npy`` when the client accepts it, else as JSON."""
    if NPY in accept:
        if isinstance(output, dict):
            raise HTTPException(406, f"the model has several outputs {list(output)}: ask for JSON")
        buffer = io.BytesIO()
        np.save(buffer, output, allow_pickle=False)
        return Response(buffer.getvalue(), media_type=NPY)
    outputs = {name: array.tolist() for name, array in output.items()} if isinstance(output, dict) else output.tolist()
    try:
        return JSONResponse({"outputs": outputs})
    except ValueError as error:  # NaN or infinity, which JSON cannot carry
        raise HTTPException(500, f"the model's output is not finite, which JSON cannot carry ({error}): "
                                 f"ask for {NPY} (Accept header)") from error


def _bearer_token(token: str | None) -> Callable[[Endpoint], Endpoint]:
    """A decorator refusing requests without ``Authorization: Bearer TOKEN`` (401); none without a token."""
    def protect(endpoint: Endpoint) -> Endpoint:
        if token is None:
            return endpoint

        async def protected(request: Request) -> Response:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if not (scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())):
                raise HTTPException(401, "missing or wrong token: send the header 'Authorization: Bearer TOKEN'",
                                    {"WWW-Authenticate": "Bearer"})
            return await endpoint(request)

        return protected

    return protect


async def _error_answer(request: Request, error: Exception) -> Response:
    """Any refusal as JSON ``{"error": message}``: HTTP errors with their status, SignatureError as 400."""
    if isinstance(error, HTTPException):
        return JSONResponse({"error": error.detail}, error.status_code, headers=error.headers)
    return JSONResponse({"error": str(error)}, 400)


class _Server(uvicorn.Server):
    """uvicorn's server that also calls ``on_exit`` as soon as a shutdown signal arrives: the
    batcher then stops waiting for more rows, so queued requests are answered at once."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]):
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._on_exit()


@contextmanager
def _signals_already_handled() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM once uvicorn is done with them.

    uvicorn handles them while it serves (a graceful shutdown), then raises them again with
    the handlers it found; by then every request is answered, so ``serve`` returns normally
    (exit status 0) instead of the process dying of the signal.
    """
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (IPv6 when the host has a colon), before the server
    runs: connections made as soon as the URL is printed wait for it instead of being refused.

    The protocol is named (IPPROTO_TCP) for asyncio to set TCP_NODELAY on each connection:
    without it every answer waits some 40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    return listener


def _url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}" if listener.family == socket.AF_INET6 else f"http://{host}:{port}"
