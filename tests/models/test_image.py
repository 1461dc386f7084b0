"""ImageClassifier on the real handwritten digits, trained on a 2-worker cluster.

Accuracy on held-out digits, saving and reloading without code, transfer learning with ``Net``
(pre-train on the digits 0-4, reuse the frozen early blocks for the digits 5-9), and bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.datasets.tabular import digits, write_image_folder
from workbench.feature import ImageSet
from workbench.feature.image import ToCHW, ToFloat
from workbench.models.image import ImageClassifier
from workbench.nets import Net

DIGITS = (1, 8, 8)


@pytest.fixture(scope="module")
def split() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train, test) digits: 1400 and 397 images, shuffled with a fixed seed."""
    images, labels = digits(as_images=True)
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:1400], order[1400:]
    return (images[train], labels[train]), (images[test], labels[test])


def test_cnn_classifies_held_out_digits_and_reloads_without_code(context, split, tmp_path):
    train, test = split
    model = ImageClassifier(class_num=10, input_shape=DIGITS, backbone="cnn", width=0.5)
    estimator = model.estimator(lr=3e-3)
    estimator.fit(train, epochs=4, batch_size=64, verbose=False)
    accuracy = estimator.evaluate(test)["accuracy"]
    print(f"\ncnn held-out accuracy: {accuracy:.3f}")
    assert accuracy >= 0.95

    estimator.save(tmp_path / "digits")
    loaded = wb.Estimator.load(tmp_path / "digits")  # rebuilt from its config: no model=, no trust_code
    assert isinstance(loaded.model_, ImageClassifier) and loaded.model_.config == model.config
    np.testing.assert_allclose(loaded.predict(test[0]).compute(), estimator.predict(test[0]).compute(), atol=1e-5)


def test_mobilenet_learns_digits(context, split):
    train, test = split
    estimator = ImageClassifier(10, DIGITS, backbone="mobilenet", width=0.5).estimator(lr=3e-3)
    estimator.fit(train, epochs=3, batch_size=64, verbose=False)
    accuracy = estimator.evaluate(test)["accuracy"]
    print(f"\nmobilenet held-out accuracy: {accuracy:.3f}")
    assert accuracy >= 0.85


def test_transfer_the_frozen_early_blocks_to_new_digits(context, split, tmp_path):
    (images, labels), _ = split
    first = labels < 5
    pretrained = ImageClassifier(5, DIGITS, width=0.5).estimator(lr=3e-3)
    pretrained.fit((images[first], labels[first]), epochs=3, batch_size=64, verbose=False)
    pretrained.save(tmp_path / "first-five")

    net = Net.load(tmp_path / "first-five")
    assert net.layer_names[-4:] == ["pool", "flatten", "classifier.dropout", "classifier.linear"]
    base = net.cut(at="flatten").freeze(up_to="features.block2.pool")
    model = base.append(torch.nn.Linear(net.model.feature_dim, 5)).model
    frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(name.startswith(("features.block1.", "features.block2.")) for name in frozen)

    # the new task's images come through ImageSet, as a user's own image folder would
    folder = ImageSet.read(write_image_folder(tmp_path / "images"), mode="L").transform(ToFloat() >> ToCHW())
    new_images, new_labels = folder.to_arrays()
    order = np.random.default_rng(1).permutation(len(new_labels))
    last = order[new_labels[order] >= 5]
    train, test = last[:600], last[600:]
    tuned = wb.Estimator.from_torch(model, optimizer_kwargs={"lr": 3e-3}, loss="cross_entropy", metrics=["accuracy"])
    tuned.fit((new_images[train], new_labels[train] - 5), epochs=5, batch_size=64, verbose=False)

    accuracy = tuned.evaluate((new_images[test], new_labels[test] - 5))["accuracy"]
    print(f"\ntransfer (digits 0-4 -> 5-9) held-out accuracy: {accuracy:.3f} on {len(test)} images")
    assert accuracy >= 0.9
    trained = dict(tuned.model_.named_parameters())
    for name, before in frozen.items():
        assert torch.equal(trained[name], before), name
    block3_and_head = sum(p.numel() for name, p in trained.items() if not name.startswith(("features.block1.",
                                                                                             "features.block2.")))
    assert tuned.get_weights().size == block3_and_head


@pytest.mark.parametrize("arguments, error, message", [
    ({"input_shape": (8, 8)}, ValueError, r"input_shape must be \(channels, height, width\)"),
    ({"input_shape": (1, 4, 4)}, ValueError, "height and width >= 8"),
    ({"input_shape": "1x8x8"}, ValueError, "input_shape must be"),
    ({"backbone": "resnet"}, ValueError, "unknown backbone 'resnet'; known: cnn, mobilenet"),
    ({"class_num": 1}, ValueError, "class_num must be at least 2"),
    ({"class_num": 2.5}, ValueError, "class_num must be a positive integer"),
    ({"width": 0}, ValueError, "width must be a positive number"),
    ({"width": "wide"}, TypeError, "width must be a number"),
    ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
])
def test_bad_arguments(arguments, error, message):
    with pytest.raises(error, match=message):
        ImageClassifier(**{"class_num": 10, **arguments})


def test_numpy_integers_are_stored_as_json_ints():
    model = ImageClassifier(np.int64(3), input_shape=tuple(np.array([1, 8, 8])))  # the config must be JSON
    assert model.config["class_num"] == 3 and model.config["input_shape"] == [1, 8, 8]


def test_images_of_another_shape_are_refused_by_name(context, split):
    (images, labels), _ = split
    estimator = ImageClassifier(10, (3, 32, 32)).estimator()
    with pytest.raises(ValueError, match=r"expects images of shape \(n, 3, 32, 32\), got \(\d+, 1, 8, 8\)"):
        estimator.fit((images, labels), epochs=1, verbose=False)
