"""Notebook widgets: a live training dashboard, result views and a cluster widget.

Built on ipywidgets and HoloViews/hvplot (bokeh); each also renders to one standalone HTML
file with ``.save(path)``. Nothing in ``workbench.train`` imports this package: the dashboard is
a training callback, fed by the Estimator's metrics stream.

=============================  ================================================================
:class:`TrainingDashboard`     progress, live curves, workers, learning rate, a Stop button
:func:`show_classification`    confusion matrix, per-class precision/recall, misclassified examples
:func:`show_regression`        predicted vs actual, residuals, MAE/RMSE/R2
:func:`show_forecast`          a series with its forecast and anomalies
:func:`show_recommendations`   top-k items per user
:class:`ClusterWidget`         workers, cores, memory, tasks, dashboard link, scale buttons
:func:`save_html`              any of these (and tables, images) as one offline HTML file
=============================  ================================================================
"""

from __future__ import annotations

from workbench.lazy import lazy_attributes

_HOMES = {
    "TrainingDashboard": "workbench.widgets.dashboard",
    "ResultView": "workbench.widgets.results",
    "show_classification": "workbench.widgets.results",
    "show_regression": "workbench.widgets.results",
    "show_forecast": "workbench.widgets.results",
    "show_recommendations": "workbench.widgets.results",
    "ClusterWidget": "workbench.widgets.cluster",
    "save_html": "workbench.widgets.html",
}
__all__ = list(_HOMES)


__getattr__ = lazy_attributes(__name__, _HOMES)
