"""The digits and card-transaction tables: content, determinism, the image-folder round trip, bad arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.datasets.tabular import MERCHANT_CATEGORIES, card_transactions, digits, write_image_folder
from workbench.feature import ImageSet
from workbench.feature.image import ToCHW, ToFloat


def test_digits_table_holds_scikit_learns_images():
    table = digits()
    assert table.shape == (1797, 65)
    assert list(table.columns[:2]) == ["pixel_0_0", "pixel_0_1"] and table.columns[-1] == "label"
    assert (table.dtypes == np.int64).all()
    pixels = table.drop(columns="label").to_numpy()
    assert pixels.min() == 0 and pixels.max() == 16
    assert sorted(table["label"].unique()) == list(range(10))
    assert table["label"].value_counts().min() >= 170  # about 180 of each digit


def test_digit_images_are_the_table_scaled_to_one():
    table = digits()
    images, labels = digits(as_images=True)
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, table["label"].to_numpy())
    np.testing.assert_allclose(images.reshape(1797, 64), table.drop(columns="label").to_numpy() / 16, rtol=1e-6)


def test_image_folder_reads_back_with_imageset(tmp_path):
    root = write_image_folder(tmp_path / "digits")
    assert sorted(p.name for p in root.iterdir()) == [str(d) for d in range(10)]
    images = ImageSet.read(root, mode="L")
    X, y = images.transform(ToFloat() >> ToCHW()).to_arrays()
    expected, labels = digits(as_images=True)
    order = np.argsort([int(Path(path).stem) for path in images.paths])  # the file name is the row
    assert images.classes_ == [str(d) for d in range(10)]
    np.testing.assert_array_equal(y[order], labels)
    np.testing.assert_allclose(X[order], expected, atol=1 / 510 + 1e-6)


def test_image_folder_refuses_a_file(tmp_path):
    path = tmp_path / "taken"
    path.write_text("")
    with pytest.raises(ValueError, match="is a file"):
        write_image_folder(path)


def test_card_transactions_columns_sizes_and_fraud_count():
    table = card_transactions(n=2001, fraud_rate=0.05, n_components=5)
    components = [f"V{i}" for i in range(1, 6)]
    assert list(table.columns) == ["amount", "hour", "merchant_category", "distance_from_home_km",
                                   "transactions_last_hour", "transactions_last_day", *components, "is_fraud"]
    assert len(table) == 2001 and table["is_fraud"].sum() == round(2001 * 0.05)
    assert list(table["merchant_category"].cat.categories) == list(MERCHANT_CATEGORIES.index)
    assert table["hour"].between(0, 24, inclusive="left").all()
    assert (table["amount"] > 0).all() and (table["distance_from_home_km"] > 0).all()
    assert table.index.equals(pd.RangeIndex(2001))
    assert table["is_fraud"].iloc[:1000].sum() > 0 and table["is_fraud"].iloc[1000:].sum() > 0  # shuffled
    assert card_transactions(n=100, fraud_rate=0)["is_fraud"].sum() == 0


def test_card_transactions_are_seeded():
    pd.testing.assert_frame_equal(card_transactions(n=500, seed=3), card_transactions(n=500, seed=3))
    assert not card_transactions(n=500, seed=3).equals(card_transactions(n=500, seed=4))


def test_frauds_differ_from_normal_payments_but_overlap():
    table = card_transactions(n=20_000, fraud_rate=0.1)
    fraud, normal = table[table["is_fraud"] == 1], table[table["is_fraud"] == 0]
    assert fraud["amount"].median() > 2 * normal["amount"].median()
    assert fraud["distance_from_home_km"].median() > 5 * normal["distance_from_home_km"].median()
    assert fraud["V1"].mean() > normal["V1"].mean() + 0.8
    assert normal[["V1", "V2", "V3"]].mean().abs().max() < 0.05
    # each trait is fraud-like in about half of the frauds, so every one overlaps with normal payments
    far = fraud["distance_from_home_km"] > normal["distance_from_home_km"].quantile(0.99)
    assert 0.3 < far.mean() < 0.7
    night = ~fraud["hour"].between(6, 22)
    assert 0.3 < night.mean() < 0.7


@pytest.mark.parametrize("arguments, message", [
    ({"n": 0}, "n must be a positive integer"),
    ({"n": 10.5}, "n must be a positive integer"),
    ({"fraud_rate": 1.5}, "fraud_rate must be a number in"),
    ({"fraud_rate": "0.1"}, "fraud_rate must be a number in"),
    ({"n_components": 2}, "n_components must be at least 3"),
])
def test_card_transactions_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        card_transactions(**arguments)
