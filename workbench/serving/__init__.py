"""Putting trained models to work: thread-safe inference, ONNX acceleration, HTTP and queue serving.

- :class:`InferenceModel`: a Workbench saved model, TorchScript, ``.keras`` or ONNX file behind
  one thread-safe ``predict`` that checks every batch against the model's :class:`Signature`;
  ``optimize`` exports it to ONNX (optionally int8-quantized) and refuses a version that loses
  accuracy; ``predict_dask`` maps it over a Dask collection on the workers.
- ``workbench serve MODEL`` (:mod:`workbench.serving.server`): HTTP ``/predict`` with dynamic
  batching, ``/health``, ``/signature``, Prometheus ``/metrics``.
- :func:`serve_queue`, :class:`InputQueue`, :class:`OutputQueue`: Cluster Serving on Redis
  streams, consumers on the Dask workers (``workbench serve MODEL --queue redis://...``).

The names below load on first use, so ``import workbench`` stays cheap.
"""

from workbench.lazy import lazy_attributes

_HOMES = {
    "InferenceModel": "workbench.serving.model",
    "OptimizationReport": "workbench.serving.optimize",
    "AccuracyLossError": "workbench.serving.optimize",
    "Signature": "workbench.serving.signature",
    "TensorSpec": "workbench.serving.signature",
    "SignatureError": "workbench.serving.signature",
    "serve_queue": "workbench.serving.queue",
    "InputQueue": "workbench.serving.queue",
    "OutputQueue": "workbench.serving.queue",
    "QueueServer": "workbench.serving.queue",
    "QueueStatus": "workbench.serving.queue",
    "RequestError": "workbench.serving.queue",
}
__all__ = list(_HOMES)

__getattr__ = lazy_attributes(__name__, _HOMES)
