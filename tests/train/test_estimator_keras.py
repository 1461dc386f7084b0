"""Keras 3 models on the same engine: equal to a plain Keras loop, and learning for real."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.data import LocalShard  # noqa: E402
from workbench.train.plan import local_batch_sizes  # noqa: E402

from .conftest import make_keras_mlp  # noqa: E402

LOSS = "sparse_categorical_crossentropy"


def keras_reference(features, labels, ranks, global_batch, make_optimizer, epochs):
    """A plain Keras loop; each step trains on the union of every rank's local batch."""
    keras.utils.set_random_seed(0)
    model = make_keras_mlp()
    optimizer = make_optimizer()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    bounds = [r * len(features) // ranks for r in range(ranks + 1)]
    shards = [LocalShard(features[lo:hi], labels[lo:hi], r, ranks) for r, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
    sizes = local_batch_sizes(global_batch, ranks)
    for epoch in range(epochs):
        iterators = [s.batches(b, epoch=epoch, seed=0) for s, b in zip(shards, sizes)]
        for _ in range(max(s.num_batches(b) for s, b in zip(shards, sizes))):
            batches = [b for b in (next(it, None) for it in iterators) if b is not None]
            x, y = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return np.concatenate([v.numpy().reshape(-1) for v in model.trainable_variables])


def workbench_weights(features, labels, global_batch, optimizer, epochs):
    estimator = wb.Estimator.from_keras(make_keras_mlp, optimizer=optimizer,
                                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    estimator.fit((features, labels), epochs=epochs, batch_size=global_batch, verbose=False)
    return estimator.get_weights()


OPTIMIZERS = {
    "sgd-momentum": lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(learning_rate=0.01),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_one_worker_equals_a_plain_keras_loop(one_worker, classification, name):
    features, labels = classification[0][:256], classification[1][:256]
    ours = workbench_weights(features, labels, 32, OPTIMIZERS[name](), 2)
    theirs = keras_reference(features, labels, 1, 32, OPTIMIZERS[name], 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_two_workers_equal_single_process_global_batches(context, classification):
    features, labels = classification[0][:203], classification[1][:203]
    ours = workbench_weights(features, labels, 31, OPTIMIZERS["sgd-momentum"](), 2)
    theirs = keras_reference(features, labels, 2, 31, OPTIMIZERS["sgd-momentum"], 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def make_cnn():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(4),
    ])


def quadrant_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images with one brighter quadrant; the label is the quadrant."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, count)
    images = rng.normal(0, 0.3, size=(count, 8, 8, 1)).astype(np.float32)
    for quadrant in range(4):
        rows, cols = divmod(quadrant, 2)
        images[labels == quadrant, rows * 4 : rows * 4 + 4, cols * 4 : cols * 4 + 4] += 1.0
    return images, labels


def test_keras_cnn_learns_an_image_task_and_round_trips(context, tmp_path):
    train, test = quadrant_images(1600, 0), quadrant_images(400, 1)
    estimator = wb.Estimator.from_keras(make_cnn, optimizer="adam", optimizer_kwargs={"learning_rate": 0.01},
                                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                        metrics=["accuracy"])
    history = estimator.fit(train, epochs=4, batch_size=64, validation_data=test, verbose=False)
    assert history["val_accuracy"].iloc[-1] >= 0.95

    estimator.save(tmp_path / "cnn")
    assert (tmp_path / "cnn" / "model.keras").is_file() and not (tmp_path / "cnn" / "model.pkl").exists()
    restored = wb.Estimator.load(tmp_path / "cnn", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    np.testing.assert_array_equal(restored.get_weights(), estimator.get_weights())
    for name, value in estimator.optimizer_state_.items():
        np.testing.assert_array_equal(restored.optimizer_state_[name], value)
    np.testing.assert_allclose(restored.predict(test[0]).compute(), estimator.predict(test[0]).compute(), rtol=1e-6)
    assert restored.evaluate(test)["accuracy"] == pytest.approx(history["val_accuracy"].iloc[-1])
