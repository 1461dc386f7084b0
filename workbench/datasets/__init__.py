"""Sample datasets for the reference use cases, all offline: nothing is downloaded.

Real data where an installed package bundles it (scikit-learn's digits, statsmodels' sunspots
and CO2 series) and seeded generators that make realistic, learnable data where none exists.
Each function documents how its data is made and returns pandas DataFrames.

=========================  =================================================================
:func:`intents`            customer-service questions over 8 intents (text classification)
:func:`movielens_like`     ratings from latent factors with popularity skew (recommendation),
                           with :func:`leave_one_out` and :func:`negative_samples`
:func:`nyc_taxi_like`      a seasonal demand series with injected anomalies (time series)
:func:`sunspots`, :func:`co2`  real series bundled with statsmodels
:func:`digits`             scikit-learn's 8x8 digit images; :func:`write_image_folder` as PNGs
:func:`card_transactions`  imbalanced card transactions with fraud (anomaly detection)
=========================  =================================================================

The modules load on first use.
"""

from __future__ import annotations

from workbench.lazy import lazy_attributes

_HOMES = {
    "intents": "workbench.datasets.text",
    "movielens_like": "workbench.datasets.ratings",
    "leave_one_out": "workbench.datasets.ratings",
    "negative_samples": "workbench.datasets.ratings",
    "nyc_taxi_like": "workbench.datasets.timeseries",
    "sunspots": "workbench.datasets.timeseries",
    "co2": "workbench.datasets.timeseries",
    "digits": "workbench.datasets.tabular",
    "write_image_folder": "workbench.datasets.tabular",
    "card_transactions": "workbench.datasets.tabular",
}
__all__ = list(_HOMES)


__getattr__ = lazy_attributes(__name__, _HOMES)
