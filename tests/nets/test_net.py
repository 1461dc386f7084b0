"""Net without a cluster: summary, cut, freeze, append, loading and their errors."""

from __future__ import annotations

import os
import zipfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cloudpickle  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.nets import Net  # noqa: E402

from .conftest import make_cnn, make_keras_cnn  # noqa: E402

NAMES = ["conv", "relu", "pool", "flatten", "features", "classifier"]
jit_deprecated = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def images(count: int = 3) -> torch.Tensor:
    return torch.randn(count, 1, 8, 8)


# -- summary -----------------------------------------------------------------------------------


def test_torch_summary_lists_layers_in_call_order_with_shapes_from_an_example():
    net = Net(make_cnn()).freeze(up_to="pool")
    table = net.summary(np.zeros((2, 1, 8, 8)))

    assert list(table.index) == NAMES
    assert table.loc["pool", "output_shape"] == (2, 8, 4, 4)
    assert table.loc["features", "output_shape"] == (2, 16)
    assert table["params"].tolist() == [80, 0, 0, 0, 2064, 68]
    assert table["trainable"].tolist() == [False, False, False, False, True, True]
    assert net.summary()["output_shape"].isna().all()  # no example, no shapes
    assert "2,212 parameters, 2,132 trainable" in repr(net) and "classifier" in repr(net)


def test_torch_summary_keeps_training_flags_and_lists_parameters_used_directly():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(4))
            self.dropout = torch.nn.Dropout(0.5)
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.linear(self.dropout(x * self.scale))

    model = Scaled().train()
    table = Net(model).summary(torch.ones(5, 4))
    assert list(table.index) == ["scale", "dropout", "linear"]
    assert table.loc["scale", "type"] == "Parameter" and table.loc["scale", "params"] == 4
    assert model.dropout.training


def test_keras_summary_lists_layers_with_graph_shapes():
    net = Net(make_keras_cnn()).freeze(up_to="conv")
    table = net.summary()

    assert list(table.index) == NAMES
    assert table.loc["features", "output_shape"] == (None, 16)
    assert table.loc["conv", "params"] == 80
    assert table["trainable"].tolist() == [False, False, False, False, True, True]


# -- cut, freeze, append -------------------------------------------------------------------------


def test_torch_cut_computes_up_to_the_layer_and_holds_only_its_parameters():
    model = make_cnn()
    cut = Net(model).cut(at="features")
    x = images()

    assert cut.layer_names == NAMES[:-1]
    assert torch.equal(cut.model(x), model[:-1](x))
    assert {name for name, _ in cut.model.named_parameters()} == {"conv.weight", "conv.bias", "features.weight",
                                                                   "features.bias"}


def test_keras_cut_computes_up_to_the_layer():
    model = make_keras_cnn()
    cut = Net(model).cut(at="features")
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype(np.float32)

    expected = keras.Model(model.inputs[0], model.get_layer("features").output)(x)
    np.testing.assert_array_equal(cut.model(x), expected)
    assert cut.layer_names[-1] == "features"


def test_torch_freeze_and_unfreeze_set_requires_grad():
    net = Net(make_cnn())
    model = net.model

    net.freeze(up_to="features")
    assert [p.requires_grad for p in model.parameters()] == [False, False, False, False, True, True]
    net.unfreeze("conv")
    assert model.conv.weight.requires_grad and not model.features.weight.requires_grad
    net.freeze()
    assert not any(p.requires_grad for p in model.parameters())
    net.unfreeze()
    assert all(p.requires_grad for p in model.parameters())


def test_append_adds_a_trainable_head_named_as_asked():
    torch_net = Net(make_cnn()).cut(at="features").freeze().append(torch.nn.ReLU(), torch.nn.Linear(16, 2))
    table = torch_net.summary(images())
    assert list(table.index[-2:]) == ["head.0", "head.1"]
    assert table.loc["head.1", "output_shape"] == (3, 2) and table["trainable"].sum() == 1

    keras_net = Net(make_keras_cnn()).cut(at="features").append(keras.layers.Dense(2), name="task")
    assert keras_net.summary().loc["task", "output_shape"] == (None, 2)


class AnnotatedMLP(torch.nn.Module):
    """A model whose forward has annotations, which this module's future import leaves as strings."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


def test_a_cut_model_with_string_annotations_can_be_sent_to_workers():
    cut = Net(AnnotatedMLP()).cut(at="hidden").append(torch.nn.Linear(8, 3)).model
    copy = cloudpickle.loads(cloudpickle.dumps(cut))
    assert copy(torch.ones(5, 4)).shape == (5, 3)


def test_a_fully_frozen_net_is_refused_by_the_estimator():
    with pytest.raises(ValueError, match="no trainable parameters"):
        wb.Estimator.from_torch(Net(make_cnn()).freeze().model)
    with pytest.raises(ValueError, match="no trainable parameters"):
        wb.Estimator.from_keras(Net(make_keras_cnn()).freeze().model)


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make_model", [make_cnn, make_keras_cnn])
def test_unknown_layer_names_list_the_known_ones(make_model):
    net = Net(make_model())
    for call in (lambda: net.cut(at="fetaures"), lambda: net.freeze(up_to="fetaures"),
                 lambda: net.unfreeze(["conv", "fetaures"])):
        with pytest.raises(ValueError, match="unknown layer 'fetaures'; the layers are: .*features, classifier"):
            call()


def test_cut_refuses_a_layer_whose_output_is_not_one_call():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.shared(self.shared(x))

    with pytest.raises(ValueError, match="cannot cut at 'shared'.*calls it 2 times"):
        Net(Twice()).cut(at="shared")

    dense = keras.layers.Dense(4, name="shared")
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="cannot cut at 'shared'.*calls it 2 times"):
        Net(keras.Model(inputs, dense(dense(inputs)))).cut(at="shared")


def test_an_untraceable_torch_model_explains_why_and_can_still_be_frozen():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.linear(x) if x.sum() > 0 else x

    net = Net(Branchy())
    with pytest.raises(ValueError, match="torch.fx cannot trace Branchy"):
        net.summary()
    assert "torch.fx cannot trace" in repr(net)
    net.freeze()
    assert not net.model.linear.weight.requires_grad


def test_append_refuses_the_other_framework_and_taken_names():
    net = Net(make_cnn())
    with pytest.raises(TypeError, match="torch.nn.Module layers, not Dense"):
        net.append(keras.layers.Dense(2))
    with pytest.raises(TypeError, match="Keras layers, not Linear"):
        Net(make_keras_cnn()).append(torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="'features' exists already"):
        net.append(torch.nn.Linear(4, 2), name="features")
    with pytest.raises(ValueError, match="cannot name the appended layers 'forward'"):
        net.append(torch.nn.Linear(4, 2), name="forward")
    with pytest.raises(ValueError, match="at least one layer"):
        net.append()
    with pytest.raises(TypeError, match="not ndarray"):
        Net(np.zeros(3))


# -- loading --------------------------------------------------------------------------------------


@jit_deprecated
def test_torchscript_sequential_keeps_its_layers(tmp_path):
    model = make_cnn()
    path = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.script(model), path)

    net = Net.load(path, framework="torch")
    net.freeze(up_to="conv")
    table = net.summary(images())
    assert list(table.index) == NAMES
    assert table.loc["features", "type"] == "Linear" and table.loc["features", "output_shape"] == (3, 16)
    assert table["trainable"].tolist() == [False, False, False, False, True, True]
    x = images()
    assert torch.allclose(net.cut(at="features").model(x), model[:-1](x))


@jit_deprecated
def test_torchscript_model_of_another_kind_is_one_layer_that_pickles_with_its_flags(tmp_path):
    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 4)

        def forward(self, x):
            return x + self.linear(x)

    path = tmp_path / "residual.pt"
    torch.jit.save(torch.jit.script(Residual()), path)
    net = Net.load(path).freeze()
    assert net.layer_names == ["script"]

    model = net.append(torch.nn.Linear(4, 2)).model
    estimator = wb.Estimator.from_torch(model, loss="mse")  # the estimator pickles the model
    assert estimator.get_weights().size == 10
    copy = cloudpickle.loads(cloudpickle.dumps(model))
    x = torch.randn(2, 4)
    assert torch.equal(copy(x), model(x))
    assert [p.requires_grad for p in copy.parameters()] == [False, False, True, True]


@jit_deprecated
def test_files_are_recognised_by_content(tmp_path):
    make_keras_cnn().save(tmp_path / "cnn.h5")
    make_keras_cnn().save(tmp_path / "cnn.keras")
    (tmp_path / "cnn.keras").rename(tmp_path / "keras.pt")
    torch.jit.save(torch.jit.script(make_cnn()), tmp_path / "torchscript.keras")

    assert Net.load(tmp_path / "cnn.h5").framework == "keras"
    assert Net.load(tmp_path / "torchscript.keras").framework == "torch"
    with pytest.raises(ValueError, match="keras.pt is a Keras model file, but Keras loads it only under a .keras name"):
        Net.load(tmp_path / "keras.pt")


@jit_deprecated
def test_a_model_of_the_other_framework_is_named(tmp_path):
    make_keras_cnn().save(tmp_path / "cnn.keras")
    torch.jit.save(torch.jit.script(make_cnn()), tmp_path / "cnn.pt")
    with pytest.raises(ValueError, match=r"cnn.keras holds a keras model, not a torch one"):
        Net.load(tmp_path / "cnn.keras", framework="torch")
    with pytest.raises(ValueError, match=r"cnn.pt holds a torch model, not a keras one"):
        Net.load(tmp_path / "cnn.pt", framework="keras")


def test_unloadable_paths_are_named(tmp_path):
    torch.save(make_cnn(), tmp_path / "pickled.pt")
    (tmp_path / "notes.txt").write_text("not a model")
    make_keras_cnn().save(tmp_path / "cnn.keras")
    with zipfile.ZipFile(tmp_path / "cnn.keras") as archive, zipfile.ZipFile(tmp_path / "broken.keras", "w") as broken:
        broken.writestr("config.json", archive.read("config.json"))  # the weights are missing
    (tmp_path / "empty").mkdir()

    cases = {
        "missing.pt": (FileNotFoundError, "no model at .*missing.pt"),
        "pickled.pt": (ValueError, "pickled.pt is a torch.save\\(\\) file .*torch.jit.save"),
        "notes.txt": (ValueError, "notes.txt is not a model Net can load"),
        "broken.keras": (ValueError, "cannot load .*broken.keras \\(a Keras model file\\)"),
        "empty": (ValueError, "empty is a directory but not a saved Workbench model"),
    }
    for name, (error, message) in cases.items():
        with pytest.raises(error, match=message):
            Net.load(tmp_path / name)
    with pytest.raises(ValueError, match="framework must be"):
        Net.load(tmp_path / "cnn.keras", framework="tf")


def test_a_saved_estimator_directory_loads_without_a_cluster(tmp_path):
    estimator = wb.Estimator.from_torch(make_cnn, loss="cross_entropy")
    estimator.save(tmp_path / "cnn")
    net = Net.load(tmp_path / "cnn", model=make_cnn)
    assert net.layer_names == NAMES
    assert torch.equal(net.model.conv.weight, estimator.model_.conv.weight)
