"""A small CNN and a synthetic image task for the transfer-learning tests.

Images are 8x8 noise with one brighter 4x4 quadrant; the pre-training task is which quadrant
(4 classes, numbered row by row), the transfer task whether it is on the left (2 classes).
"""

from __future__ import annotations

import os
from collections import OrderedDict

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def quadrant_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images of shape (count, 8, 8), quadrant labels 0..3)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(count, 8, 8)).astype(np.float32)
    quadrants = rng.integers(0, 4, size=count)
    for image, quadrant in zip(images, quadrants):
        row, col = divmod(int(quadrant), 2)
        image[4 * row : 4 * row + 4, 4 * col : 4 * col + 4] += 1.5
    return images, quadrants


def is_left(quadrants: np.ndarray) -> np.ndarray:
    """The transfer task's labels: 1 where the bright quadrant is on the left."""
    return (quadrants % 2 == 0).astype(np.int64)


def make_cnn() -> torch.nn.Module:
    """conv -> relu -> pool -> flatten -> features (16) -> classifier (4), for (n, 1, 8, 8) images."""
    nn = torch.nn
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(1, 8, 3, padding=1), relu=nn.ReLU(), pool=nn.MaxPool2d(2), flatten=nn.Flatten(),
        features=nn.Linear(8 * 4 * 4, 16), classifier=nn.Linear(16, 4),
    ))


def make_keras_cnn():
    """The same CNN in Keras, for (n, 8, 8, 1) images."""
    import keras

    layers = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1)), layers.Conv2D(8, 3, padding="same", name="conv"), layers.ReLU(name="relu"),
        layers.MaxPooling2D(name="pool"), layers.Flatten(name="flatten"), layers.Dense(16, name="features"),
        layers.Dense(4, name="classifier"),
    ])
