"""The transfer-learning scenario on a real cluster, Keras (shorter than the PyTorch one)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.nets import Net  # noqa: E402

from .conftest import is_left, make_keras_cnn, quadrant_images  # noqa: E402


def training() -> dict:
    """Estimator arguments for both trainings (a fresh loss object each time)."""
    return {"optimizer": "adam", "optimizer_kwargs": {"learning_rate": 0.01}, "metrics": ["accuracy"],
            "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}


def test_fine_tune_a_saved_keras_estimator_with_a_new_head(context, tmp_path):
    images, quadrants = quadrant_images(1600, seed=0)
    full = wb.Estimator.from_keras(make_keras_cnn, **training())
    full.fit((images[..., None], quadrants), epochs=3, batch_size=64, verbose=False)
    full.save(tmp_path / "quadrants")

    net = Net.load(tmp_path / "quadrants", framework="keras")
    model = net.cut(at="features").freeze(up_to="conv").append(keras.layers.Dense(2)).model
    frozen = [w.copy() for w in model.get_layer("conv").get_weights()]
    tuned = wb.Estimator.from_keras(model, **training())
    images, quadrants = quadrant_images(1600, seed=1)
    tuned.fit((images[..., None], is_left(quadrants)), epochs=3, batch_size=64, verbose=False)

    after = tuned.model_.get_layer("conv").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(after, frozen))
    assert all(np.array_equal(a, b) for a, b in zip(after, full.model_.get_layer("conv").get_weights()))
    test_images, test_quadrants = quadrant_images(400, seed=2)
    assert tuned.evaluate((test_images[..., None], is_left(test_quadrants)))["accuracy"] >= 0.9
    full_size, tuned_size = full.get_weights().size, tuned.get_weights().size
    print(f"\nKeras parameters per server step: full model {full_size}, fine-tuning {tuned_size}")
    assert full_size == 80 + 2064 + 68 and tuned_size == 2064 + 34
