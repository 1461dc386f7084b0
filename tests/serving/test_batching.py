"""DynamicBatcher on its own, in an event loop, in front of a real InferenceModel: which requests
share a model call, that each gets exactly its own rows back, and how it refuses and stops."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from workbench.serving import InferenceModel, Signature, TensorSpec
from workbench.serving.batching import DynamicBatcher, QueueFull


class RowSums(torch.nn.Module):
    """Each row's sum and its first value: a request's answer shows which rows it got."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.sum(dim=1), x[:, 0]], dim=1)


class FirstRow(torch.nn.Module):
    """A broken model: one output row whatever the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:1]


def model_of(module: torch.nn.Module, columns: int | None = 3) -> InferenceModel:
    """``module`` serving rows of ``columns`` float32 values (None: any number of them)."""
    return InferenceModel(module, Signature((TensorSpec("features", (None, columns), "float32"),), ()))


class CountingCalls:
    """``model.predict``, noting how many rows each call got."""

    def __init__(self, model: InferenceModel):
        self.model, self.rows = model, []

    def __call__(self, inputs):
        self.rows.append(len(inputs["features"]))
        return self.model.predict(inputs)


def requests(*shapes: tuple[int, int], start: float = 0.0) -> list[np.ndarray]:
    """Arrays of consecutive numbers, so that every row of every request is different."""
    arrays = []
    for rows, width in shapes:
        arrays.append(np.arange(start, start + rows * width, dtype=np.float32).reshape(rows, width))
        start += rows * width
    return arrays


async def predict_all(batcher: DynamicBatcher, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Every request sent at once (in this order), and their answers."""
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.predict({"features": array}) for array in arrays))
    finally:
        await batcher.close()


def test_concurrent_requests_share_one_model_call_and_each_gets_its_own_rows_in_order():
    model = model_of(RowSums())
    calls = CountingCalls(model)
    arrays = requests((2, 3), (5, 3), (1, 3), (4, 3))
    answers = asyncio.run(predict_all(DynamicBatcher(calls, max_batch_size=64, max_latency_ms=50), arrays))
    assert calls.rows == [12]
    for array, answer in zip(arrays, answers):
        np.testing.assert_array_equal(answer, model.predict(array))


def test_batches_stop_at_max_batch_size_and_a_larger_request_is_predicted_alone():
    calls = CountingCalls(model_of(RowSums()))
    arrays = requests((3, 3), (3, 3), (10, 3), (2, 3), (4, 3))
    answers = asyncio.run(predict_all(DynamicBatcher(calls, max_batch_size=8, max_latency_ms=50), arrays))
    assert calls.rows == [6, 10, 6]  # in arrival order: 3+3 (a third would pass 8), 10 alone, 2+4
    assert [len(answer) for answer in answers] == [3, 3, 10, 2, 4]
    for array, answer in zip(arrays, answers):
        np.testing.assert_array_equal(answer[:, 1], array[:, 0])


def test_requests_with_different_row_shapes_are_never_merged():
    model = model_of(RowSums(), columns=None)
    calls = CountingCalls(model)
    arrays = requests((2, 3), (2, 5), (1, 5), (1, 3))
    answers = asyncio.run(predict_all(DynamicBatcher(calls, max_batch_size=64, max_latency_ms=50), arrays))
    assert calls.rows == [2, 3, 1]
    for array, answer in zip(arrays, answers):
        np.testing.assert_array_equal(answer, model.predict(array))


def test_a_full_queue_refuses_at_once_and_close_answers_the_queued_without_waiting_for_the_latency():
    async def scenario():
        batcher = DynamicBatcher(model_of(RowSums()).predict, max_batch_size=64, max_latency_ms=600_000, max_queue=2)
        batcher.start()
        waiting = [asyncio.create_task(batcher.predict({"features": array})) for array in requests((1, 3), (1, 3))]
        await asyncio.sleep(0)  # both enqueue
        assert batcher.queued == 2
        with pytest.raises(QueueFull, match="2 requests are already waiting"):
            await batcher.predict({"features": np.zeros((1, 3), np.float32)})
        await asyncio.wait_for(batcher.close(), timeout=30)  # far less than the 600 s latency
        return [task.result() for task in waiting]

    assert [answer.shape for answer in asyncio.run(scenario())] == [(1, 2), (1, 2)]


def test_a_model_error_reaches_every_request_of_its_batch():
    arrays = requests((2, 3), (3, 3))
    batcher = DynamicBatcher(model_of(FirstRow()).predict, max_batch_size=64, max_latency_ms=50)
    with pytest.raises(ValueError, match="the model returned 1 rows of 'output' for a batch of 5 rows"):
        asyncio.run(predict_all(batcher, arrays))


@pytest.mark.parametrize("option, value", [("max_batch_size", 0), ("max_queue", -1), ("concurrency", 1.5),
                                           ("max_latency_ms", -1), ("max_latency_ms", float("nan"))])
def test_bad_options_are_named(option, value):
    with pytest.raises(ValueError, match=option):
        DynamicBatcher(model_of(RowSums()).predict, **{option: value})
