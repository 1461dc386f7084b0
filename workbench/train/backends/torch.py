"""PyTorch backend: a model replica whose parameters live in one flat float32 buffer.

Every trainable parameter is a view into ``flat_params`` and every gradient a view into
``flat_grad`` (as DDP's ``gradient_as_bucket_view``): backward writes gradients straight into
the buffer the parameter server reads, and new parameters from the server land directly in
the model, with no packing or unpacking copies.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

from workbench.train.backends import check_not_other_framework, class_indices
from workbench.train.checkpoint import UntrustedCodeError, read_code, reading

#: The config of a built-in model, saved next to its weights.
BUILTIN_MODEL_FILE = "builtin_model.json"

__all__ = ["TorchBackend", "TorchReplica", "LOSSES", "to_tensor"]

#: Loss names accepted by ``Estimator.from_torch(loss=...)``.
LOSSES = {
    "cross_entropy": "CrossEntropyLoss",
    "nll": "NLLLoss",
    "mse": "MSELoss",
    "l1": "L1Loss",
    "mae": "L1Loss",
    "huber": "HuberLoss",
    "smooth_l1": "SmoothL1Loss",
    "bce": "BCELoss",
    "bce_with_logits": "BCEWithLogitsLoss",
}
_CLASS_TARGETS = ("CrossEntropyLoss", "NLLLoss")


class TorchBackend:
    """What a worker needs to rebuild the model and its loss: picklable, built on the driver.

    Args:
        model: an ``nn.Module`` or a zero-argument function returning one.
        loss: a name from :data:`LOSSES`, a torch loss module (``reduction="mean"``), or a
            function ``loss(output, target) -> scalar tensor`` averaging over the batch.
    """

    name = "torch"

    def __init__(self, model: Any, loss: Any):
        import torch

        if not (isinstance(model, torch.nn.Module) or callable(model)):
            raise TypeError(f"model must be a torch.nn.Module or a function returning one, not {type(model).__name__}")
        loss = _check_loss(loss)
        self.model_bytes = cloudpickle.dumps(model)
        self.loss_bytes = cloudpickle.dumps(loss)
        self.loss_name = _loss_class_name(loss)
        self.loss_config = loss if isinstance(loss, str) else None  # a name is saved as text, an object pickled

    @property
    def logits(self) -> bool:
        """Whether a single output is a logit (for the accuracy threshold)."""
        return self.loss_name == "BCEWithLogitsLoss"

    def build(self, threads: int | None = None) -> TorchReplica:
        """A fresh replica (a new model instance, or a copy of the given module)."""
        import torch

        if threads:
            torch.set_num_threads(threads)
        return self.wrap(_instantiate(cloudpickle.loads(self.model_bytes)))

    def wrap(self, module) -> TorchReplica:
        """A replica around an existing module (its parameters move into flat buffers)."""
        return TorchReplica(module, cloudpickle.loads(self.loss_bytes))

    def save(self, module, directory: Path) -> None:
        """The weights as a state dict; the definition (creator or module) cloudpickled.

        A built-in model (``workbench.models``) also gets its config as JSON, from which
        :meth:`load_model` rebuilds it without unpickling anything.
        """
        import torch

        from workbench.models.base import builtin_spec

        (directory / "model.pkl").write_bytes(self.model_bytes)
        spec = builtin_spec(module)
        if spec is not None:
            (directory / BUILTIN_MODEL_FILE).write_text(json.dumps(spec, indent=2))
        torch.save({k: v.detach().clone() for k, v in module.state_dict().items()}, directory / "weights.pt")

    @staticmethod
    def load_model(directory: Path, model: Any, trust_code: bool) -> tuple[Any, Any]:
        """(definition, module with the saved weights), from :meth:`save`.

        ``model`` (a module, which is used as is, or a creator) replaces the pickled definition,
        which is read only with ``trust_code``; a built-in model is rebuilt from its saved
        config instead (no code is read from the directory). The weights are read with
        ``torch.load(weights_only=True)``, whatever ``trust_code`` says.
        """
        import torch

        if model is None and (directory / BUILTIN_MODEL_FILE).exists() and not trust_code:
            model = _builtin_model(directory / BUILTIN_MODEL_FILE)
        if model is None:
            model = read_code(directory / "model.pkl", "model", trust_code)
        module = _instantiate(model)
        weights = directory / "weights.pt"
        with reading(weights):
            try:
                state = torch.load(weights, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as error:
                raise UntrustedCodeError(
                    f"{weights} holds objects other than tensors and was refused: reading them could run code "
                    "from the file, so Workbench reads weights only as tensors (trust_code does not change this)"
                ) from error
            module.load_state_dict(state)
        return model, module


class TorchReplica:
    """One model instance with flat parameter and gradient buffers."""

    def __init__(self, module, loss: Any):
        import torch

        self.module = module
        self.loss = getattr(torch.nn, LOSSES[loss])() if isinstance(loss, str) else loss
        self.class_targets = _loss_class_name(loss) in _CLASS_TARGETS
        self.parameters = [p for p in module.parameters() if p.requires_grad]
        if not self.parameters:
            raise ValueError("the model has no trainable parameters")
        self.size = sum(p.numel() for p in self.parameters)
        flat = torch.zeros(self.size, dtype=torch.float32)
        grad = torch.zeros(self.size, dtype=torch.float32)
        offset = 0
        with torch.no_grad():
            for p in self.parameters:
                if p.dtype != torch.float32:
                    raise TypeError(f"parameters must be float32, found {p.dtype}")
                count = p.numel()
                flat[offset : offset + count].copy_(p.reshape(-1))
                p.data = flat[offset : offset + count].view_as(p)
                p.grad = grad[offset : offset + count].view_as(p)
                offset += count
        self._flat, self._grad = flat, grad
        self.flat_params = flat.numpy()
        self.flat_grad = grad.numpy()
        self.buffers = [b for b in module.buffers() if b.is_floating_point()]
        self._pending_per_slice: list[int] = []  # parameters per watched slice (watch_gradients)
        self._waiting: list[int] = []

    # -- training ----------------------------------------------------------------------------

    def watch_gradients(self, bounds: list[tuple[int, int]], ready) -> None:
        """Call ``ready(index)`` during backward once every gradient in ``bounds[index]`` is final.

        Backward runs from the last layer to the first, so the last slices are ready first and
        can travel while the first layers are still differentiated.
        """
        self._pending_per_slice = [0] * len(bounds)
        offset = 0
        for p in self.parameters:
            count = p.numel()
            touched = [i for i, (lo, hi) in enumerate(bounds) if lo < offset + count and hi > offset]
            for index in touched:
                self._pending_per_slice[index] += 1
            p.register_post_accumulate_grad_hook(lambda _, touched=touched: self._accumulated(touched))
            offset += count
        self._ready = ready

    def _accumulated(self, touched: list[int]) -> None:
        for index in touched:
            self._waiting[index] -= 1
            if self._waiting[index] == 0:
                self._ready(index)

    def train_step(self, features: np.ndarray, labels: np.ndarray, weight: float) -> tuple[float, np.ndarray]:
        """Forward and backward on one batch; the gradient (times ``weight``) is in ``flat_grad``.

        Returns the batch's mean loss and the model output (for metrics).
        """
        import torch

        self.module.train()
        self._grad.zero_()
        self._waiting = list(self._pending_per_slice)
        output = self.module(to_tensor(features))
        loss = self.loss(output, self._target(labels, output))
        (loss * weight).backward()
        return float(loss.detach()), output.detach().numpy()

    def zero_grad(self) -> None:
        self._grad.zero_()

    def params_changed(self) -> None:
        """Nothing to do: the parameters are views into ``flat_params``."""

    # -- inference ---------------------------------------------------------------------------

    def predict(self, features: np.ndarray) -> np.ndarray:
        import torch

        self.module.eval()
        with torch.no_grad():
            return self.module(to_tensor(features)).numpy()

    def loss_value(self, output: np.ndarray, labels: np.ndarray) -> float:
        import torch

        with torch.no_grad():
            prediction = torch.from_numpy(output)
            return float(self.loss(prediction, self._target(labels, prediction)))

    # -- state -------------------------------------------------------------------------------

    def load_params(self, params: np.ndarray) -> None:
        np.copyto(self.flat_params, params)

    def get_buffers(self) -> np.ndarray:
        if not self.buffers:
            return np.empty(0, np.float32)
        return np.concatenate([b.detach().reshape(-1).numpy().astype(np.float32) for b in self.buffers])

    def set_buffers(self, values: np.ndarray) -> None:
        import torch

        offset = 0
        with torch.no_grad():
            for b in self.buffers:
                count = b.numel()
                b.copy_(torch.from_numpy(values[offset : offset + count]).view_as(b))
                offset += count

    def _target(self, labels: np.ndarray, output):
        import torch

        if self.class_targets:
            return torch.from_numpy(class_indices(labels))
        target = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        if target.shape != output.shape and target.numel() == output.numel():
            target = target.view_as(output)
        return target


def to_tensor(features: np.ndarray):
    """A batch as a tensor: floats as float32, integers as int64 (embedding indices)."""
    import torch

    if features.dtype.kind == "f" and features.dtype != np.float32:
        features = features.astype(np.float32)
    elif features.dtype.kind in "iub":
        features = features.astype(np.int64)
    features = np.ascontiguousarray(features)
    if not features.flags.writeable:  # torch tensors over read-only memory are undefined behaviour
        features = features.copy()
    return torch.from_numpy(features)


def _check_loss(loss: Any) -> Any:
    import torch

    if isinstance(loss, str):
        if loss.lower() not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; known: {sorted(LOSSES)}, or pass a torch loss or a function")
        return loss.lower()
    if isinstance(loss, torch.nn.Module):
        reduction = getattr(loss, "reduction", "mean")
        if reduction != "mean":
            raise ValueError(f"the loss must average over the batch (reduction='mean'), got reduction={reduction!r}")
        return loss
    if callable(loss):
        return loss
    raise TypeError(f"loss must be a name, a torch loss module or a function, not {type(loss).__name__}")


def _instantiate(model: Any):
    """``model`` itself if it is a module, else the module the creator function returns."""
    import torch

    if isinstance(model, torch.nn.Module):
        return model
    check_not_other_framework(model, "PyTorch", "a torch.nn.Module")
    module = model()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"the model function returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _loss_class_name(loss: Any) -> str:
    return LOSSES[loss] if isinstance(loss, str) else type(loss).__name__


def _builtin_model(file: Path) -> Any:
    """The built-in model whose class and config ``file`` names (a fresh instance, initial weights)."""
    from workbench.models.base import model_from_spec

    with reading(file):
        spec = json.loads(file.read_text())
    return model_from_spec(spec, source=str(file))
