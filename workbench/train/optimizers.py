"""Optimizers that update one slice of a flat parameter vector, with numpy only.

A model's parameters are one flat float32 vector cut into contiguous slices; each slice lives
in a parameter-server shard together with its optimizer state. The optimizers here therefore
work element-wise on any slice: :meth:`SliceOptimizer.init_state` makes the state of one
slice, and :meth:`SliceOptimizer.step` updates that slice in place. Updating every slice with
its own state gives, to float32 precision, what ``torch.optim`` gives on the whole tensor, or
with ``style="keras"`` what a Keras 3 optimizer's ``apply_gradients`` gives (not bit for bit:
torch's CPU kernels fuse ``p + alpha * g`` into one rounding, numpy rounds twice, and the
order of operations differs, so elements differ by a few ulps).

The module is read top-down:

* the config machinery shared by schedules and optimizers (``get_config``/``from_config``);
* learning-rate schedules (:class:`Schedule` and its subclasses) and :func:`clip_scale`;
* the optimizers: :class:`SliceOptimizer`, :class:`SGD`, :class:`Adam`, :class:`AdamW`,
  :class:`Adagrad`, :class:`RMSprop`;
* lookups: :func:`get_optimizer`; :func:`from_torch`, which maps a ``torch.optim`` class and
  its keyword arguments to a slice optimizer; :func:`from_keras`, which maps a Keras
  optimizer instance. Torch and Keras are imported only there.

Like scikit-learn estimators, ``__init__`` only validates and stores hyper-parameters; the
config of an object is read back from the attributes named by its ``__init__`` signature.
"""

from __future__ import annotations

import inspect
import math
import numbers
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "Schedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "CosineDecay",
    "LinearWarmup",
    "schedule_from_config",
    "clip_scale",
    "SliceOptimizer",
    "SGD",
    "Adam",
    "AdamW",
    "Adagrad",
    "RMSprop",
    "optimizer_from_config",
    "get_optimizer",
    "from_torch",
    "from_keras",
    "STYLES",
]


# --- Config machinery ---------------------------------------------------------------------


def _check(valid: bool, name: str, value: Any) -> None:
    """Raise the ValueError torch raises for a bad hyper-parameter, naming the parameter."""
    if not valid:
        raise ValueError(f"Invalid {name} value: {value!r}")


class _Configurable(ABC):
    """Hyper-parameters as a JSON-serialisable config, and a registry of classes by name.

    Each family (schedules, optimizers) defines its own ``_registry``; a subclass that sets
    ``name`` registers itself there, so ``Family.from_config`` can dispatch on the name.
    """

    name: ClassVar[str]
    _registry: ClassVar[dict[str, type[_Configurable]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls._registry[cls.name] = cls

    def _hyper_parameters(self) -> dict[str, Any]:
        """The ``__init__`` arguments, read back from the attributes of the same names."""
        return {key: getattr(self, key) for key in inspect.signature(type(self)).parameters}

    def get_config(self) -> dict[str, Any]:
        """The name and every ``__init__`` argument, as JSON-serialisable values."""
        return {"name": self.name} | {k: _to_json(v) for k, v in self._hyper_parameters().items()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        """Rebuild an object from :meth:`get_config`'s output, dispatching on its name."""
        config = dict(config)
        name = config.pop("name", None)
        klass = cls._registry.get(name)
        if klass is None or not issubclass(klass, cls):
            known = sorted(n for n, k in cls._registry.items() if issubclass(k, cls))
            raise ValueError(f"Unknown {cls.__name__} name {name!r}; expected one of {known}")
        return klass(**{key: _from_json(value) for key, value in config.items()})

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self._hyper_parameters().items())
        return f"{type(self).__name__}({arguments})"


def _to_json(value: Any) -> Any:
    """A hyper-parameter as JSON: a nested schedule as its config, a tuple as a list."""
    if isinstance(value, _Configurable):
        return value.get_config()
    if isinstance(value, tuple):
        return list(value)
    return value


def _from_json(value: Any) -> Any:
    """Undo :func:`_to_json`: the only nested configs are schedules; lists were tuples."""
    if isinstance(value, Mapping):
        return schedule_from_config(value)
    if isinstance(value, list):
        return tuple(value)
    return value


# --- Learning-rate schedules --------------------------------------------------------------


class Schedule(_Configurable):
    """A learning rate as a function of the optimizer step and the epoch.

    ``step`` is the 1-based global optimizer step and ``epoch`` the 0-based epoch, so the
    first update uses ``schedule(1, 0)``.
    """

    _registry: ClassVar[dict[str, type[_Configurable]]] = {}

    @abstractmethod
    def __call__(self, step: int, epoch: int) -> float:
        """The learning rate for this step."""


_UNITS = ("epoch", "step")


def _check_per(per: str) -> None:
    if per not in _UNITS:
        raise ValueError(f"Invalid per value: {per!r}; expected one of {_UNITS}")


def _elapsed(per: str, step: int, epoch: int) -> int:
    """Whole units done before this step: the 0-based epoch, or the steps already taken.

    This is torch's ``last_epoch`` for a scheduler stepped once per epoch or per step.
    """
    return epoch if per == "epoch" else step - 1


class Constant(Schedule):
    """The same learning rate at every step."""

    name = "constant"

    def __init__(self, lr: float):
        _check(0.0 <= lr, "lr", lr)
        self.lr = lr

    def __call__(self, step: int, epoch: int) -> float:
        return float(self.lr)


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs (or steps), like ``StepLR``."""

    name = "step_decay"

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1, per: str = "epoch"):
        _check(0.0 <= lr, "lr", lr)
        _check(step_size >= 1, "step_size", step_size)
        _check_per(per)
        self.lr = lr
        self.step_size = step_size
        self.gamma = gamma
        self.per = per

    def __call__(self, step: int, epoch: int) -> float:
        return self.lr * self.gamma ** (_elapsed(self.per, step, epoch) // self.step_size)


class ExponentialDecay(Schedule):
    """Multiply the rate by ``gamma`` every epoch (or step), like ``ExponentialLR``."""

    name = "exponential_decay"

    def __init__(self, lr: float, gamma: float, per: str = "epoch"):
        _check(0.0 <= lr, "lr", lr)
        _check_per(per)
        self.lr = lr
        self.gamma = gamma
        self.per = per

    def __call__(self, step: int, epoch: int) -> float:
        return self.lr * self.gamma ** _elapsed(self.per, step, epoch)


class CosineDecay(Schedule):
    """Half a cosine from ``lr`` to ``min_lr`` over ``total`` steps (or epochs), then ``min_lr``.

    Matches ``CosineAnnealingLR(T_max=total, eta_min=min_lr)`` up to ``total``; torch's rate
    would then rise again, this one stays at ``min_lr``.
    """

    name = "cosine_decay"

    def __init__(self, lr: float, total: int, min_lr: float = 0.0, per: str = "step"):
        _check(0.0 <= lr, "lr", lr)
        _check(total >= 1, "total", total)
        _check(0.0 <= min_lr, "min_lr", min_lr)
        _check_per(per)
        self.lr = lr
        self.total = total
        self.min_lr = min_lr
        self.per = per

    def __call__(self, step: int, epoch: int) -> float:
        progress = min(_elapsed(self.per, step, epoch), self.total) / self.total
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


class LinearWarmup(Schedule):
    """Ramp up linearly to a wrapped schedule: ``step / warmup_steps`` of it until then.

    Large batches and Adam's early steps are unstable at the full rate; the warm-up starts at
    ``schedule(1, epoch) / warmup_steps`` and reaches the wrapped schedule at ``warmup_steps``.
    """

    name = "linear_warmup"

    def __init__(self, schedule: Schedule, warmup_steps: int):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule, got {schedule!r}")
        _check(warmup_steps >= 1, "warmup_steps", warmup_steps)
        self.schedule = schedule
        self.warmup_steps = warmup_steps

    def __call__(self, step: int, epoch: int) -> float:
        return self.schedule(step, epoch) * min(1.0, step / self.warmup_steps)


def schedule_from_config(config: Mapping[str, Any]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.get_config`'s output."""
    return Schedule.from_config(config)


# --- Gradient clipping --------------------------------------------------------------------


def clip_scale(global_sq_norm: float, max_norm: float) -> float:
    """The factor ``torch.nn.utils.clip_grad_norm_`` multiplies every gradient by.

    The parameter server sums the squared gradient norms of all slices into
    ``global_sq_norm`` and scales each slice's gradient by this factor before the step.
    """
    return min(max_norm / (math.sqrt(global_sq_norm) + 1e-6), 1.0)


# --- Optimizers ---------------------------------------------------------------------------

#: The frameworks whose update rules the optimizers reproduce, the ``style`` argument.
STYLES = ("torch", "keras")


class SliceOptimizer(_Configurable):
    """An element-wise optimizer for one slice of a flat float32 parameter vector.

    The state of a slice is a dict of float32 arrays of the slice's size; scalars such as the
    step count are not stored but passed to :meth:`step`. Steps update ``params`` and the
    state in place, using ``grad`` and one scratch array as work space (no temporaries).

    ``style`` picks the framework whose update rule is reproduced: ``"torch"`` (``torch.optim``)
    or ``"keras"`` (``keras.optimizers``, see :func:`from_keras`). They differ in where epsilon
    goes, in how momentum buffers hold the learning rate, and in the weight decay: torch adds
    an L2 penalty to the gradient (decoupled only in :class:`AdamW`), Keras always decays the
    parameters first, ``params -= params * weight_decay * lr``, then takes the step. A
    hyper-parameter that defaults to ``None`` gets the default of the chosen style.

    Args:
        lr: The learning rate, or a :class:`Schedule` of it.
        weight_decay: The weight decay, an L2 penalty or decoupled as the style says.
        style: ``"torch"`` or ``"keras"``.
    """

    _registry: ClassVar[dict[str, type[_Configurable]]] = {}
    #: The defaults that depend on the style: ``{hyper-parameter: {style: default}}``.
    _style_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Whether the torch style decays the parameters directly, as ``torch.optim.AdamW``.
    _decoupled_weight_decay: ClassVar[bool] = False

    def __init__(self, lr: float | Schedule | None, weight_decay: float | None, style: str = "torch"):
        if style not in STYLES:
            raise ValueError(f"Invalid style value: {style!r}; expected one of {STYLES}")
        self.style = style
        lr, weight_decay = self._default("lr", lr), self._default("weight_decay", weight_decay)
        if not isinstance(lr, Schedule):
            _check(0.0 <= lr, "lr", lr)
        _check(0.0 <= weight_decay, "weight_decay", weight_decay)
        self.lr = lr
        self.weight_decay = weight_decay

    def _default(self, name: str, value: Any) -> Any:
        """``value``, or this style's default for the hyper-parameter ``name`` if it is None."""
        if value is None and name in self._style_defaults:
            return self._style_defaults[name][self.style]
        return value

    @property
    def _keras(self) -> bool:
        return self.style == "keras"

    @abstractmethod
    def init_state(self, size: int) -> dict[str, np.ndarray]:
        """The initial state of a slice of ``size`` elements: float32 arrays, maybe none."""

    @abstractmethod
    def step(
        self,
        params: np.ndarray,
        grad: np.ndarray,
        state: dict[str, np.ndarray],
        step: int,
        lr: float,
        scratch: np.ndarray | None = None,
    ) -> None:
        """Update ``params`` and ``state`` in place from ``grad``.

        ``grad`` is used as work space and left overwritten; ``scratch`` is a second work array of
        the same size (allocated when not given). The parameter server passes preallocated ones:
        a fresh 20 MB temporary costs more than the arithmetic it holds (page faults).

        Args:
            params: The slice, a float32 1-D array.
            grad: Its gradient, same shape.
            state: The slice's state from :meth:`init_state`, as the previous step left it.
            step: The 1-based optimizer step (for bias corrections and decays).
            lr: The learning rate for this step, from :meth:`learning_rate`.
            scratch: A float32 work array of the same shape.
        """

    def learning_rate(self, step: int, epoch: int) -> float:
        """The learning rate at a 1-based step and 0-based epoch."""
        return self.lr(step, epoch) if isinstance(self.lr, Schedule) else float(self.lr)

    def _apply_weight_decay(self, params: np.ndarray, grad: np.ndarray, lr: float, scratch: np.ndarray) -> None:
        """Decay ``params`` in place, or add the L2 penalty to ``grad`` in place (torch style).

        Called before the step's update; ``scratch`` is free again afterwards.
        """
        if not self.weight_decay:
            return
        if self._keras:  # keras: variable - variable * wd * lr, rounded as Keras rounds it
            np.multiply(params, self.weight_decay, out=scratch)
            scratch *= lr
            params -= scratch
        elif self._decoupled_weight_decay:
            params *= 1 - lr * self.weight_decay
        else:
            np.multiply(params, self.weight_decay, out=scratch)
            grad += scratch


def _zeros(size: int) -> np.ndarray:
    return np.zeros(size, dtype=np.float32)


def _lerp(average: np.ndarray, x: np.ndarray, weight: float, scratch: np.ndarray) -> None:
    """``average += weight * (x - average)`` in place: torch's ``lerp_``, a moving average."""
    np.subtract(x, average, out=scratch)
    scratch *= weight
    average += scratch


def _decay_add_square(average: np.ndarray, decay: float, x: np.ndarray, scratch: np.ndarray) -> None:
    """``average = decay * average + (1 - decay) * x**2`` in place: a moving mean square."""
    average *= decay
    np.square(x, out=scratch)
    scratch *= 1 - decay
    average += scratch


def _root(x: np.ndarray, eps: float, eps_inside: bool, out: np.ndarray) -> np.ndarray:
    """``sqrt(x) + eps`` (torch), or ``sqrt(x + eps)`` if ``eps_inside`` (Keras), into ``out``."""
    if eps_inside:
        np.add(x, eps, out=out)
        return np.sqrt(out, out=out)
    np.sqrt(x, out=out)
    out += eps
    return out


class SGD(SliceOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Torch style, as ``torch.optim.SGD``: the buffer accumulates gradients, ``b = momentum * b
    + (1 - dampening) * g``, and the step is ``lr * b``; the buffer starts as the first step's
    gradient, not as zeros (it is overwritten at ``step == 1``), so a slice's state must live
    from the optimizer's first step. Keras style, as ``keras.optimizers.SGD``: the buffer is a
    velocity holding the learning rate, ``v = momentum * v - lr * g``, added to the parameters;
    it starts at zero, and there is no dampening. The two agree for a constant rate.

    ``lr`` defaults to 1e-3 (torch) or 1e-2 (keras).
    """

    name = "sgd"
    _style_defaults = {"lr": {"torch": 1e-3, "keras": 1e-2}}

    def __init__(
        self,
        lr: float | Schedule | None = None,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        style: str = "torch",
    ):
        super().__init__(lr, weight_decay, style)
        _check(0.0 <= momentum, "momentum", momentum)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if dampening and self._keras:
            raise ValueError("Invalid dampening value: Keras's SGD has no dampening; it must be 0")
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov

    def init_state(self, size: int) -> dict[str, np.ndarray]:
        return {"momentum_buffer": _zeros(size)} if self.momentum else {}

    def step(self, params, grad, state, step, lr, scratch=None) -> None:
        scratch = np.empty_like(params) if scratch is None else scratch
        self._apply_weight_decay(params, grad, lr, scratch)
        if not self.momentum:
            grad *= lr
            params -= grad
            return
        buffer = state["momentum_buffer"]
        if self._keras:  # v = momentum * v - lr * g; params += v, or += momentum * v - lr * g
            grad *= lr
            buffer *= self.momentum
            buffer -= grad
            if self.nesterov:
                np.multiply(buffer, self.momentum, out=scratch)
                scratch -= grad
                params += scratch
            else:
                params += buffer
            return
        if step == 1:
            np.copyto(buffer, grad)
        else:
            buffer *= self.momentum
            if self.dampening:
                np.multiply(grad, 1 - self.dampening, out=scratch)
                buffer += scratch
            else:
                buffer += grad
        np.multiply(buffer, lr * self.momentum if self.nesterov else lr, out=scratch)
        params -= scratch
        if self.nesterov:  # the step is lr * (grad + momentum * buffer): two terms
            grad *= lr
            params -= grad


class Adam(SliceOptimizer):
    """Adam with bias correction and optional AMSGrad, as ``torch.optim.Adam`` or Keras's.

    Torch style divides the bias-corrected root by adding ``eps``: ``lr / (1 - beta1**t) * m /
    (sqrt(v) / sqrt(1 - beta2**t) + eps)``, and the weight decay is an L2 penalty added to the
    gradient (:class:`AdamW` decouples it). Keras style adds ``eps`` to the uncorrected root:
    ``lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)``.

    ``eps`` defaults to 1e-8 (torch) or 1e-7 (keras).
    """

    name = "adam"
    _style_defaults = {"eps": {"torch": 1e-8, "keras": 1e-7}}

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float | None = None,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        style: str = "torch",
    ):
        super().__init__(lr, weight_decay, style)
        eps = self._default("eps", eps)
        _check(len(betas) == 2 and all(0.0 <= beta < 1.0 for beta in betas), "betas", betas)
        _check(0.0 <= eps, "eps", eps)
        self.betas = tuple(betas)
        self.eps = eps
        self.amsgrad = amsgrad

    def init_state(self, size: int) -> dict[str, np.ndarray]:
        names = ["exp_avg", "exp_avg_sq"]
        if self.amsgrad:
            names.append("max_exp_avg_sq")
        return {name: _zeros(size) for name in names}

    def step(self, params, grad, state, step, lr, scratch=None) -> None:
        scratch = np.empty_like(params) if scratch is None else scratch
        beta1, beta2 = self.betas
        self._apply_weight_decay(params, grad, lr, scratch)
        exp_avg, second_moment = state["exp_avg"], state["exp_avg_sq"]
        _lerp(exp_avg, grad, 1 - beta1, scratch)
        _decay_add_square(second_moment, beta2, grad, scratch)
        if self.amsgrad:
            maximum = state["max_exp_avg_sq"]
            second_moment = np.maximum(maximum, second_moment, out=maximum)
        correction2 = math.sqrt(1 - beta2**step)
        update = np.sqrt(second_moment, out=scratch)
        if not self._keras:  # torch adds eps to the corrected root, Keras to the raw one
            update /= correction2
        update += self.eps
        np.divide(exp_avg, update, out=update)
        update *= lr / (1 - beta1**step) * (correction2 if self._keras else 1.0)
        params -= update


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW`` or ``keras.optimizers.AdamW``.

    The parameters shrink by ``lr * weight_decay`` of themselves before the Adam update instead
    of the penalty entering the moments. In Keras style this is Keras style :class:`Adam`.

    ``eps`` defaults to 1e-8 (torch) or 1e-7 (keras), ``weight_decay`` to 1e-2 (torch) or
    4e-3 (keras).
    """

    name = "adamw"
    _style_defaults = Adam._style_defaults | {"weight_decay": {"torch": 1e-2, "keras": 4e-3}}
    _decoupled_weight_decay = True

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float | None = None,
        weight_decay: float | None = None,
        amsgrad: bool = False,
        style: str = "torch",
    ):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, style)


class Adagrad(SliceOptimizer):
    """Adagrad: steps scaled by the root of summed squared gradients.

    The rate at step ``t`` is ``lr / (1 + (t - 1) * lr_decay)``. The denominator is
    ``sqrt(sum) + eps`` in torch style (``torch.optim.Adagrad``), ``sqrt(sum + eps)`` in Keras
    style (``keras.optimizers.Adagrad``, which has no ``lr_decay``).

    Defaults: ``lr`` 1e-2 (torch) or 1e-3 (keras), ``initial_accumulator_value`` 0 or 0.1,
    ``eps`` 1e-10 or 1e-7.
    """

    name = "adagrad"
    _style_defaults = {
        "lr": {"torch": 1e-2, "keras": 1e-3},
        "initial_accumulator_value": {"torch": 0.0, "keras": 0.1},
        "eps": {"torch": 1e-10, "keras": 1e-7},
    }

    def __init__(
        self,
        lr: float | Schedule | None = None,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float | None = None,
        eps: float | None = None,
        style: str = "torch",
    ):
        super().__init__(lr, weight_decay, style)
        initial_accumulator_value = self._default("initial_accumulator_value", initial_accumulator_value)
        eps = self._default("eps", eps)
        _check(0.0 <= lr_decay, "lr_decay", lr_decay)
        _check(0.0 <= initial_accumulator_value, "initial_accumulator_value", initial_accumulator_value)
        _check(0.0 <= eps, "eps", eps)
        self.lr_decay = lr_decay
        self.initial_accumulator_value = initial_accumulator_value
        self.eps = eps

    def init_state(self, size: int) -> dict[str, np.ndarray]:
        return {"sum": np.full(size, self.initial_accumulator_value, dtype=np.float32)}

    def step(self, params, grad, state, step, lr, scratch=None) -> None:
        scratch = np.empty_like(params) if scratch is None else scratch
        self._apply_weight_decay(params, grad, lr, scratch)
        squares = state["sum"]
        squares += np.square(grad, out=scratch)
        update = _root(squares, self.eps, self._keras, out=scratch)
        np.divide(grad, update, out=update)
        update *= lr / (1 + (step - 1) * self.lr_decay)
        params -= update


class RMSprop(SliceOptimizer):
    """RMSprop: steps scaled by a moving root mean square of the gradients.

    ``centered`` subtracts the squared moving mean of the gradient (an estimate of its
    variance); ``momentum`` accumulates the steps in a buffer. Torch style
    (``torch.optim.RMSprop``) divides by ``sqrt(mean square) + eps`` and accumulates unscaled
    steps, multiplied by ``lr`` when applied; Keras style (``keras.optimizers.RMSprop``, where
    ``alpha`` is ``rho``) divides by ``sqrt(mean square + eps)`` and accumulates ``lr`` times
    the steps.

    Defaults: ``lr`` 1e-2 (torch) or 1e-3 (keras), ``alpha`` 0.99 or 0.9, ``eps`` 1e-8 or 1e-7.
    """

    name = "rmsprop"
    _style_defaults = {
        "lr": {"torch": 1e-2, "keras": 1e-3},
        "alpha": {"torch": 0.99, "keras": 0.9},
        "eps": {"torch": 1e-8, "keras": 1e-7},
    }

    def __init__(
        self,
        lr: float | Schedule | None = None,
        alpha: float | None = None,
        eps: float | None = None,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        style: str = "torch",
    ):
        super().__init__(lr, weight_decay, style)
        alpha, eps = self._default("alpha", alpha), self._default("eps", eps)
        _check(0.0 <= alpha, "alpha", alpha)
        _check(0.0 <= eps, "eps", eps)
        _check(0.0 <= momentum, "momentum", momentum)
        self.alpha = alpha
        self.eps = eps
        self.momentum = momentum
        self.centered = centered

    def init_state(self, size: int) -> dict[str, np.ndarray]:
        names = ["square_avg"]
        if self.momentum:
            names.append("momentum_buffer")
        if self.centered:
            names.append("grad_avg")
        return {name: _zeros(size) for name in names}

    def step(self, params, grad, state, step, lr, scratch=None) -> None:
        scratch = np.empty_like(params) if scratch is None else scratch
        self._apply_weight_decay(params, grad, lr, scratch)
        square_avg = state["square_avg"]
        _decay_add_square(square_avg, self.alpha, grad, scratch)
        if self.centered:
            grad_avg = state["grad_avg"]
            _lerp(grad_avg, grad, 1 - self.alpha, scratch)
            variance = np.square(grad_avg, out=scratch)
            np.subtract(square_avg, variance, out=variance)
        else:
            variance = square_avg
        update = _root(variance, self.eps, self._keras, out=scratch)
        np.divide(grad, update, out=update)
        lr_in_buffer = self._keras  # Keras's momentum accumulates lr * step, torch's the step
        if lr_in_buffer or not self.momentum:
            update *= lr
        if self.momentum:
            buffer = state["momentum_buffer"]
            buffer *= self.momentum
            buffer += update
            update = buffer if lr_in_buffer else np.multiply(buffer, lr, out=update)
        params -= update


def optimizer_from_config(config: Mapping[str, Any]) -> SliceOptimizer:
    """Rebuild an optimizer from :meth:`SliceOptimizer.get_config`'s output."""
    return SliceOptimizer.from_config(config)


# --- Lookups ------------------------------------------------------------------------------

#: ``torch.optim`` options that change the math (``maximize``) or need torch's own kernels;
#: they must be left off (``None`` or ``False``).
_TORCH_ONLY_OPTIONS = ("maximize", "foreach", "fused", "capturable", "differentiable")


def get_optimizer(name_or_obj: str | type | SliceOptimizer, **kwargs: Any) -> SliceOptimizer:
    """A slice optimizer from a name, a class, or an instance (returned unchanged).

    Args:
        name_or_obj: An optimizer name such as ``"adam"`` (any case, torch style), a
            :class:`SliceOptimizer` subclass, a ``torch.optim`` class (see
            :func:`from_torch`), a ``keras.optimizers`` instance (see :func:`from_keras`),
            or a :class:`SliceOptimizer`.
        **kwargs: Hyper-parameters for a name or class; none for an instance.
    """
    keras = sys.modules.get("keras")  # a Keras optimizer means that Keras is imported
    is_keras = keras is not None and isinstance(name_or_obj, keras.optimizers.Optimizer)
    if is_keras or isinstance(name_or_obj, SliceOptimizer):
        if kwargs:
            raise ValueError(f"Hyper-parameters {sorted(kwargs)} given with an optimizer instance")
        return from_keras(name_or_obj) if is_keras else name_or_obj
    if isinstance(name_or_obj, str):
        klass = SliceOptimizer._registry.get(name_or_obj.lower())
        if klass is None:
            raise ValueError(
                f"Unknown optimizer {name_or_obj!r}; expected one of {sorted(SliceOptimizer._registry)}"
            )
        return klass(**kwargs)
    if isinstance(name_or_obj, type) and issubclass(name_or_obj, SliceOptimizer):
        return name_or_obj(**kwargs)
    return from_torch(name_or_obj, kwargs)


def from_torch(optimizer_class: type, kwargs: Mapping[str, Any]) -> SliceOptimizer:
    """The slice optimizer doing what ``optimizer_class(params, **kwargs)`` would do.

    Omitted hyper-parameters get torch's defaults. ``Adam`` with
    ``decoupled_weight_decay=True`` becomes :class:`AdamW`.

    Raises:
        ValueError: For a class other than torch's SGD, Adam, AdamW, Adagrad and RMSprop, or
            an option in ``_TORCH_ONLY_OPTIONS`` that is switched on.
    """
    import torch

    classes = {
        torch.optim.SGD: SGD,
        torch.optim.Adam: Adam,
        torch.optim.AdamW: AdamW,
        torch.optim.Adagrad: Adagrad,
        torch.optim.RMSprop: RMSprop,
    }
    if optimizer_class not in classes:
        supported = ", ".join(f"torch.optim.{klass.__name__}" for klass in classes)
        raise ValueError(f"Unsupported optimizer {optimizer_class!r}; supported: {supported}")
    kwargs = dict(kwargs)
    for option in _TORCH_ONLY_OPTIONS:
        value = kwargs.pop(option, None)
        if value:
            raise ValueError(f"The torch option {option}={value!r} is not supported")
    klass = classes[optimizer_class]
    if optimizer_class is torch.optim.Adam and kwargs.pop("decoupled_weight_decay", False):
        klass = AdamW
        kwargs.setdefault("weight_decay", 0.0)  # torch.optim.Adam's default, not AdamW's
    return klass(**kwargs)


#: Keras optimizer options the slices cannot do; each must be off (``None``, ``False``, 0).
_KERAS_UNSUPPORTED_OPTIONS = (
    "clipnorm", "global_clipnorm", "clipvalue", "use_ema", "loss_scale_factor", "gradient_accumulation_steps",
)
#: Keras config entries that are no options of the update (the EMA ones act only with use_ema).
_KERAS_IGNORED_OPTIONS = ("name", "ema_momentum", "ema_overwrite_frequency")


def from_keras(optimizer: Any) -> SliceOptimizer:
    """The Keras-style slice optimizer doing what a Keras 3 optimizer instance does.

    Maps ``keras.optimizers.SGD``, ``Adam``, ``AdamW``, ``Adagrad`` and ``RMSprop`` with their
    hyper-parameters: ``optimizer.apply_gradients`` on a variable and the slice optimizer's
    :meth:`~SliceOptimizer.step` on its slices then agree to float32 precision. Only the
    hyper-parameters are read, not the state (moments, iterations): the slices start at step 1.

    The learning rate is a float, or a ``keras.optimizers.schedules.ExponentialDecay`` or
    ``CosineDecay`` (without warm-up), which become the per-step :class:`ExponentialDecay`,
    :class:`StepDecay` (``staircase=True``) or :class:`CosineDecay` of the same rates.

    Raises:
        ValueError: For another optimizer class; a learning rate that is a callable or another
            schedule; ``clipnorm`` or ``global_clipnorm`` (pass ``clip_norm=`` to the
            Estimator, which clips the global norm of the gradients); ``clipvalue``,
            ``use_ema``, ``loss_scale_factor``, ``gradient_accumulation_steps``; variables
            excluded from the weight decay.
    """
    import keras

    classes = {
        keras.optimizers.SGD: SGD,
        keras.optimizers.Adam: Adam,
        keras.optimizers.AdamW: AdamW,
        keras.optimizers.Adagrad: Adagrad,
        keras.optimizers.RMSprop: RMSprop,
    }
    if isinstance(optimizer, type):
        raise ValueError(f"from_keras takes an optimizer instance such as {optimizer.__name__}(), not a class")
    klass = classes.get(type(optimizer))  # exact classes: a subclass may change the update
    if klass is None:
        supported = ", ".join(f"keras.optimizers.{keras_class.__name__}" for keras_class in classes)
        raise ValueError(f"Unsupported Keras optimizer {type(optimizer).__name__}; supported: {supported}")
    name = f"keras.optimizers.{type(optimizer).__name__}"
    lr = _keras_learning_rate(optimizer._learning_rate)  # first: get_config warns on a lambda
    config = optimizer.get_config()
    options = [key for key in config if key not in _KERAS_UNSUPPORTED_OPTIONS + _KERAS_IGNORED_OPTIONS]
    for option in _KERAS_UNSUPPORTED_OPTIONS:
        value = config[option]
        if value and option.endswith("clipnorm"):
            raise ValueError(
                f"{name} option {option}={value!r} is not supported: pass clip_norm={value!r} to the "
                "Estimator instead, which clips the global norm of all the gradients"
            )
        if value:
            raise ValueError(
                f"{name} option {option}={value!r} has no slice-optimizer equivalent; "
                f"supported options: {', '.join(options)}"
            )
    for option in options:  # beta_1 and the like may be callables or tensors in Keras
        value = config[option]
        if option != "learning_rate" and value is not None and not isinstance(value, numbers.Real):
            raise ValueError(f"{name} option {option}={value!r} is not supported: it must be a number")
    excluded = getattr(optimizer, "_exclude_from_weight_decay", None) or getattr(
        optimizer, "_exclude_from_weight_decay_pattern", None
    )
    if config["weight_decay"] and excluded:
        raise ValueError(f"{name}.exclude_from_weight_decay() is not supported: slices decay every parameter")

    common = {
        "lr": lr,
        "weight_decay": float(config["weight_decay"] or 0.0),
        "style": "keras",
    }
    if klass is SGD:  # Keras's nesterov without momentum is plain SGD
        nesterov = bool(config["nesterov"] and config["momentum"])
        return SGD(momentum=config["momentum"], nesterov=nesterov, **common)
    if klass is Adagrad:
        initial = config["initial_accumulator_value"]
        return Adagrad(initial_accumulator_value=initial, eps=config["epsilon"], **common)
    if klass is RMSprop:
        own = {"alpha": config["rho"], "momentum": config["momentum"], "centered": config["centered"]}
        return RMSprop(eps=config["epsilon"], **own, **common)
    betas = (config["beta_1"], config["beta_2"])
    return klass(betas=betas, eps=config["epsilon"], amsgrad=config["amsgrad"], **common)


def _keras_learning_rate(rate: Any) -> float | Schedule:
    """A Keras optimizer's learning rate (variable, schedule or callable) as a float or Schedule.

    Keras calls a schedule with its 0-based ``iterations``, the ``step - 1`` units that our
    per-step schedules count at the 1-based ``step``.
    """
    import keras

    if isinstance(rate, keras.Variable):  # a float32: its shortest decimal, 0.001 not 0.0010000000474974513
        return float(str(np.float32(rate.numpy())))
    schedules = keras.optimizers.schedules
    config = rate.get_config() if isinstance(rate, schedules.LearningRateSchedule) else {}
    steps = config.get("decay_steps")
    whole = steps is not None and float(steps).is_integer()
    if type(rate) is schedules.ExponentialDecay:  # lr * decay_rate ** (iterations / decay_steps)
        initial, decay_rate = config["initial_learning_rate"], config["decay_rate"]
        if not config["staircase"]:
            return ExponentialDecay(initial, gamma=decay_rate ** (1 / steps), per="step")
        if whole:  # the exponent floored
            return StepDecay(initial, step_size=int(steps), gamma=decay_rate, per="step")
    if type(rate) is schedules.CosineDecay and whole:  # from lr to lr * alpha over decay_steps
        target = config["warmup_target"]
        if target is None or not config["warmup_steps"]:  # no warm-up: Keras decays from the target
            initial = config["initial_learning_rate"] if target is None else target
            return CosineDecay(initial, total=int(steps), min_lr=initial * config["alpha"], per="step")
    what = f"schedule {type(rate).__name__} with {config}" if config else repr(rate)
    raise ValueError(
        f"Unsupported Keras learning rate {what}; supported: a float, ExponentialDecay (integer "
        "decay_steps if staircase), CosineDecay (integer decay_steps, no warm-up)"
    )
