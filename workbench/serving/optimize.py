"""Accelerated inference: a model exported to ONNX Runtime, optionally int8-quantized, and checked.

An optimized model is only useful if it still answers like the original, so ``optimize``
always measures both on a validation sample the caller gives: the metric (accuracy by default,
against labels when given, else against the original model's own answers), the largest output
difference and the speed-up. A drop of the metric beyond ``tolerance`` raises
:class:`AccuracyLossError` with that report instead of returning the model.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.serving.runners import export_onnx

__all__ = ["optimize", "OptimizationReport", "AccuracyLossError", "QUANTIZE_MODES"]

QUANTIZE_MODES = (None, "dynamic-int8")


@dataclass(frozen=True)
class OptimizationReport:
    """What optimizing changed, measured on the validation sample."""

    backend: str
    quantize: str | None
    metric: str
    before: float             # the metric of the original model
    after: float              # the metric of the optimized model
    change: float             # after - before
    max_abs_difference: float  # largest difference between the two models' outputs
    speedup: float            # original's time / optimized model's time on the sample (median ratio)
    rows: int                 # rows in the validation sample

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AccuracyLossError(ValueError):
    """The optimized model lost more than the tolerance; ``report`` has the figures."""

    def __init__(self, report: OptimizationReport, tolerance: float):
        self.report = report
        super().__init__(
            f"optimizing ({report.backend}, quantize={report.quantize}) changes {report.metric} from "
            f"{report.before:.4f} to {report.after:.4f} on {report.rows} validation rows, more than the tolerance "
            f"{tolerance}; the model was not optimized (raise tolerance= to accept it)"
        )


def optimize(model: Any, validation: Any, backend: str = "onnxruntime", quantize: str | None = None,
             tolerance: float = 0.01, metric: str | Callable = "accuracy",
             path: str | os.PathLike | None = None) -> Any:
    """``model`` (an InferenceModel) as an ONNX Runtime InferenceModel with ``optimization_report_``."""
    from workbench.serving.model import InferenceModel

    if backend != "onnxruntime":
        raise ValueError(f"optimize supports backend='onnxruntime', got {backend!r}")
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    features, labels = _split_validation(validation)
    name, score = _metric(metric, labels)
    onnx_bytes = export_onnx(model._runner, model.signature)
    if quantize == "dynamic-int8":
        onnx_bytes = _quantize_dynamic_int8(onnx_bytes)
    optimized = InferenceModel(onnx_bytes, signature=model.signature, concurrency=model.concurrency)

    original_output, optimized_output, speedup = _outputs_and_speedup(model, optimized, features)
    reference = labels if labels is not None else original_output
    before, after = score(reference, original_output), score(reference, optimized_output)
    report = OptimizationReport(
        backend="onnxruntime", quantize=quantize, metric=name, before=float(before), after=float(after),
        change=float(after - before),
        max_abs_difference=float(np.max(np.abs(optimized_output - original_output), initial=0.0)),
        speedup=speedup, rows=len(features),
    )
    if before - after > tolerance:
        raise AccuracyLossError(report, tolerance)
    optimized.optimization_report_ = report
    if path is not None:
        Path(path).write_bytes(onnx_bytes)
    return optimized


def _split_validation(validation: Any) -> tuple[Any, np.ndarray | None]:
    if isinstance(validation, tuple):
        if len(validation) != 2:
            raise ValueError("validation must be X or (X, y)")
        features, labels = validation
        labels = np.asarray(labels)
        if len(labels) != len(np.asarray(features) if not isinstance(features, dict) else next(iter(features.values()))):
            raise ValueError("validation X and y have different numbers of rows")
        return features, labels
    return validation, None


def _metric(metric: str | Callable, labels: np.ndarray | None) -> tuple[str, Callable]:
    """The metric's name and ``score(reference, output)``; reference is labels, or the original's output."""
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    if metric != "accuracy":
        raise ValueError(f"metric must be 'accuracy' or a function score(y, output), got {metric!r}")
    name = "accuracy" if labels is not None else "agreement with the original model"
    return name, _accuracy


def _accuracy(reference: np.ndarray, output: np.ndarray) -> float:
    """Share of rows whose predicted class (argmax, or > 0.5 for one column) matches ``reference``:
    class labels, or another model's outputs (same shape, floats)."""
    reference = np.asarray(reference)
    if reference.shape == output.shape and reference.dtype.kind == "f":
        expected = _classes(reference)
    else:
        expected = reference.reshape(len(reference))
    predicted = _classes(output)
    return float(np.mean(predicted == expected)) if len(predicted) else float("nan")


def _classes(output: np.ndarray) -> np.ndarray:
    output = output.reshape(len(output), -1)
    if output.shape[1] == 1:
        return (output[:, 0] > 0.5).astype(np.int64)
    return output.argmax(axis=1)


def _outputs_and_speedup(original: Any, optimized: Any, features: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """Both models' outputs on ``features`` and the median ratio of their times (original / optimized):
    two warm-up calls each, then alternating timed calls (3 to 15 rounds, about a second at most)."""
    outputs = []
    for model in (original, optimized):
        output = model.predict(features)
        if isinstance(output, dict):
            raise ValueError(f"optimize checks one-output models; this one has outputs {list(output)}")
        model.predict(features)
        outputs.append(output)
    ratios, started = [], time.perf_counter()
    while len(ratios) < 3 or (len(ratios) < 15 and time.perf_counter() - started < 1.0):
        times = []
        for model in (original, optimized):
            begin = time.perf_counter()
            model.predict(features)
            times.append(time.perf_counter() - begin)
        ratios.append(times[0] / max(times[1], 1e-9))
    return outputs[0], outputs[1], statistics.median(ratios)


def _quantize_dynamic_int8(onnx_bytes: bytes) -> bytes:
    """Int8 weights, activations quantized on the fly (onnxruntime's dynamic quantization)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load_from_string(onnx_bytes)
    del model.graph.value_info[:]  # exporters' intermediate shapes can confuse the quantizer's shape inference
    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "model.onnx", Path(scratch) / "model-int8.onnx"
        onnx.save(model, str(source))
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        quantized = onnx.load(str(target))
    props = {p.key: p.value for p in model.metadata_props}  # the signature stays with the model
    for key, value in props.items():
        if key not in {p.key for p in quantized.metadata_props}:
            entry = quantized.metadata_props.add()
            entry.key, entry.value = key, value
    return quantized.SerializeToString()

