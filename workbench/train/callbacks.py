"""Callbacks: hooks into ``Estimator.fit`` (Keras-style), and the built-in ones.

Callbacks run on the driver. ``on_batch_end(step, logs)`` receives the per-step metrics
stream, every ``log_every`` steps: ``epoch``, ``loss`` (averaged over all workers since the
last report), ``samples_per_s`` (all workers together), ``rank_samples_per_s`` (a list, one
rate per rank, ``estimator.workers_[rank]`` being its worker) and ``lr`` (the learning rate of
that step). Epoch hooks receive the epoch's logs: ``epoch``, ``loss``, the metrics, ``val_*``,
``samples_per_s``, ``time`` and ``workers``. Setting ``estimator.stop_training`` ends the fit
(see :mod:`workbench.train.run`). Nothing here draws widgets: a widget is just another
callback, defined in :mod:`workbench.widgets`. ``on_train_begin`` receives ``epochs`` (the
fit's target) and ``epochs_done`` (epochs already done, when resuming). A fit that raises calls
``on_train_failed(error)`` instead of ``on_train_end``.

:func:`add_fit_observer` makes every later fit run one more callback without the caller passing
it: the JupyterLab job list (:mod:`workbench.lab.jobs`) sees every fit of a kernel that way.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Callback", "CallbackList", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "ProgressBar",
           "add_fit_observer", "fit_observers"]

_observer_factories: list[Callable[[], Callback]] = []


class Callback:
    """Base class; ``self.estimator`` is the estimator being fitted."""

    estimator: Any = None

    def set_estimator(self, estimator: Any) -> None:
        self.estimator = estimator

    def on_train_begin(self, logs: dict | None = None) -> None: ...

    def on_train_end(self, logs: dict | None = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_batch_end(self, step: int, logs: dict | None = None) -> None: ...

    def on_workers_changed(self, event: dict) -> None:
        """Workers were lost (the fit rolled back to its last snapshot) or joined; ``event``
        is the row added to ``estimator.events_``."""

    def on_train_failed(self, error: BaseException) -> None:
        """The fit raised ``error`` (it propagates after the callbacks ran); no ``on_train_end``."""


def add_fit_observer(factory: Callable[[], Callback]) -> None:
    """Have every later ``fit`` in this process also run the callback ``factory()`` returns."""
    if factory not in _observer_factories:
        _observer_factories.append(factory)


def fit_observers() -> list[Callback]:
    """One fresh callback from each factory given to :func:`add_fit_observer`."""
    return [factory() for factory in _observer_factories]


class CallbackList(Callback):
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks: list[Callback], estimator: Any):
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be workbench Callback objects, got {type(callback).__name__}")
            callback.set_estimator(estimator)
        self.callbacks = callbacks

    def on_train_begin(self, logs=None):
        for c in self.callbacks:
            c.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for c in self.callbacks:
            c.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for c in self.callbacks:
            c.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)

    def on_batch_end(self, step, logs=None):
        for c in self.callbacks:
            c.on_batch_end(step, logs)

    def on_workers_changed(self, event):
        for c in self.callbacks:
            c.on_workers_changed(event)

    def on_train_failed(self, error):
        for c in self.callbacks:
            c.on_train_failed(error)


class _Monitor(Callback):
    """Shared logic of callbacks that watch one logged quantity for improvement."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "r2")) else "min"
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def current(self, logs: dict | None) -> float:
        if not logs or self.monitor not in logs:
            raise KeyError(
                f"{type(self).__name__} monitors {self.monitor!r}, which is not logged; "
                f"logged: {sorted(logs or {})}"
            )
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    With ``restore_best_weights`` the estimator ends with the weights of the best epoch.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", restore_best_weights: bool = False):
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = self.current(logs)
        if self.improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.estimator.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.estimator.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch is not None:
            self.estimator.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the estimator after each epoch to ``path`` (may contain ``{epoch}`` and log keys).

    With ``save_best_only`` only epochs that improve ``monitor`` are saved.
    """

    def __init__(self, path: str, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto"):
        super().__init__(monitor, mode)
        self.path = str(path)
        self.save_best_only = save_best_only
        self.saved: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = self.current(logs)
            if not self.improved(value):
                return
            self.best = value
        target = self.path.format(**{**(logs or {}), "epoch": epoch})
        self.estimator.save(target)
        self.saved.append(target)


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start to ``schedule(epoch, current_lr)``."""

    def __init__(self, schedule: Callable[[int, float], float]):
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, self.estimator.learning_rate))
        if not lr >= 0:
            raise ValueError(f"the learning-rate schedule returned {lr} for epoch {epoch}")
        self.estimator.set_learning_rate(lr)


class ProgressBar(Callback):
    """A tqdm progress bar per epoch with the running loss (on by default in terminals)."""

    def __init__(self, file=None):
        self.file = file or sys.stderr
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.estimator.steps_per_epoch, desc=f"epoch {epoch}", unit="step",
                        file=self.file, leave=True)
        self.last_step = self.estimator.step_

    def on_batch_end(self, step, logs=None):
        if self.bar is not None:
            self.bar.update(step - self.last_step)
            self.last_step = step
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}")

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items() if k not in ("epoch", "time")})
            self.bar.close()
            self.bar = None
