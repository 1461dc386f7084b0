"""Feature engineering on Dask collections: text (TextSet), images (ImageSet), time series (TSDataset).

Each set is built from files or a pandas/dask DataFrame, transformed with chained calls that run
lazily and in parallel on the workers, and turned into arrays that ``Estimator.fit`` trains on.
The same calls work on a pandas frame (local) and a dask frame (distributed), with identical results.

The submodules load on first use, so importing ``workbench.feature`` does not import Pillow or
the text code.
"""

from __future__ import annotations

from workbench.lazy import lazy_attributes

__all__ = ["TextSet", "ImageSet", "TSDataset", "load_embeddings"]

_HOMES = {"TextSet": "workbench.feature.text", "load_embeddings": "workbench.feature.text",
          "ImageSet": "workbench.feature.image", "TSDataset": "workbench.feature.timeseries"}


__getattr__ = lazy_attributes(__name__, _HOMES)
