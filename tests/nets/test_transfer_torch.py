"""The transfer-learning scenario on a real cluster, PyTorch.

Pre-train a CNN on "which quadrant is bright", save it, load it as a Net, keep it up to its
"features" layer, freeze the early layers, add a head for "is the bright quadrant on the left",
and fine-tune with the distributed Estimator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.nets import Net

from .conftest import is_left, make_cnn, quadrant_images

TRAINING = {"optimizer": "adam", "optimizer_kwargs": {"lr": 0.01}, "loss": "cross_entropy", "metrics": ["accuracy"]}
CONV, FEATURES, CLASSIFIER, HEAD = 8 * 9 + 8, 128 * 16 + 16, 16 * 4 + 4, 16 * 2 + 2  # parameters per layer


@pytest.fixture
def pretrained(context, tmp_path) -> tuple[wb.Estimator, Path]:
    """The CNN trained on the 4-quadrant task, and the directory ``est.save`` wrote it to."""
    images, quadrants = quadrant_images(1600, seed=0)
    estimator = wb.Estimator.from_torch(make_cnn, **TRAINING)
    estimator.fit((images[:, None], quadrants), epochs=3, batch_size=64, verbose=False)
    assert estimator.history_["accuracy"].iloc[-1] > 0.9
    directory = tmp_path / "quadrants"
    estimator.save(directory)
    return estimator, directory


def fine_tune(model: torch.nn.Module) -> wb.Estimator:
    """Train ``model`` on the left/right task; its frozen parameters must come out bit-identical
    and it must reach 90% accuracy on held-out images."""
    frozen = {name: p.detach().numpy().copy() for name, p in model.named_parameters() if not p.requires_grad}
    images, quadrants = quadrant_images(1600, seed=1)
    estimator = wb.Estimator.from_torch(model, **TRAINING)
    estimator.fit((images[:, None], is_left(quadrants)), epochs=3, batch_size=64, verbose=False)
    trained = dict(estimator.model_.named_parameters())
    assert frozen
    for name, before in frozen.items():
        assert np.array_equal(trained[name].detach().numpy(), before), name
    test_images, test_quadrants = quadrant_images(400, seed=2)
    assert estimator.evaluate((test_images[:, None], is_left(test_quadrants)))["accuracy"] >= 0.9
    return estimator


def test_fine_tune_a_saved_estimator_with_a_new_head(pretrained):
    full, directory = pretrained
    net = Net.load(directory, framework="torch", model=make_cnn)
    base = net.cut(at="features").freeze(up_to="features")
    tuned = fine_tune(base.append(torch.nn.Linear(16, 2)).model)

    for name in ("conv.weight", "conv.bias", "features.weight", "features.bias"):  # still the pre-trained ones
        assert np.array_equal(tuned.model_.get_parameter(name).detach().numpy(),
                              full.model_.get_parameter(name).detach().numpy())
    full_size, tuned_size = full.get_weights().size, tuned.get_weights().size
    print(f"\nparameters per server step: full model {full_size} ({4 * full_size} bytes), "
          f"fine-tuning {tuned_size} ({4 * tuned_size} bytes)")
    assert full_size == CONV + FEATURES + CLASSIFIER == 2212
    assert tuned_size == HEAD == 34


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_fine_tune_a_torchscript_file_keeping_features_trainable(pretrained, tmp_path):
    full, _ = pretrained
    path = tmp_path / "quadrants-script.pt"
    torch.jit.save(torch.jit.script(full.model_), path)
    net = Net.load(path)
    assert net.layer_names == ["conv", "relu", "pool", "flatten", "features", "classifier"]

    tuned = fine_tune(net.cut(at="features").freeze(up_to="conv").append(torch.nn.Linear(16, 2)).model)

    print(f"\nparameters per server step: TorchScript fine-tuning {tuned.get_weights().size}")
    assert tuned.get_weights().size == FEATURES + HEAD == 2098
