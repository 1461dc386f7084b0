"""Small offline tables for the image-classification and anomaly-detection use cases.

- :func:`digits`: scikit-learn's bundled handwritten digits (real data, 1797 8x8 grey images,
  no download), as a table of pixels or as an image array ready for a PyTorch CNN;
  :func:`write_image_folder` writes them as PNG files in ``root/<label>/`` for ``ImageSet.read``.
- :func:`card_transactions`: generated card payments, a small share of them fraudulent, for
  fraud detection with an autoencoder (Analytics Zoo's fraud-detection use case). The real
  data sets are not redistributable, so the generative process is written out below.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from workbench.arguments import check_positive_int

__all__ = ["digits", "write_image_folder", "card_transactions", "MERCHANT_CATEGORIES"]

#: The digits' pixel intensities run from 0 to this value.
_DIGIT_INTENSITIES = 16

#: Merchant categories of :func:`card_transactions`, with the share of normal and of fraudulent
#: payments made in each, and the typical (median) amount paid there.
MERCHANT_CATEGORIES = pd.DataFrame(
    {
        "normal_share": [0.30, 0.20, 0.15, 0.15, 0.05, 0.08, 0.05, 0.02],
        "fraud_share": [0.05, 0.05, 0.05, 0.10, 0.20, 0.25, 0.05, 0.25],
        "median_amount": [35.0, 25.0, 50.0, 60.0, 300.0, 45.0, 30.0, 250.0],
    },
    index=pd.Index(["grocery", "restaurant", "fuel", "retail", "travel", "online", "entertainment",
                    "electronics"], name="merchant_category"),
)

#: The groups of columns a fraud takes from its fraud version, each with this probability.
_FRAUD_TRAITS = (
    ["merchant_category", "amount"],
    ["hour"],
    ["distance_from_home_km"],
    ["transactions_last_hour", "transactions_last_day"],
    ["V1", "V2", "V3"],
)
_FRAUD_TRAIT_PROBABILITY = 0.5


def digits(as_images: bool = False) -> pd.DataFrame | tuple[np.ndarray, np.ndarray]:
    """The 1797 handwritten digits bundled with scikit-learn (``sklearn.datasets.load_digits``).

    Real data: 8x8 grey images of the digits 0-9 written by 13 people (the test set of UCI's
    "Optical Recognition of Handwritten Digits"), each pixel the count of ink dots, 0-16, in a
    4x4 block of the 32x32 original. The data ships with scikit-learn, so nothing is downloaded
    and the table is always the same (there is nothing random to seed).

    Args:
        as_images: return ``(images, labels)`` arrays instead of a table.

    Returns:
        A DataFrame with the pixel columns ``pixel_0_0`` ... ``pixel_7_7`` (row, column; int64
        0-16) and ``label`` (int64 0-9); or, with ``as_images``, images of shape
        ``(1797, 1, 8, 8)`` (float32 in [0, 1], channels first as PyTorch expects) and the
        labels (int64).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    if as_images:
        images = (bunch.images / _DIGIT_INTENSITIES).astype(np.float32)[:, None]
        return images, labels
    table = pd.DataFrame(bunch.data.astype(np.int64), columns=bunch.feature_names)
    table["label"] = labels
    return table


def write_image_folder(path: str | os.PathLike) -> Path:
    """Write the :func:`digits` as 8x8 grey PNG files ``path/<label>/<row>.png``; returns the folder.

    Pixels are scaled from 0-16 to 0-255, so ``ImageSet.read(path, mode="L")`` followed by
    ``ToFloat() >> ToCHW()`` gives back :func:`digits`' images (to within 1/510). The folder
    is created if missing; existing files of the same names are replaced.
    """
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"write_image_folder: {root} is a file, not a folder")
    images, labels = digits(as_images=True)
    pixels = np.rint(images[:, 0] * 255).astype(np.uint8)
    for label in np.unique(labels):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
    for row, (image, label) in enumerate(zip(pixels, labels)):
        Image.fromarray(image).save(root / str(label) / f"{row:04d}.png")
    return root


def card_transactions(n: int = 10_000, fraud_rate: float = 0.01, n_components: int = 8,
                      seed: int = 0) -> pd.DataFrame:
    """Generated card payments, ``round(n * fraud_rate)`` of them fraudulent, in shuffled order.

    How a row is made (``rng = numpy.random.default_rng(seed)``). A *normal* payment:

    - ``merchant_category``: drawn with the ``normal_share`` probabilities of
      :data:`MERCHANT_CATEGORIES`;
    - ``amount``: log-normal around the category's ``median_amount`` (log-sd 0.6), rounded to cents;
    - ``hour``: time of day in hours, normal around 14:00 (sd 3.5 h), wrapped into [0, 24);
    - ``distance_from_home_km``: log-normal with median 5 km (log-sd 1);
    - ``transactions_last_hour`` / ``transactions_last_day``: Poisson(0.3) / Poisson(4) (velocity);
    - ``V1`` ... ``V<n_components>``: anonymised, PCA-like features (as in the public
      credit-card data): ``n_components`` standard normal factors times decreasing scales
      (1 down to 0.3), so every component has mean 0 and they come ordered by variance.

    A *fraudulent* payment draws every feature as above, then replaces each of five traits by
    a fraud version with probability 0.5 each, so frauds overlap with normal payments (one in
    32 entirely): category from ``fraud_share`` and its amount 4 times larger (log-sd 1); hour
    around 03:00 (sd 2 h); distance median 150 km; velocity Poisson(2) / Poisson(12); and the
    first three ``V`` components shifted by +2.5, -2.0 and +1.5.

    Args:
        n: number of payments.
        fraud_rate: share of fraudulent payments, in [0, 1].
        n_components: number of ``V`` columns.
        seed: seed of the random generator: the same arguments give the same table.

    Returns:
        A DataFrame with the columns above and ``is_fraud`` (int64 0/1); ``merchant_category``
        is a pandas categorical (categories in :data:`MERCHANT_CATEGORIES` order).
    """
    check_positive_int("n", n)
    check_positive_int("n_components", n_components)
    if isinstance(fraud_rate, bool) or not isinstance(fraud_rate, (int, float)) or not 0 <= fraud_rate <= 1:
        raise ValueError(f"fraud_rate must be a number in [0, 1], got {fraud_rate!r}")
    if n_components < 3:
        raise ValueError(f"n_components must be at least 3 (frauds shift the first three), got {n_components}")
    rng = np.random.default_rng(seed)
    is_fraud = np.zeros(n, dtype=np.int64)
    is_fraud[: round(n * fraud_rate)] = 1
    rng.shuffle(is_fraud)

    table = _payments(rng, n, n_components, fraud=False)
    frauds = is_fraud == 1
    fraud_table = _payments(rng, int(frauds.sum()), n_components, fraud=True)
    for columns in _FRAUD_TRAITS:
        takes_trait = frauds.copy()
        takes_trait[frauds] = rng.random(int(frauds.sum())) < _FRAUD_TRAIT_PROBABILITY
        table.loc[takes_trait, columns] = fraud_table.loc[takes_trait[frauds], columns].to_numpy()
    table["merchant_category"] = pd.Categorical.from_codes(table["merchant_category"],
                                                           categories=MERCHANT_CATEGORIES.index)
    table["amount"] = table["amount"].round(2)
    table["is_fraud"] = is_fraud
    return table


def _payments(rng: np.random.Generator, n: int, n_components: int, fraud: bool) -> pd.DataFrame:
    """``n`` payments drawn from the normal (or the fraud) version of every trait; the merchant
    category as its position in :data:`MERCHANT_CATEGORIES`."""
    shares = MERCHANT_CATEGORIES["fraud_share" if fraud else "normal_share"].to_numpy()
    category = rng.choice(len(shares), size=n, p=shares)
    median = MERCHANT_CATEGORIES["median_amount"].to_numpy()[category] * (4 if fraud else 1)
    hour = rng.normal(3.0, 2.0, n) if fraud else rng.normal(14.0, 3.5, n)
    components = rng.standard_normal((n, n_components)) * np.linspace(1.0, 0.3, n_components)
    if fraud:
        components[:, :3] += [2.5, -2.0, 1.5]
    table = pd.DataFrame({
        "amount": median * np.exp(rng.normal(0.0, 1.0 if fraud else 0.6, n)),
        "hour": np.mod(hour, 24.0),
        "merchant_category": category,
        "distance_from_home_km": np.exp(rng.normal(np.log(150.0 if fraud else 5.0), 1.0, n)),
        "transactions_last_hour": rng.poisson(2.0 if fraud else 0.3, n),
        "transactions_last_day": rng.poisson(12.0 if fraud else 4.0, n),
    })
    component_names = [f"V{i + 1}" for i in range(n_components)]
    return pd.concat([table, pd.DataFrame(components, columns=component_names)], axis=1)
