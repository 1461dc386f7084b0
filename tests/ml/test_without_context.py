"""Without a live Workbench context, fit starts one, as a notebook's first cell would.

This module sorts last in tests/ml: it stops the shared cluster, which the tests after it
would have to start again.
"""

from __future__ import annotations

import workbench as wb
from workbench.ml import NNClassifier

from .conftest import mlp


def test_fit_starts_a_context_when_none_is_live(no_context, three_classes):
    features, labels = three_classes
    assert wb.current() is None
    NNClassifier(mlp, epochs=1).fit(features, labels)
    assert wb.current() is not None and wb.current().kind == "local"
