"""Result views: their numbers (checked against scikit-learn), sampling, HTML, and bad input."""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import classification_report, mean_absolute_error, mean_squared_error, r2_score

import workbench as wb

from workbench.widgets.results import (
    show_classification,
    show_forecast,
    show_recommendations,
    show_regression,
)

rng = np.random.default_rng(7)
TRUTH = rng.integers(0, 4, 500)
PREDICTED = np.where(rng.random(500) < 0.7, TRUTH, rng.integers(0, 4, 500))
PREDICTED[PREDICTED == 3] = 2  # class 3 is never predicted: precision 0, as sklearn's zero_division


def test_classification_numbers_equal_sklearn_and_save(tmp_path):
    names = {0: "cat", 1: "dog", 2: "owl", 3: "eel"}
    view = show_classification(pd.Series(TRUTH), PREDICTED, labels=names)

    report = classification_report(TRUTH, PREDICTED, output_dict=True, zero_division=0)
    for value, name in names.items():
        for column in ("precision", "recall", "f1-score", "support"):
            assert view.table_.loc[name, column] == pytest.approx(report[str(value)][column])
    for average in ("macro avg", "weighted avg"):
        assert view.table_.loc[average].to_numpy() == pytest.approx(list(report[average].values()))
    assert view.accuracy_ == pytest.approx(report["accuracy"])
    assert view.confusion_matrix_.loc["eel", "owl"] == ((TRUTH == 3) & (PREDICTED == 2)).sum()
    assert view.sample_size_ is None
    page = view.save(tmp_path / "report.html").read_text()
    assert "Confusion matrix" in page and "Bokeh.embed" in page and "weighted avg" in page


def test_misclassified_texts_and_images():
    texts = np.array([f"text {i}" for i in range(500)])
    view = show_classification(TRUTH, PREDICTED, examples=texts, max_examples=5)
    table = next(p for p in view.parts if isinstance(p, pd.DataFrame) and "example" in p.columns)
    assert len(table) == 5 and (TRUTH[view.misclassified_] != PREDICTED[view.misclassified_]).all()
    assert list(table["example"]) == [f"text {i}" for i in view.misclassified_]

    images = rng.random((500, 8, 8)).astype(np.float32)
    view = show_classification(TRUTH, PREDICTED, examples=images, max_examples=10)
    grid = next(p for p in view.parts if isinstance(p, Image.Image))
    assert grid.size == (8 * 66, 2 * 78)  # 10 images: 8 columns, 2 rows of 64 + gap + caption


def test_misclassified_images_from_an_imageset(tmp_path):
    images = wb.feature.ImageSet.read(wb.datasets.write_image_folder(tmp_path / "digits"), mode="L")
    _, truth = images.to_arrays()
    predicted = truth.copy()
    predicted[[3, 50, 700]] = (truth[[3, 50, 700]] + 1) % 10
    view = show_classification(truth, predicted, examples=images)
    assert sorted(view.misclassified_) == [3, 50, 700]
    grid = next(p for p in view.parts if isinstance(p, Image.Image))
    assert grid.size == (3 * 66, 78)  # three 8x8 digits, each in a 64-pixel tile with its caption


def test_a_list_of_names_labels_integer_coded_classes():
    view = show_classification([0, 1, 1, 0], [0, 1, 0, 0], labels=["negative", "positive"])
    assert list(view.confusion_matrix_.index) == ["negative", "positive"]
    assert view.confusion_matrix_.loc["positive", "negative"] == 1


def test_large_dask_input_is_sampled_and_says_so():
    truth = da.from_array(np.tile(TRUTH, 10), chunks=1000)
    predicted = dd.from_pandas(pd.Series(np.tile(PREDICTED, 10)), npartitions=3)
    view = show_classification(truth, predicted, sample_size=1000)
    assert view.sample_size_ == 1000 and view.rows_ == 5000
    assert "random sample of 1,000 of 5,000 rows" in view.title
    assert view.confusion_matrix_.to_numpy().sum() == 1000
    # the same rows of both inputs were sampled (unrelated rows would agree a quarter of the time)
    assert view.accuracy_ == pytest.approx((TRUTH == PREDICTED).mean(), abs=0.05)


def test_regression_summary_equals_sklearn(tmp_path):
    truth = rng.normal(size=300)
    predicted = truth + rng.normal(scale=0.3, size=300)
    view = show_regression(dd.from_array(truth, chunksize=100), predicted)
    assert view.summary_["MAE"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert view.summary_["RMSE"] == pytest.approx(np.sqrt(mean_squared_error(truth, predicted)))
    assert view.summary_["R2"] == pytest.approx(r2_score(truth, predicted))
    assert "Predicted vs actual" in view.save(tmp_path / "r.html").read_text()


def test_forecast_marks_anomalies_and_horizon():
    history = np.sin(np.arange(100) / 5)
    flags = np.zeros(100, dtype=bool)
    flags[[10, 60]] = True
    time = pd.date_range("2024-01-01", periods=110, freq="D")
    view = show_forecast(history, np.zeros(10), anomalies=flags, time=time)
    assert list(view.anomalies_["time"]) == [time[10], time[60]]
    assert (view.frame_["kind"] == "forecast").sum() == 10
    assert view.frame_["time"].iloc[-1] == time[-1]


def test_recommendations_table_top_k():
    recs = pd.DataFrame({"user": [1, 1, 1, 2, 2], "item": [10, 11, 12, 10, 13],
                         "score": [0.9, 0.8, 0.1, 0.7, 0.6], "rank": [1, 2, 3, 1, 2]})
    view = show_recommendations(recs, k=2)
    assert view.table_.loc[1, "1"] == "10 (0.900)" and view.table_.loc[2, "2"] == "13 (0.600)"
    assert list(view.table_.columns) == ["1", "2"]
    assert list(show_recommendations(recs, user=2).table_.index) == [2]
    with pytest.raises(ValueError, match="user"):
        show_recommendations(recs, user=5)
    with pytest.raises(ValueError, match="rank"):
        show_recommendations(recs.drop(columns="rank"))


@pytest.mark.parametrize("call, message", [
    (lambda: show_classification([0, 1, 1], [0, 1]), "y_true has 3 rows but y_pred has 2"),
    (lambda: show_classification([0, 1, 2], [0, 1, 1], labels=[0, 1]), "not in labels"),
    (lambda: show_regression([0.0, np.nan], [0.0, 1.0]), "y_true has 1 missing"),
    (lambda: show_classification([0, 1], [0, 1], sample_size=0), "sample_size must be a positive"),
    (lambda: show_forecast([1.0, 2.0], [3.0], time=[1, 2]), "time has 2 stamps"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
