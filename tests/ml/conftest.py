"""Models, data and the shared cluster of the scikit-learn estimator tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from tests.conftest import running_context

FEATURES = ["a", "b", "c", "d"]


@pytest.fixture(scope="package")
def _package_cluster() -> Iterator[None]:
    wb.stop()  # start from no context, whatever ran before
    yield
    wb.stop()


@pytest.fixture
def context(_package_cluster) -> wb.Context:
    """A 2-worker context shared by every test of tests/ml (its workers import torch once)."""
    return running_context(2)


@dataclass(frozen=True)
class MLP:
    """A model function: a small MLP sized from the data at fit time (a stable repr for test ids)."""

    hidden: int = 16

    def __call__(self, n_features_in: int, n_outputs: int) -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Linear(n_features_in, self.hidden), torch.nn.Tanh(), torch.nn.Linear(self.hidden, n_outputs)
        )


mlp = MLP()


@pytest.fixture(scope="session")
def three_classes() -> tuple[np.ndarray, np.ndarray]:
    """A learnable 3-class task on 4 features, with string labels."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 4)).astype(np.float32)
    index = (features[:, 0] > 0).astype(int) + (features[:, 1] > 0.5).astype(int)
    return features, np.array(["low", "mid", "high"])[index]  # classes_ sort them otherwise: high, low, mid


@pytest.fixture(scope="session")
def table(three_classes) -> pd.DataFrame:
    """The 3-class task as a DataFrame with a label column and a shuffled, non-default index."""
    features, labels = three_classes
    frame = pd.DataFrame(features, columns=FEATURES).assign(y=labels)
    return frame.set_index(np.random.default_rng(1).permutation(len(frame)) * 10)
