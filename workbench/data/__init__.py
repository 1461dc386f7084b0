"""Distributed data: readers returning Dask collections, and sharding for training."""

from workbench.data.readers import MissingPathError, from_numpy, from_pandas, read_csv, read_parquet
from workbench.data.shard import LocalShard, Shards, shard

__all__ = [
    "MissingPathError",
    "read_parquet",
    "read_csv",
    "from_pandas",
    "from_numpy",
    "shard",
    "Shards",
    "LocalShard",
]
