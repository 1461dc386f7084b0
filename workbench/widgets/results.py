"""Result views: look at a model's predictions the way an analyst would, in the notebook.

Each ``show_*`` function checks its inputs, computes what it shows (kept on the view as
attributes ending in ``_`` so the numbers can be read and tested), and returns a
:class:`ResultView` that displays in Jupyter and saves as one offline HTML file (``.save``).

Inputs may be lists, numpy arrays, pandas or dask collections. Inputs longer than
``sample_size`` rows are sampled (the same rows of every input, without replacement); the
view then says so in its title and in ``sample_size_`` -- never silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from workbench.widgets.html import save_html
from workbench.widgets.notebook import load_bokeh

__all__ = ["ResultView", "show_classification", "show_regression", "show_forecast", "show_recommendations"]

DEFAULT_SAMPLE_SIZE = 100_000
_TILE = 64  # pixels: the cell size of a misclassified-image grid
_CAPTION = 12  # pixels: the caption strip under each cell


class ResultView:
    """What a ``show_*`` function returns: titled parts shown in Jupyter and saved as HTML.

    Attributes:
        title: the heading (mentions the sample when one was taken).
        parts: what is shown, in order (text, tables, plots, images).
        rows_: rows of input the view was computed from.
        sample_size_: rows sampled from a longer input, or None when every row was used.
    """

    def __init__(self, title: str, parts: list[Any], rows: int, sample_size: int | None):
        self.title = title if sample_size is None else f"{title} (random sample of {sample_size:,} of {rows:,} rows)"
        self.parts = parts
        self.rows_ = rows
        self.sample_size_ = sample_size

    def save(self, path: str | Path) -> Path:
        """Write the view to ``path`` as one standalone HTML file that opens offline."""
        return save_html(path, self, title=self.title)

    def _html_parts_(self) -> list[Any]:
        return self.parts

    def _ipython_display_(self) -> None:
        """Show the parts; plots as Bokeh widgets (jupyter_bokeh), like the dashboard's curves."""
        from IPython.display import Markdown, display
        from jupyter_bokeh import BokehModel

        hv = _holoviews()
        load_bokeh()
        display(Markdown(f"### {self.title}"))
        for part in self.parts:
            if isinstance(part, str):
                part = Markdown(part)
            elif isinstance(part, hv.core.Dimensioned):
                part = BokehModel(hv.render(part, backend="bokeh"))
            display(part)


def show_classification(y_true: Any, y_pred: Any, labels: Any = None, examples: Any = None,
                        max_examples: int = 20, sample_size: int | None = DEFAULT_SAMPLE_SIZE) -> ResultView:
    """Confusion matrix, per-class precision/recall/F1, and misclassified examples.

    Args:
        y_true, y_pred: the true and predicted classes, one per row.
        labels: the classes in display order (a list), or a mapping class -> display name,
            or, for integer-coded classes 0..n-1, the list of their n names; default: every
            class seen, sorted. A class outside ``labels`` is an error.
        examples: the inputs, one per row: texts (shown as a table) or images (an array of
            ``(n, H, W[, C])`` images or an ImageSet, shown as a grid).
        max_examples: the most misclassified examples shown.
        sample_size: rows used at most (None: all).

    Returns:
        A view with ``confusion_matrix_`` (rows: true class, columns: predicted), ``table_``
        (per-class precision, recall, f1-score, support, then macro and weighted averages,
        as scikit-learn's ``classification_report``), ``accuracy_`` and ``misclassified_``
        (the row positions, in the sample, of the misclassified examples shown).
    """
    _check_positive_int("max_examples", max_examples)
    images = _image_examples(examples)
    inputs = {"y_true": y_true, "y_pred": y_pred}
    if examples is not None:
        inputs["examples"] = images if images is not None else examples
    columns, rows, sampled = _rows(inputs, sample_size)
    truth, predicted = columns["y_true"], columns["y_pred"]
    classes, names = _classes(labels, truth, predicted)

    positions = {value: i for i, value in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, ([positions[v] for v in truth], [positions[v] for v in predicted]), 1)
    confusion = pd.DataFrame(matrix, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))
    table = _report_table(matrix, names)
    accuracy = float(np.trace(matrix) / matrix.sum())

    wrong = np.flatnonzero(truth != predicted)[:max_examples]
    parts: list[Any] = [f"Accuracy {accuracy:.4f} on {len(truth):,} rows.", _heat_map(confusion), table]
    if examples is not None and len(wrong):
        shown = {"true": [names[positions[v]] for v in truth[wrong]],
                 "predicted": [names[positions[v]] for v in predicted[wrong]]}
        parts.append(f"Misclassified examples ({len(wrong)} shown of {int((truth != predicted).sum())}):")
        if images is not None:
            parts.append(_image_grid(columns["examples"][wrong], [f"{t}>{p}" for t, p in zip(*shown.values())]))
        else:
            parts.append(pd.DataFrame({"example": columns["examples"][wrong], **shown}, index=wrong))

    view = ResultView("Classification results", parts, rows, sampled)
    view.confusion_matrix_, view.table_, view.accuracy_, view.misclassified_ = confusion, table, accuracy, wrong
    return view


def show_regression(y_true: Any, y_pred: Any, sample_size: int | None = DEFAULT_SAMPLE_SIZE) -> ResultView:
    """Predicted against actual (with the identity line), residuals, and MAE/RMSE/R2.

    Returns:
        A view with ``summary_`` (a Series: MAE, RMSE, R2 -- as scikit-learn computes them)
        and ``residuals_`` (``y_pred - y_true``).
    """
    hv = _holoviews()
    columns, rows, sampled = _rows({"y_true": y_true, "y_pred": y_pred}, sample_size)
    truth, predicted = (_numeric(name, columns[name]) for name in ("y_true", "y_pred"))
    residuals = predicted - truth
    total = ((truth - truth.mean()) ** 2).sum()
    r2 = 1.0 - (residuals**2).sum() / total if total > 0 else float("nan")
    summary = pd.Series({"MAE": np.abs(residuals).mean(), "RMSE": math.sqrt((residuals**2).mean()), "R2": r2})

    frame = pd.DataFrame({"actual": truth, "predicted": predicted, "residual": residuals})
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    scatter = hv.Scatter(frame, "actual", "predicted").opts(alpha=0.5, tools=["hover"], title="Predicted vs actual")
    identity = hv.Curve([(low, low), (high, high)], "actual", "predicted").opts(color="black", line_dash="dashed")
    residual_plot = (hv.Scatter(frame, "predicted", "residual").opts(alpha=0.5, title="Residuals")
                     * hv.HLine(0).opts(color="black", line_dash="dashed"))
    view = ResultView("Regression results", [summary.to_frame("value"), scatter * identity + residual_plot],
                      rows, sampled)
    view.summary_, view.residuals_ = summary, residuals
    return view


def show_forecast(history: Any, forecast: Any, anomalies: Any = None, time: Any = None,
                  sample_size: int | None = DEFAULT_SAMPLE_SIZE) -> ResultView:
    """A series with its forecast after it, and anomalies marked as points.

    Args:
        history: the observed values.
        forecast: the predicted values that follow ``history`` (the horizon).
        anomalies: optional boolean flags, one per ``history`` value, marking anomalies.
        time: optional time stamps of ``history`` then ``forecast`` (``len(history) + len(forecast)``);
            default: steps 0, 1, 2, ...
        sample_size: history points plotted at most (the forecast is always shown whole).

    Returns:
        A view with ``frame_`` (columns time, value, kind: "history" or "forecast",
        anomaly) and ``anomalies_`` (the anomalous history rows).
    """
    hv = _holoviews()
    future = _numeric("forecast", _rows({"forecast": forecast}, None)[0]["forecast"])
    past = {"history": history}
    if anomalies is not None:
        past["anomalies"] = anomalies
    if time is not None:
        stamps = _rows({"time": time}, None)[0]["time"]
        expected = len(_array("history", history)) + len(future)
        if len(stamps) != expected:
            raise ValueError(f"time has {len(stamps):,} stamps but history and forecast have {expected:,} values")
        past["time"] = stamps[: expected - len(future)]
    columns, rows, sampled = _rows(past, sample_size)
    values = _numeric("history", columns["history"])
    flags = np.zeros(len(values), dtype=bool) if anomalies is None else _flags(columns["anomalies"])
    if time is None:
        past_time = columns["_positions"] if sampled else np.arange(rows)
        future_time = np.arange(rows, rows + len(future))
    else:
        past_time, future_time = columns["time"], stamps[rows:]

    frame = pd.concat([
        pd.DataFrame({"time": past_time, "value": values, "kind": "history", "anomaly": flags}),
        pd.DataFrame({"time": future_time, "value": future, "kind": "forecast", "anomaly": False}),
    ], ignore_index=True)
    anomalous = frame[frame["anomaly"]]
    plot = (hv.Curve(frame[frame["kind"] == "history"], "time", "value", label="history").opts(tools=["hover"])
            * hv.Curve(frame[frame["kind"] == "forecast"], "time", "value", label="forecast").opts(line_dash="dashed")
            * hv.Scatter(anomalous, "time", "value", label="anomaly").opts(color="red", size=7)
            ).opts(legend_position="top_left", width=800, height=300, title="Forecast")
    text = f"{rows:,} observed values, {len(future):,} forecast, {len(anomalous):,} anomalies shown."
    view = ResultView("Forecast", [text, plot], rows, sampled)
    view.frame_, view.anomalies_ = frame, anomalous
    return view


def show_recommendations(recommendations: Any, k: int | None = None, user: Any = None) -> ResultView:
    """The top-k items per user, as :func:`workbench.models.recommend_for_user` returns them.

    Args:
        recommendations: a table with columns ``user``, ``item``, ``score`` and ``rank``.
        k: the most items shown per user (default: all).
        user: one user id or a list of them to show (default: every user).

    Returns:
        A view with ``table_``: one row per user, columns ``1``..``k`` holding "item (score)".
    """
    if isinstance(recommendations, dask.base.DaskMethodsMixin):
        recommendations = recommendations.compute()
    if not isinstance(recommendations, pd.DataFrame):
        raise TypeError(f"recommendations must be a DataFrame, got {type(recommendations).__name__}")
    missing = [c for c in ("user", "item", "score", "rank") if c not in recommendations.columns]
    if missing:
        raise ValueError(f"recommendations lacks the column(s) {missing}; expected user, item, score, rank")
    if k is not None:
        _check_positive_int("k", k)
        recommendations = recommendations[recommendations["rank"] <= k]
    if user is not None:
        wanted = list(user) if isinstance(user, (list, tuple, set, np.ndarray, pd.Series)) else [user]
        unknown = sorted(set(wanted) - set(recommendations["user"]))
        if unknown:
            raise ValueError(f"no recommendations for user(s) {unknown[:10]}")
        recommendations = recommendations[recommendations["user"].isin(wanted)]
    cells = recommendations.assign(cell=[f"{i} ({s:.3f})" for i, s in
                                         zip(recommendations["item"], recommendations["score"])])
    table = cells.pivot(index="user", columns="rank", values="cell").fillna("")
    table.columns = [str(rank) for rank in table.columns]
    shown_k = int(recommendations["rank"].max()) if len(recommendations) else 0
    view = ResultView(f"Top-{shown_k} recommendations for {len(table):,} users", [table], len(table), None)
    view.table_ = table
    return view


# -- inputs -----------------------------------------------------------------------------------


def _rows(inputs: dict[str, Any], sample_size: int | None) -> tuple[dict[str, np.ndarray], int, int | None]:
    """The inputs as numpy arrays of equal length, sampled to ``sample_size`` rows when longer.

    Returns the arrays (plus ``_positions``, the sampled row positions, when sampled), the
    number of input rows, and the sample size (None when every row is kept). Dask inputs are
    computed together, only the sampled rows.
    """
    if sample_size is not None:
        _check_positive_int("sample_size", sample_size)
    arrays = {name: _array(name, value) for name, value in inputs.items()}
    lengths = {name: len(array) for name, array in arrays.items()}
    first, rows = next(iter(lengths.items()))
    for name, length in lengths.items():
        if length != rows:
            raise ValueError(f"{first} has {rows:,} rows but {name} has {length:,}; they must be equally long")
    if rows == 0:
        raise ValueError(f"{first} is empty")
    sampled = None
    if sample_size is not None and rows > sample_size:
        positions = np.sort(np.random.default_rng(0).choice(rows, sample_size, replace=False))
        arrays = {name: array[positions] for name, array in arrays.items()}
        arrays["_positions"] = positions
        sampled = sample_size
    names = list(arrays)
    computed = dask.compute(*arrays.values())
    return {name: _checked(name, np.asarray(value)) for name, value in zip(names, computed)}, rows, sampled


def _array(name: str, value: Any) -> Any:
    """One input as a numpy or dask array (a dask array with known chunk sizes)."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(value, (dd.DataFrame, pd.DataFrame)):
        if len(value.columns) != 1:
            raise ValueError(f"{name} must be one column, got a table of {len(value.columns)} columns")
        value = value[value.columns[0]]
    if isinstance(value, dd.Series):
        return value.to_dask_array(lengths=True)
    if isinstance(value, da.Array):
        return value if not any(math.isnan(c) for c in value.shape) else value.compute_chunk_sizes()
    if isinstance(value, pd.Series):
        return value.to_numpy()
    array = np.asarray(value)
    if array.ndim == 0:
        raise TypeError(f"{name} must be a sequence of values, got {type(value).__name__}")
    return array


def _checked(name: str, array: np.ndarray) -> np.ndarray:
    """``array``, or a ValueError when it holds missing values (NaN, None)."""
    if name in ("examples", "_positions"):
        return array
    missing = int(pd.isna(array).sum()) if array.ndim == 1 else int(pd.isna(array).any(axis=tuple(range(1, array.ndim))).sum())
    if missing:
        raise ValueError(f"{name} has {missing:,} missing (NaN) values")
    return array


def _numeric(name: str, array: np.ndarray) -> np.ndarray:
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be one-dimensional numbers, got dtype {array.dtype} and shape {array.shape}")
    return array.astype(np.float64)


def _flags(array: np.ndarray) -> np.ndarray:
    if array.dtype != bool:
        raise TypeError(f"anomalies must be booleans (one flag per history value), got dtype {array.dtype}")
    return array


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _classes(labels: Any, truth: np.ndarray, predicted: np.ndarray) -> tuple[list[Any], list[str]]:
    """The classes in display order and their display names; unknown classes are an error."""
    seen = set(pd.unique(truth)) | set(pd.unique(predicted))
    if labels is None:
        classes = sorted(seen)
    elif isinstance(labels, Mapping):
        classes = list(labels)
    elif isinstance(labels, (list, tuple, np.ndarray, pd.Index, pd.Series)):
        classes = list(labels)
        if _names_of_codes(classes, seen):
            labels = dict(enumerate(classes))
            classes = list(labels)
    else:
        raise TypeError(f"labels must be a list of classes or a mapping class -> name, got {type(labels).__name__}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"labels has duplicates: {classes}")
    unknown = seen - set(classes)
    if unknown:
        raise ValueError(f"y_true/y_pred hold classes not in labels: {sorted(map(str, unknown))[:10]}")
    names = [str(labels[c]) if isinstance(labels, Mapping) else str(c) for c in classes]
    return classes, names


def _names_of_codes(labels: list[Any], seen: set[Any]) -> bool:
    """Whether a list of labels names integer-coded classes 0..n-1 (``["cat", "dog"]`` for 0/1)
    rather than listing the classes themselves: no label is a class seen, every class seen is a
    code."""
    return not seen & set(labels) and all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < len(labels) for c in seen)


def _report_table(matrix: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support, then macro and weighted averages (0 where undefined)."""
    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    table = pd.DataFrame({"precision": precision, "recall": recall, "f1-score": f1, "support": support},
                         index=pd.Index(names, name="class"))
    per_class = table[["precision", "recall", "f1-score"]]
    table.loc["macro avg"] = [*per_class.mean(), support.sum()]
    table.loc["weighted avg"] = [*np.average(per_class, axis=0, weights=support), support.sum()]
    return table.astype({"support": np.int64})


def _heat_map(confusion: pd.DataFrame) -> Any:
    hv = _holoviews()
    cells = confusion.stack().rename("count").reset_index()
    size = max(300, 30 * len(confusion))
    return hv.HeatMap(cells, ["predicted", "true"], "count").opts(
        tools=["hover"], colorbar=True, cmap="Blues", width=size + 80, height=size, invert_yaxis=True,
        xrotation=45, title="Confusion matrix")


def _image_examples(examples: Any) -> Any:
    """``examples`` as an image array when they are images (an ImageSet or an ``(n, H, W[, C])`` array), else None."""
    from workbench.feature.image import ImageSet

    if isinstance(examples, ImageSet):
        images = examples.to_arrays()[0]
        return images.transpose(0, 2, 3, 1) if examples.layout == "CHW" else images
    if getattr(examples, "ndim", 1) in (3, 4) and not isinstance(examples, (pd.DataFrame,)):
        return examples
    return None


def _image_grid(images: np.ndarray, captions: list[str]) -> Image.Image:
    """Images stretched to 0..255 in ``_TILE``-pixel cells with a caption under each."""
    columns = min(len(images), 8)
    step = _TILE + 2
    grid = Image.new("RGB", (columns * step, math.ceil(len(images) / columns) * (step + _CAPTION)))
    draw = ImageDraw.Draw(grid)
    for position, (image, caption) in enumerate(zip(images, captions)):
        image = image.astype(np.float64)
        low, high = image.min(), image.max()
        pixels = ((image - low) / (high - low) * 255 if high > low else np.zeros_like(image)).astype(np.uint8)
        tile = Image.fromarray(pixels.squeeze(-1) if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels)
        tile.thumbnail((_TILE, _TILE))
        left, top = (position % columns) * step, (position // columns) * (step + _CAPTION)
        grid.paste(tile.convert("RGB"), (left, top))
        draw.text((left, top + _TILE), caption[: _TILE // 6], fill=(255, 255, 255))
    return grid


def _holoviews() -> Any:
    """HoloViews with its bokeh backend loaded (plot options need a backend)."""
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401  (registers the backend)

    return hv

