"""Autoencoder and VAE, trained on a 2-worker cluster.

The fraud use case: an autoencoder trained on unlabelled card payments (99% normal) scores
held-out payments by reconstruction error, and the frauds must come out on top far more often
than chance (AUPRC at least 3 times the fraud rate). A VAE learns the real digits well enough
to reconstruct held-out ones and to generate new, varied ones. Save/load and bad input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score

import workbench as wb
from workbench.datasets.tabular import card_transactions, digits
from workbench.models.autoencoder import VAE, Autoencoder, VAELoss, reconstruction_error
from workbench.models.image import ImageClassifier

FRAUD_RATE = 0.01


def payment_features(table: pd.DataFrame) -> np.ndarray:
    """Model inputs: log amount and distance, the hour on a circle, one-hot category, the rest as is."""
    table = table.drop(columns="is_fraud")
    table[["amount", "distance_from_home_km"]] = np.log1p(table[["amount", "distance_from_home_km"]])
    angle = 2 * np.pi * table.pop("hour") / 24
    table["hour_sin"], table["hour_cos"] = np.sin(angle), np.cos(angle)
    return pd.get_dummies(table, dtype=float).to_numpy(np.float32)


@pytest.fixture(scope="module")
def payments() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unlabelled training rows, held-out rows, held-out fraud labels), standardised on the training rows."""
    table = card_transactions(n=12_000, fraud_rate=FRAUD_RATE, seed=0)
    features, is_fraud = payment_features(table), table["is_fraud"].to_numpy()
    train, test = features[:8000], features[8000:]
    mean, std = train.mean(axis=0), train.std(axis=0)
    return (train - mean) / std, (test - mean) / std, is_fraud[8000:]


@pytest.fixture(scope="module")
def digit_split() -> tuple[np.ndarray, np.ndarray]:
    """(train, test) digit images, 1400 and 397, shuffled with a fixed seed."""
    images, _ = digits(as_images=True)
    order = np.random.default_rng(0).permutation(len(images))
    return images[order[:1400]], images[order[1400:]]


def test_autoencoder_ranks_frauds_first_and_reloads(context, payments, tmp_path):
    train, test, is_fraud = payments
    model = Autoencoder(input_dim=train.shape[1])
    estimator = model.estimator(lr=3e-3)
    estimator.fit((train, train), epochs=5, batch_size=128, verbose=False)

    scores = reconstruction_error(estimator, test)
    assert scores.shape == (len(test),) and (scores >= 0).all()
    auprc = average_precision_score(is_fraud, scores)
    print(f"\nautoencoder AUPRC {auprc:.3f} ({auprc / is_fraud.mean():.0f}x the fraud rate {is_fraud.mean():.4f})")
    assert auprc >= 3 * is_fraud.mean()

    estimator.save(tmp_path / "fraud")
    loaded = wb.Estimator.load(tmp_path / "fraud")
    assert isinstance(loaded.model_, Autoencoder) and loaded.model_.config == model.config
    np.testing.assert_allclose(reconstruction_error(loaded, test), scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(reconstruction_error(loaded.model_, test), scores, rtol=1e-4, atol=1e-6)


def test_gaussian_vae_scores_frauds_too(context, payments):
    train, test, is_fraud = payments
    estimator = VAE(input_shape=train.shape[1], latent_dim=4, hidden_layers=(32, 16)).estimator(lr=3e-3)
    estimator.fit((train, train), epochs=5, batch_size=128, verbose=False)
    auprc = average_precision_score(is_fraud, reconstruction_error(estimator, test))
    print(f"\ngaussian VAE AUPRC {auprc:.3f}")
    assert auprc >= 3 * is_fraud.mean()


def test_vae_reconstructs_and_generates_digits(context, digit_split, tmp_path):
    train, test = digit_split
    model = VAE(input_shape=(1, 8, 8), latent_dim=4, likelihood="bernoulli")
    estimator = model.estimator(lr=3e-3)
    estimator.fit((train, train), epochs=20, batch_size=32, verbose=False)
    history = estimator.history_["loss"]
    assert history.iloc[-1] < 0.9 * history.iloc[0]

    errors = reconstruction_error(estimator, test)
    mean_image_errors = ((test - train.mean(axis=0)) ** 2).reshape(len(test), -1).mean(axis=1)
    ratio = errors.mean() / mean_image_errors.mean()
    print(f"\nVAE held-out reconstruction error: {ratio:.2f} of the mean image's")
    assert ratio < 0.75

    generated = estimator.model_.generate(500, seed=0)
    assert generated.shape == (500, 1, 8, 8) and generated.dtype == np.float32
    assert 0 <= generated.min() and generated.max() <= 1
    np.testing.assert_array_equal(generated, estimator.model_.generate(500, seed=0))
    assert not np.array_equal(generated, estimator.model_.generate(500, seed=1))
    # digit-like on average, and varied: the pixels spread at least half as much as the real digits'
    assert np.corrcoef(generated.mean(axis=0).ravel(), train.mean(axis=0).ravel())[0, 1] > 0.9
    spread = generated.std(axis=0).mean() / train.std(axis=0).mean()
    print(f"generated digits' pixel spread: {spread:.2f} of the real digits'")
    assert spread > 0.3  # a collapsed VAE, decoding every code to the mean digit, scores about 0.05

    estimator.save(tmp_path / "vae")
    loaded = wb.Estimator.load(tmp_path / "vae", loss=VAELoss("bernoulli"))  # the loss is an object: given again
    np.testing.assert_array_equal(loaded.model_.generate(500, seed=0), generated)
    assert loaded.evaluate((test, test))["loss"] == pytest.approx(estimator.evaluate((test, test))["loss"], rel=1e-5)


@pytest.mark.parametrize("build, error, message", [
    (lambda: Autoencoder(input_dim=0), ValueError, "input_dim must be a positive integer"),
    (lambda: Autoencoder(input_dim=10, hidden_layers=()), ValueError, "hidden_layers must be"),
    (lambda: Autoencoder(input_dim=10, hidden_layers=(8, -1)), ValueError, "hidden_layers must be"),
    (lambda: Autoencoder(input_dim=10, latent_dim=2.5), ValueError, "latent_dim must be"),
    (lambda: VAE(input_shape="8x8"), ValueError, "input_shape must be"),
    (lambda: VAE(input_shape=(1, 0, 8)), ValueError, "input_shape must be"),
    (lambda: VAE(input_shape=64, likelihood="poisson"), ValueError, "unknown likelihood 'poisson'"),
    (lambda: VAELoss("poisson"), ValueError, "unknown likelihood 'poisson'"),
    (lambda: VAE(input_shape=64).generate(0), ValueError, "n must be a positive integer"),
    (lambda: reconstruction_error(ImageClassifier(10, (1, 8, 8)), np.zeros((2, 1, 8, 8))), TypeError,
     "needs an Autoencoder or a VAE"),
])
def test_bad_arguments(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_vae_loss_needs_the_inputs_as_targets():
    output = VAE(input_shape=64, latent_dim=4)(torch.zeros(3, 64))
    assert VAELoss()(output, torch.zeros(3, 64)).ndim == 0
    with pytest.raises(ValueError, match="expects a VAE output"):
        VAELoss()(output, torch.zeros(3, 1))
