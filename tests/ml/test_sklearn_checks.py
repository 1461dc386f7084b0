"""scikit-learn's estimator checks, run for real on the 2-worker cluster.

Every fit costs about half a second of distributed set-up, so the checks that only repeat
another one are skipped with the reason; what is left still fits several dozen models.
"""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from workbench.ml import NNClassifier, NNRegressor

from .conftest import mlp

ESTIMATORS = [
    NNClassifier(mlp, optimizer_kwargs={"lr": 0.05}, epochs=5),
    NNRegressor(mlp, optimizer_kwargs={"lr": 0.05}, epochs=5),
]

#: Checks that fail by design, per estimator class.
EXPECTED_FAILURES = {
    "NNRegressor": {
        "check_regressor_multioutput": "predictions keep the model's float32 precision; the check wants float64",
    },
}

#: Checks that refit on the same data as lists, pandas objects, ... (several fits each).
CONTAINER_CHECKS = {
    "check_classifier_data_not_an_array", "check_regressor_data_not_an_array", "check_transformer_data_not_an_array",
}
CONTAINER_REASON = "lists and pandas objects go through sklearn's validate_data, and tests/ml fits pandas data"

#: Variants of a check (keyword ``readonly_memmap``) on read-only or float32 copies of the data.
VARIANT_REASON = ("the same check on a read-only memmap or float32 copy: check_readonly_memmap_input and "
                  "check_estimators_dtypes cover those inputs")

#: NNRegressor shares NNEstimator's handling of X with NNClassifier, which runs these.
SHARED_WITH_CLASSIFIER = {
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_transformer_general",
    "check_fit2d_1feature", "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
    "check_n_features_in", "check_fit2d_predict1d", "check_methods_subset_invariance",
}


def expected_failures(estimator: Any) -> dict[str, str]:
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


def skip_reason(estimator: Any, check: Any) -> str | None:
    name = check.func.__name__
    if name in CONTAINER_CHECKS:
        return CONTAINER_REASON
    if "readonly_memmap" in check.keywords:
        return VARIANT_REASON
    if isinstance(estimator, NNRegressor) and name in SHARED_WITH_CLASSIFIER:
        return "NNEstimator code shared with NNClassifier, which runs this check"
    return None


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_estimator_checks(context, estimator, check):
    reason = skip_reason(estimator, check)
    if reason:
        pytest.skip(reason)
    check(estimator)
