"""How each backend runs a batch: PyTorch modules, Keras models and ONNX Runtime sessions.

A runner maps the model's input arrays (in signature order, already checked) to its output
arrays. Each backend's inference call may be made from several threads at once (a torch module
in inference mode, a Keras model's traced call, an ONNX Runtime session), so one runner serves
all of an :class:`~workbench.serving.InferenceModel`'s executors. Runners pickle as their
model, so they travel to Dask workers; ``to_onnx`` exports the model for ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from workbench.serving.signature import Signature, TensorSpec

__all__ = ["TorchRunner", "KerasRunner", "OnnxRunner", "runner_for", "export_onnx", "default_keras_signature"]

#: the ``metadata_props`` key under which Workbench stores a signature in an ONNX file
SIGNATURE_METADATA = "workbench.signature"


class TorchRunner:
    """A ``torch.nn.Module`` in eval mode, called under ``torch.inference_mode``."""

    backend = "torch"

    def __init__(self, module: Any):
        self.model = module.eval()

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        from workbench.train.backends.torch import to_tensor

        with torch.inference_mode():
            outputs = self.model(*(to_tensor(array) for array in arrays))
        return [output.numpy() for output in _as_list(outputs)]

    def to_onnx(self, signature: Signature, path: Path) -> None:
        """Export with a dynamic batch dimension: torch.export (dynamo) for ordinary modules; a
        TorchScript model (which torch.export cannot trace) through the TorchScript exporter."""
        import torch

        from workbench.nets.torchscript import Scripted
        from workbench.train.backends.torch import to_tensor

        examples = tuple(to_tensor(_example(spec)) for spec in signature.inputs)
        names = {"input_names": signature.input_names,
                 "output_names": [spec.name for spec in signature.outputs] or None}
        with _quiet_exporter():
            if isinstance(self.model, Scripted):
                batch_axes = {name: {0: "batch"} for name in signature.input_names + (names["output_names"] or [])}
                torch.onnx.export(self.model.script, examples, str(path), dynamo=False, dynamic_axes=batch_axes,
                                  **names)
            else:
                batch = torch.export.Dim("batch", min=1)
                torch.onnx.export(self.model, examples, str(path), dynamo=True, verbose=False,
                                  dynamic_shapes=tuple({0: batch} for _ in examples), **names)

    def __reduce__(self):
        return TorchRunner, (self.model,)


class KerasRunner:
    """A Keras model called in a ``tf.function`` traced once for any batch size."""

    backend = "keras"

    def __init__(self, model: Any, signature: Signature):
        import tensorflow as tf

        self.model = model
        self.signature = signature
        specs = [tf.TensorSpec((None, *spec.shape[1:]), _keras_dtype(spec.dtype)) for spec in signature.inputs]
        single = len(specs) == 1
        self._call = tf.function(lambda *xs: model(xs[0] if single else list(xs), training=False),
                                 input_signature=specs)

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        inputs = [array.astype(_keras_dtype(array.dtype.name), copy=False) for array in arrays]
        return [np.asarray(output) for output in _as_list(self._call(*inputs))]

    def to_onnx(self, signature: Signature, path: Path) -> None:
        """Export with Keras' own ONNX export (tf2onnx under the TensorFlow backend)."""
        self.model(*(_example(spec).astype(_keras_dtype(spec.dtype)) for spec in signature.inputs))  # built
        self.model.export(str(path), format="onnx", verbose=False)

    def __reduce__(self):
        return KerasRunner, (self.model, self.signature)


class OnnxRunner:
    """An ONNX Runtime CPU session; inputs are cast to the dtypes the graph declares."""

    backend = "onnxruntime"

    def __init__(self, model_bytes: bytes):
        import onnxruntime

        self.model_bytes = model_bytes
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: the graph optimizer's notes are not the user's business
        self.session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self._inputs = [(node.name, _ONNX_DTYPES.get(node.type)) for node in self.session.get_inputs()]

    def __call__(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        feed = {name: array if dtype is None else array.astype(dtype, copy=False)
                for (name, dtype), array in zip(self._inputs, arrays)}
        return self.session.run(None, feed)

    def signature(self) -> Signature:
        """The signature Workbench stored in the file, else the graph's own inputs and outputs."""
        import onnx

        model = onnx.load_from_string(self.model_bytes)
        stored = {p.key: p.value for p in model.metadata_props}.get(SIGNATURE_METADATA)
        if stored is not None:
            return Signature.from_dict(json.loads(stored))
        return Signature(tuple(_onnx_spec(node) for node in self.session.get_inputs()),
                         tuple(_onnx_spec(node) for node in self.session.get_outputs()))

    def to_onnx(self, signature: Signature, path: Path) -> None:
        Path(path).write_bytes(self.model_bytes)

    def __reduce__(self):
        return OnnxRunner, (self.model_bytes,)


def runner_for(model: Any, signature: Signature | None) -> Any:
    """The runner of an in-memory model: a torch module, a Keras model, or ONNX bytes / ``onnx.ModelProto``."""
    if isinstance(model, (bytes, bytearray)):
        return OnnxRunner(bytes(model))
    if type(model).__module__.startswith("onnx"):
        return OnnxRunner(model.SerializeToString())
    if _is_torch_module(model):
        return TorchRunner(model)
    if _is_keras_model(model):
        return KerasRunner(model, signature or default_keras_signature(model))
    raise TypeError(
        f"cannot serve a {type(model).__name__}: expected a torch.nn.Module, a keras.Model or an ONNX model"
    )


def export_onnx(runner: Any, signature: Signature) -> bytes:
    """The runner's model as ONNX bytes carrying ``signature`` in its metadata."""
    import onnx

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.onnx"
        runner.to_onnx(signature, path)
        model = onnx.load(str(path))  # the torch exporter may keep weights in a side file: load joins them
    _set_signature(model, signature)
    return model.SerializeToString()


def _set_signature(model: Any, signature: Signature) -> None:
    for index, prop in enumerate(model.metadata_props):
        if prop.key == SIGNATURE_METADATA:
            del model.metadata_props[index]
            break
    entry = model.metadata_props.add()
    entry.key, entry.value = SIGNATURE_METADATA, json.dumps(signature.to_dict())


def default_keras_signature(model: Any) -> Signature:
    """A Keras model's signature from its symbolic inputs and outputs (one input is called "features")."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    names = ["features"] if len(inputs) == 1 else [tensor.name for tensor in inputs]
    output_names = ["prediction"] if len(outputs) == 1 else [tensor.name for tensor in outputs]
    return Signature(
        tuple(TensorSpec(name, tuple(tensor.shape), np.dtype(tensor.dtype).name) for name, tensor in zip(names, inputs)),
        tuple(TensorSpec(name, tuple(tensor.shape), np.dtype(tensor.dtype).name)
              for name, tensor in zip(output_names, outputs)),
    )


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the torch exporter's notes (optional torchvision ops, deprecations inside torch)."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module="torch.onnx")
            yield
    finally:
        registration.setLevel(level)


def _as_list(outputs: Any) -> list[Any]:
    if isinstance(outputs, dict):
        return list(outputs.values())
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _example(spec: TensorSpec) -> np.ndarray:
    """Two rows of zeros shaped like ``spec`` (unknown inner sizes: 1), to trace or export with."""
    return np.zeros((2, *(1 if n is None else n for n in spec.shape[1:])), dtype=spec.dtype)


def _keras_dtype(name: str) -> str:
    """What a Keras model is fed: floats as float32, integers as int64 (as in training)."""
    kind = np.dtype(name).kind
    return "float32" if kind == "f" else "int64" if kind in "iub" else name


_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
                "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(float16)": np.float16,
                "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def _onnx_spec(node: Any) -> TensorSpec:
    dtype = _ONNX_DTYPES.get(node.type)
    if dtype is None:
        raise ValueError(f"ONNX input/output {node.name!r} has type {node.type}, which Workbench does not serve")
    shape = tuple(n if isinstance(n, int) else None for n in node.shape)
    return TensorSpec(node.name, shape, np.dtype(dtype).name)


def _is_torch_module(model: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _is_keras_model(model: Any) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.Model)
