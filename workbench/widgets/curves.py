"""The training dashboard's live curves: Bokeh figures fed by ``ColumnDataSource.stream``.

Four panels: the loss per step, every loss and metric per epoch (training and validation, one
line each, added as they first appear), samples/s and the learning rate per step; worker losses
and joins are dashed red vertical lines on the per-step panels.

Why plain Bokeh and not HoloViews' ``Pipe``/``Buffer`` streams: a streamed update appends only
the new rows to the figures' data sources (about 1 ms here), where the same update through
HoloViews DynamicMaps re-renders the frame (110-170 ms), which at four updates a second made
the benchmark fit 3.8x slower. The result views, drawn once, use HoloViews.
"""

from __future__ import annotations

from typing import Any

from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, DataRange1d, HoverTool, Legend
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

__all__ = ["LiveCurves"]

#: Epoch-log columns that are not curves of the per-epoch panel.
NOT_EPOCH_CURVES = {"epoch", "time", "workers", "samples_per_s", "skipped_batches"}
_SIZE = {"width": 420, "height": 240}
_TOOLS = "pan,box_zoom,wheel_zoom,reset,save"


class LiveCurves:
    """The four panels, and the methods that append rows to them.

    Attributes:
        steps: the per-step data source (columns ``step_columns``).
        epochs: one data source (``epoch``, ``value``) per epoch series, by series name.
        events: the steps where workers were lost or joined.
        layout: the Bokeh layout to show or save.
    """

    def __init__(self, step_columns: list[str]):
        self.steps = ColumnDataSource({column: [] for column in step_columns})
        self.events = ColumnDataSource({"step": []})
        self.epochs: dict[str, ColumnDataSource] = {}
        loss = self._step_figure("loss", "loss per step")
        samples = self._step_figure("samples_per_s", "samples/s", x_range=loss.x_range, from_zero=True)
        rate = self._step_figure("lr", "learning rate", x_range=loss.x_range, from_zero=True)
        self.epoch_figure = figure(title="per epoch", x_axis_label="epoch", tools=_TOOLS, **_SIZE)
        self.epoch_figure.add_layout(Legend(click_policy="hide"), "right")
        self.layout = gridplot([[loss, self.epoch_figure], [samples, rate]], toolbar_location="right")

    def _step_figure(self, column: str, title: str, x_range: Any = None, from_zero: bool = False) -> figure:
        """A per-step panel. ``from_zero``: the axis starts at 0, so a constant (a fixed learning
        rate) is drawn at its height instead of in the middle of a +-1 range."""
        panel = figure(title=title, x_axis_label="step", tools=_TOOLS, x_range=x_range or DataRange1d(),
                       y_range=DataRange1d(start=0) if from_zero else DataRange1d(), **_SIZE)
        panel.line("step", column, source=self.steps, line_width=2)
        panel.vspan(x="step", source=self.events, line_color="red", line_dash="dashed")
        panel.add_tools(HoverTool(tooltips=[("step", "@step"), (column, f"@{column}")]))
        return panel

    def append_steps(self, rows: list[dict[str, float]]) -> None:
        if rows:
            self.steps.stream({column: [row[column] for row in rows] for column in self.steps.data})

    def append_epochs(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            for series, value in row.items():
                if series not in NOT_EPOCH_CURVES:
                    source = self.epochs.get(series) or self._epoch_series(series)
                    source.stream({"epoch": [row["epoch"]], "value": [value]})

    def append_events(self, steps: list[float]) -> None:
        if steps:
            self.events.stream({"step": steps})

    def _epoch_series(self, series: str) -> ColumnDataSource:
        """A new line of the per-epoch panel, in the next palette colour."""
        source = self.epochs[series] = ColumnDataSource({"epoch": [], "value": []})
        color = Category10_10[(len(self.epochs) - 1) % len(Category10_10)]
        self.epoch_figure.line("epoch", "value", source=source, color=color, line_width=2, legend_label=series)
        self.epoch_figure.scatter("epoch", "value", source=source, color=color, size=5)
        return source
