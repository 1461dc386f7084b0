"""The worker side of queue serving: one consumer in the request stream's consumer group.

A consumer is a long-running Dask task (it secedes from the worker's thread pool, so the worker
keeps its threads for other work) that runs until its server's lease key is gone. Its loop:

1. every ``claim_idle_ms / 2``, take over the requests another consumer read but has not
   answered for ``claim_idle_ms`` (``XAUTOCLAIM``): that consumer is taken for lost;
2. otherwise read up to ``batch_size`` new requests (``XREADGROUP``, waiting up to ``block_ms``);
3. check each request against the model's signature, predict the valid ones together, and
   write every answer (a result, or the error of a request that does not fit) with one script
   that also acknowledges and deletes the entries: a consumer killed before it ends leaves its
   requests pending, never half answered.

An answer is written only while the id's key still points at the entry answered: a request
answered twice (claimed from a consumer that was slow rather than lost) ends with one result,
and an old request never replaces the result of a newer one with the same id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from distributed import secede

from workbench.serving.model import InferenceModel
from workbench.serving.queue import decode_tensor, encode_tensor, result_key
from workbench.serving.signature import SignatureError

__all__ = ["ConsumerSettings", "consume"]

log = logging.getLogger(__name__)

#: An entry read from the stream: its id, the request's id, and its tensors checked against the signature.
_Request = tuple[bytes, str, list[np.ndarray]]


@dataclass(frozen=True)
class ConsumerSettings:
    """What the consumers of one :class:`~workbench.serving.queue.QueueServer` share."""

    url: str
    stream: str
    group: str
    run: str  # the server's id, in its keys and its consumers' names
    batch_size: int
    block_ms: int
    claim_idle_ms: int
    result_ttl_s: int

    @property
    def lease_key(self) -> str:
        """Exists while the server runs (it renews the key's expiry); its consumers stop without it."""
        return f"{self.stream}:server:{self.run}"

    @property
    def answered_key(self) -> str:
        """A hash: how many requests each consumer of the server answered."""
        return f"{self.stream}:server:{self.run}:answered"


# KEYS: the stream, the answered counts, then the result key of each answer. ARGV: the group, the
# consumer, the result TTL, then for each answer its entry id, its number of fields n and n name/value pairs.
_ANSWER_SCRIPT = """
local written, a = 0, 4
for k = 3, #KEYS do
  local entry, n = ARGV[a], tonumber(ARGV[a + 1])
  if redis.call('HGET', KEYS[k], 'entry') == entry then
    redis.call('DEL', KEYS[k])
    redis.call('HSET', KEYS[k], 'entry', entry, unpack(ARGV, a + 2, a + 1 + 2 * n))
    redis.call('EXPIRE', KEYS[k], ARGV[3])
    written = written + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], entry)
  redis.call('XDEL', KEYS[1], entry)
  a = a + 2 + 2 * n
end
redis.call('HINCRBY', KEYS[2], ARGV[2], written)
return written
"""


def consume(model: InferenceModel, settings: ConsumerSettings, name: str) -> None:
    """Answer requests as consumer ``name`` until the server's lease is gone (a Dask task)."""
    secede()
    connection = redis.Redis.from_url(settings.url, client_name=name)  # named in Redis' CLIENT LIST
    try:
        _Consumer(model, settings, name, connection).run()
    finally:
        connection.close()


class _Consumer:
    def __init__(self, model: InferenceModel, settings: ConsumerSettings, name: str, connection: redis.Redis):
        self.model = model
        self.settings = settings
        self.name = name
        self.redis = connection
        self._write = connection.register_script(_ANSWER_SCRIPT)
        self._claim_from = "0-0"  # where the next look for requests to claim starts
        self._next_claim = 0.0

    def run(self) -> None:
        settings = self.settings
        self.redis.xgroup_createconsumer(settings.stream, settings.group, self.name)
        while self.redis.exists(settings.lease_key):
            entries = self._claim() or self._read()
            if entries:
                self._answer(entries)

    def _claim(self) -> list[tuple[bytes, dict]]:
        """Requests other consumers have held unanswered for ``claim_idle_ms`` (looked for
        every ``claim_idle_ms / 2``, a batch at a time)."""
        settings = self.settings
        if time.monotonic() < self._next_claim:
            return []
        reply = self.redis.xautoclaim(settings.stream, settings.group, self.name, settings.claim_idle_ms,
                                      start_id=self._claim_from, count=settings.batch_size)
        self._claim_from, entries = reply[0], reply[1]  # Redis 7 adds the ids of entries deleted meanwhile
        if self._claim_from in (b"0-0", "0-0"):  # went through the whole pending list
            self._next_claim = time.monotonic() + settings.claim_idle_ms / 2000
        if entries:
            log.info("consumer %s claimed %d requests other consumers held unanswered", self.name, len(entries))
        return entries

    def _read(self) -> list[tuple[bytes, dict]]:
        settings = self.settings
        reply = self.redis.xreadgroup(settings.group, self.name, {settings.stream: ">"}, count=settings.batch_size,
                                      block=settings.block_ms)
        return reply[0][1] if reply else []

    def _answer(self, entries: list[tuple[bytes, dict]]) -> None:
        """Check, predict and answer a batch of entries, then acknowledge them."""
        answers: dict[bytes, tuple[str, dict[str, Any]]] = {}
        by_shapes: dict[tuple, list[_Request]] = {}  # requests that stack into one batch
        for entry, fields in entries:
            if not fields or b"id" not in fields:
                log.warning("stream %r: entry %s has no request id (not queued by InputQueue): acknowledged, "
                            "left in the stream", self.settings.stream, entry.decode())
                self.redis.xack(self.settings.stream, self.settings.group, entry)
                continue
            request_id = fields[b"id"].decode()
            try:
                arrays = self.model.signature.check(_one_sample(decode_tensor(fields)))
            except ValueError as error:  # SignatureError, or a tensor that is not a .npy array
                answers[entry] = (request_id, _error(error))
            else:
                by_shapes.setdefault(tuple(array.shape for array in arrays), []).append((entry, request_id, arrays))
        for requests in by_shapes.values():
            answers.update(self._predict(requests))
        self._send(answers)

    def _predict(self, requests: list[_Request]) -> dict[bytes, tuple[str, dict[str, Any]]]:
        """Answers to requests of the same shapes, predicted together (one by one if that fails)."""
        names = self.model.signature.input_names
        inputs = {name: np.concatenate(parts) for name, parts in zip(names, zip(*(r[2] for r in requests)))}
        try:
            outputs = self.model.predict(inputs)
        except Exception as error:  # the model raised on some input: answer the others, and that one with the error
            if len(requests) > 1:
                return {entry: answer for request in requests for entry, answer in self._predict([request]).items()}
            entry, request_id, _ = requests[0]
            return {entry: (request_id, _error(error))}
        return {entry: (request_id, {"status": "done", **encode_tensor(_row(outputs, index))})
                for index, (entry, request_id, _) in enumerate(requests)}

    def _send(self, answers: dict[bytes, tuple[str, dict[str, Any]]]) -> None:
        """Write the answers, count them, and acknowledge and delete their entries, in one step."""
        if not answers:
            return
        settings = self.settings
        keys = [settings.stream, settings.answered_key]
        args: list[Any] = [settings.group, self.name, settings.result_ttl_s]
        for entry, (request_id, fields) in answers.items():
            keys.append(result_key(settings.stream, request_id))
            args += [entry, len(fields)] + [part for item in fields.items() for part in item]
        self._write(keys=keys, args=args)


def _one_sample(value: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
    """A request's sample as a batch of one row."""
    if isinstance(value, dict):
        return {name: array[np.newaxis] for name, array in value.items()}
    return value[np.newaxis]


def _row(outputs: np.ndarray | dict[str, np.ndarray], index: int) -> np.ndarray | dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        return {name: output[index] for name, output in outputs.items()}
    return outputs[index]


def _error(error: Exception) -> dict[str, str]:
    message = str(error) if isinstance(error, SignatureError) else f"{type(error).__name__}: {error}"
    return {"status": "error", "error": message}
