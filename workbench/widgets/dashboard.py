"""The live training dashboard: a callback that draws a fit as it runs, in the notebook.

:class:`TrainingDashboard` is an ordinary :class:`~workbench.train.callbacks.Callback`: it is
fed only by the Estimator's hooks (the per-step metrics stream, the epoch logs, the worker
events), so anyone can pass it to ``fit(callbacks=[...])``; ``fit(progress="widget")`` adds
and displays one. It shows a progress bar (epoch, step, ETA), live curves (per-step loss,
per-epoch loss and metrics for training and validation, samples/s, learning rate; see
:mod:`workbench.widgets.curves`) with worker losses and joins marked as vertical lines, each
worker's status and samples/s, and a Stop button.

Drawing costs more than a training step, so the hooks only append rows to Python lists; the
rows gathered since the last refresh are streamed to the curves, and the widgets redrawn, at
most ``max_updates_per_s`` times a second, and always at each epoch end and at the end of
training.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd

from workbench.train.callbacks import Callback
from workbench.widgets.curves import LiveCurves
from workbench.widgets.notebook import answer_while_busy, load_bokeh

__all__ = ["TrainingDashboard"]

#: Columns of the per-step data (one row per ``on_batch_end``).
STEP_COLUMNS = ["step", "epoch", "loss", "samples_per_s", "lr"]


class TrainingDashboard(Callback):
    """A live view of a fit; display it in a notebook (it is shown by its ``widget``, a VBox).

    Args:
        max_updates_per_s: most refreshes of the curves and widgets per second.
        clock: seconds as a float, for the throttling (``time.monotonic``; tests give their own).
    """

    def __init__(self, max_updates_per_s: float = 4.0, clock: Callable[[], float] = time.monotonic):
        if isinstance(max_updates_per_s, bool) or not isinstance(max_updates_per_s, (int, float)) \
                or not max_updates_per_s > 0:
            raise ValueError(f"max_updates_per_s must be a positive number, got {max_updates_per_s!r}")
        self.min_interval = 1.0 / max_updates_per_s
        self.clock = clock
        self.renders = 0
        self.last_render = -float("inf")
        self.step_rows: list[dict[str, float]] = []
        self.epoch_rows: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.workers: dict[str, dict[str, Any]] = {}
        self.epochs: int | None = None
        self.epoch_first_step = 0
        self.epochs_done_before = 0  # by the fit this one resumes
        self.rate: float | None = None  # steps per second, for the ETA
        self.last_step_time = 0.0

        self.curves = LiveCurves(STEP_COLUMNS)
        self._drawn = {"steps": 0, "epochs": 0, "events": 0}  # rows already streamed to the curves
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="step")
        self.status = widgets.HTML()
        self.worker_table = widgets.HTML()
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          tooltip="end the fit after the current step (keeps the last snapshot)")
        self.stop_button.on_click(self._stop)
        self._widget: widgets.VBox | None = None

    # -- the data: hooks append, render() draws ---------------------------------------------------

    @property
    def step_data(self) -> pd.DataFrame:
        """The per-step points drawn so far (``STEP_COLUMNS``)."""
        return pd.DataFrame(self.curves.steps.data, columns=STEP_COLUMNS)

    @property
    def epoch_data(self) -> pd.DataFrame:
        """The per-epoch logs drawn so far, one row per epoch (the history's columns)."""
        return pd.DataFrame(self.epoch_rows)

    def on_train_begin(self, logs=None):
        logs = logs or {}
        self.epochs = logs.get("epochs")
        self.epochs_done_before = logs.get("epochs_done", 0)
        self.workers = {}  # the run's workers are known from the first epoch on
        self.stop_button.disabled = False
        self.stop_button.description = "Stop"
        answer_while_busy(self.stop_button)  # its click is handled while fit keeps the kernel busy
        self._render()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_first_step = self.estimator.step_
        self._refresh_workers()

    def on_batch_end(self, step, logs=None):
        now = self.clock()
        self.step_rows.append({"step": step, **{k: logs[k] for k in STEP_COLUMNS[1:]}})
        for worker, rate in zip(self.estimator.workers_ or [], logs["rank_samples_per_s"]):
            self.workers.setdefault(worker, {"status": "alive"})["samples_per_s"] = rate
        if len(self.step_rows) > 1:
            first = self.step_rows[-2]
            self.rate = (step - first["step"]) / max(now - self.last_step_time, 1e-9)
        self.last_step_time = now
        if now - self.last_render >= self.min_interval:
            self._render()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_rows.append(dict(logs))
        self._render()

    def on_workers_changed(self, event):
        step = event.get("rolled_back_to_step", self.step_rows[-1]["step"] if self.step_rows else 0)
        self.events.append({**event, "step": step})
        status = "lost" if event["kind"] == "workers_lost" else "joined"
        for worker in event["workers"]:
            self.workers.setdefault(worker, {"samples_per_s": None})["status"] = status
        self._refresh_workers()
        self._render()

    def on_train_end(self, logs=None):
        self.stop_button.disabled = True
        self._render(finished=True)

    def _refresh_workers(self) -> None:
        """Give each worker of the current layout its rank (the layout changes after events)."""
        for rank, worker in enumerate(self.estimator.workers_ or []):
            self.workers.setdefault(worker, {"status": "alive", "samples_per_s": None})["rank"] = rank

    def _stop(self, button: widgets.Button | None = None) -> None:
        """The Stop button: the fit ends at its next check (see :mod:`workbench.train.run`).

        In a kernel with subshells this runs on the widget subshell's thread (see
        :mod:`workbench.widgets.notebook`) while the main thread trains.
        """
        if self.estimator is not None:
            self.estimator.stop_training = True
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping"

    def _render(self, finished: bool = False) -> None:
        """Push the rows gathered since the last render to the curves and widgets."""
        self.renders += 1
        self.last_render = self.clock()
        self.curves.append_steps(self.step_rows[self._drawn["steps"]:])
        self.curves.append_epochs(self.epoch_rows[self._drawn["epochs"]:])
        self.curves.append_events([float(e["step"]) for e in self.events[self._drawn["events"]:]])
        self._drawn = {"steps": len(self.step_rows), "epochs": len(self.epoch_rows), "events": len(self.events)}
        self._draw_progress(finished)
        self.worker_table.value = _worker_table(self.workers)

    def _draw_progress(self, finished: bool) -> None:
        done_epochs = self.epochs_done_before + len(self.epoch_rows)
        per_epoch = self.estimator.steps_per_epoch if self.estimator is not None else None
        last = self.step_rows[-1] if self.step_rows else None
        epoch = done_epochs if finished else done_epochs + 1
        parts = [f"epoch {epoch}/{self.epochs or '?'}"]
        if per_epoch:
            in_epoch = 0 if last is None else max(0, int(last["step"]) - self.epoch_first_step)
            self.progress.max = per_epoch
            self.progress.value = per_epoch if finished else min(in_epoch, per_epoch)
            parts.append(f"step {self.progress.value}/{per_epoch}")
            if self.rate and not finished and self.epochs:
                remaining = per_epoch - in_epoch + (self.epochs - done_epochs - 1) * per_epoch
                parts.append(f"ETA {_duration(max(remaining, 0) / self.rate)}")
        if last is not None:
            parts.append(f"loss {last['loss']:.4g}, {last['samples_per_s']:.0f} samples/s, lr {last['lr']:.3g}")
        if finished:
            parts.append("stopped" if self.estimator is not None and self.estimator.stop_training else "done")
        self.status.value = html.escape(" · ".join(parts))

    # -- showing, replaying, saving ---------------------------------------------------------------

    @property
    def widget(self) -> widgets.VBox:
        """The dashboard as one widget: progress, status and Stop; workers; the live curves.

        The curves are a Bokeh layout inside a widget (jupyter_bokeh), so their updates travel
        on the widget's comm, which the kernel opened: they reach the page while the fit keeps
        the kernel busy (HoloViews' and Bokeh's own notebook comms wait for the page to open
        them, which a busy kernel only hears when the cell ends).
        """
        if self._widget is None:
            from jupyter_bokeh import BokehModel

            self._widget = widgets.VBox([widgets.HBox([self.progress, self.status, self.stop_button]),
                                         self.worker_table, BokehModel(self.curves.layout)])
        return self._widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        load_bokeh()  # BokehJS, inline: works offline
        display(self.widget)

    @classmethod
    def replay(cls, history: pd.DataFrame, events: pd.DataFrame | None = None) -> TrainingDashboard:
        """A dashboard drawing a finished fit from its ``history_`` (and ``events_``).

        Only the per-epoch curves and the events have data: the per-step stream is not kept.
        """
        if not isinstance(history, pd.DataFrame):
            raise TypeError(f"history must be a pandas DataFrame (an estimator's history_), got {type(history).__name__}")
        frame = history.reset_index() if history.index.name == "epoch" else history
        if "epoch" not in frame.columns or "loss" not in frame.columns:
            raise ValueError(f"history needs 'epoch' and 'loss' columns, got {list(frame.columns)}")
        dashboard = cls()
        dashboard.epoch_rows = frame.to_dict("records")
        dashboard.epochs = len(frame)
        if events is not None and len(events):
            dashboard.events = [{**e, "step": e.get("rolled_back_to_step", 0)} for e in events.to_dict("records")]
        dashboard._render(finished=True)
        return dashboard

    def _html_parts_(self) -> list:
        """What :func:`~workbench.widgets.html.save_html` writes: status, workers, curves, epochs."""
        return [self.status, self.worker_table, self.curves.layout, self.epoch_data]

    def save(self, path: str | Path, title: str = "Training") -> Path:
        """Write the dashboard as it is now to a standalone offline HTML file; returns the path."""
        from workbench.widgets.html import save_html

        return save_html(path, self, title=title)


def _worker_table(workers: dict[str, dict[str, Any]]) -> str:
    """An HTML table of the workers: rank, status and last samples/s."""
    if not workers:
        return ""
    def rate(info: dict[str, Any]) -> str:
        return "" if info.get("samples_per_s") is None else f"{info['samples_per_s']:.0f}"

    rows = "".join(
        f"<tr><td>{html.escape(str(w))}</td><td>{info.get('rank', '')}</td><td>{info['status']}</td>"
        f"<td>{rate(info)}</td></tr>"
        for w, info in workers.items()
    )
    return f"<table><tr><th>worker</th><th>rank</th><th>status</th><th>samples/s</th></tr>{rows}</table>"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"
