"""InferenceModel: one thread-safe ``predict`` in front of a trained model, whatever its format.

Like Analytics Zoo's ``InferenceModel``: load a model once, then call ``predict`` from as many
threads as you like; at most ``concurrency`` batches run at a time (the rest wait their turn).
Every batch is checked against the model's :class:`~workbench.serving.Signature` first, so a
wrong request gets a :class:`~workbench.serving.SignatureError` naming the input.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from workbench.serving.runners import OnnxRunner, TorchRunner, export_onnx, runner_for
from workbench.serving.signature import Signature, SignatureError

__all__ = ["InferenceModel", "BACKENDS"]

BACKENDS = ("auto", "torch", "keras", "onnxruntime")


class InferenceModel:
    """A model ready for inference: ``predict(batch)`` from any thread, checked against ``signature``.

    Args:
        model: a ``torch.nn.Module``, a ``keras.Model``, or an ONNX model (bytes or ``onnx.ModelProto``).
        signature: the inputs and outputs (required for torch modules; Keras and ONNX models
            carry theirs). :meth:`load` reads it from the saved model.
        backend: "auto" (the model's own framework), its framework's name, or "onnxruntime"
            (a torch or Keras model is exported to ONNX first).
        concurrency: how many batches may run at the same time.
    """

    def __init__(self, model: Any, signature: Signature | None = None, backend: str = "auto", concurrency: int = 1):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
        runner = runner_for(model, signature)
        if signature is None:
            signature = _own_signature(runner)
        if backend not in ("auto", runner.backend):
            if backend != "onnxruntime":
                raise ValueError(f"a {runner.backend} model runs with backend {runner.backend!r} or 'onnxruntime', "
                                 f"not {backend!r}")
            runner = OnnxRunner(export_onnx(runner, signature))
        self.signature = signature
        self.backend = runner.backend
        self.concurrency = concurrency
        self._runner = runner
        self._slots = threading.BoundedSemaphore(concurrency)

    @classmethod
    def load(cls, path: str | os.PathLike, backend: str = "auto", concurrency: int = 1,
             signature: Signature | None = None, model: Any = None, trust_code: bool = False) -> InferenceModel:
        """The model saved at ``path``: a directory written by ``Estimator.save``, a TorchScript
        file, a Keras ``.keras``/``.h5`` file, or an ``.onnx`` file.

        ``model`` and ``trust_code`` apply to a saved Workbench directory as for
        ``Estimator.load`` (no code stored in it runs unless ``trust_code=True``). ``signature``
        is needed for a TorchScript file (it records none) and replaces any recorded one.
        """
        path = Path(path)
        if path.suffix == ".onnx" and path.is_file():
            framework_model = path.read_bytes()
        else:
            from workbench.nets.files import identify, load_model

            if identify(path) == "torchscript":  # kept whole: it pickles, and exports to ONNX as TorchScript
                import torch

                from workbench.nets.torchscript import Scripted

                framework_model = Scripted(torch.jit.load(path, map_location="cpu"))
            else:
                framework_model = load_model(path, model=model, trust_code=trust_code)
            if signature is None and path.is_dir():
                signature = _saved_signature(path)
        try:
            return cls(framework_model, signature=signature, backend=backend, concurrency=concurrency)
        except SignatureError as error:
            raise SignatureError(f"{path}: {error}") from error
        except (ValueError, TypeError) as error:
            raise ValueError(f"cannot serve {path}: {error}") from error

    def predict(self, batch: Any) -> np.ndarray | dict[str, np.ndarray]:
        """The model's output for ``batch``: an array (one input), a list of arrays in input
        order, or arrays by input name. One output comes back as an array, several as a dict
        by output name. Safe to call from several threads."""
        arrays = self.signature.check(batch)
        with self._slots:
            outputs = self._runner(arrays)
        if len(outputs) == 1:
            return outputs[0]
        names = [spec.name for spec in self.signature.outputs]
        if len(names) != len(outputs):
            names = [f"output_{i}" for i in range(len(outputs))]
        return dict(zip(names, outputs))

    def predict_dask(self, data: Any, batch_size: int = 1024) -> Any:
        """``predict`` over every block of a Dask array, or every partition of a Dask DataFrame
        (its ``signature.columns``), on the workers; the model is loaded once per worker process.

        Returns a lazy Dask array, or a Dask DataFrame with the input's index and columns
        ``prediction`` (``prediction_0``, ``prediction_1``, ... for several values per row).
        """
        from workbench.serving.batch import predict_collection

        return predict_collection(self, data, batch_size)

    def optimize(self, validation: Any, backend: str = "onnxruntime", quantize: str | None = None,
                 tolerance: float = 0.01, metric: Any = "accuracy", path: str | os.PathLike | None = None
                 ) -> InferenceModel:
        """This model exported to ONNX Runtime (``quantize="dynamic-int8"``: int8 weights),
        checked on ``validation`` (``X`` or ``(X, y)``); see :func:`workbench.serving.optimize.optimize`.

        The returned model's ``optimization_report_`` says what changed; a change of the
        metric beyond ``tolerance`` raises :class:`~workbench.serving.AccuracyLossError`
        instead. ``path`` also writes the optimized model there as an ``.onnx`` file (with its
        signature) for ``workbench serve``.
        """
        from workbench.serving.optimize import optimize

        return optimize(self, validation, backend=backend, quantize=quantize, tolerance=tolerance, metric=metric,
                        path=path)

    def __repr__(self) -> str:
        inputs = ", ".join(f"{s.name}{tuple(s.shape)} {s.dtype}" for s in self.signature.inputs)
        return f"InferenceModel(backend={self.backend!r}, concurrency={self.concurrency}, inputs=[{inputs}])"

    def __reduce__(self):
        return _rebuild, (self._runner, self.signature, self.concurrency)


def _rebuild(runner: Any, signature: Signature, concurrency: int) -> InferenceModel:
    """An unpickled InferenceModel (on a Dask worker): the runner comes back as it was."""
    model = InferenceModel.__new__(InferenceModel)
    model.signature, model.backend, model.concurrency = signature, runner.backend, concurrency
    model._runner, model._slots = runner, threading.BoundedSemaphore(concurrency)
    return model


def _saved_signature(path: Path) -> Signature | None:
    from workbench.train.checkpoint import read_config, read_signature

    return read_signature(read_config(path))


def _own_signature(runner: Any) -> Signature:
    """The signature a model carries itself (Keras, ONNX); torch modules carry none."""
    if isinstance(runner, OnnxRunner):
        return runner.signature()
    if isinstance(runner, TorchRunner):
        raise SignatureError("no input signature is recorded for this torch model: pass "
                             "signature=Signature.from_example(x) with a batch like the ones it will serve")
    return runner.signature
