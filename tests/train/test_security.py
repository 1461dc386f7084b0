"""Loading a saved directory never runs code from its files unless the caller trusts them.

No cluster: an Estimator is saved without fitting. An attacker's file is stood in for by a
pickle that, when unpickled, creates a marker file; every refusal checks the marker is absent.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.nets import Net  # noqa: E402
from workbench.train.checkpoint import UntrustedCodeError  # noqa: E402

from .conftest import make_keras_mlp, make_mlp  # noqa: E402


class Payload:
    """Unpickling runs ``touch marker``: any code an attacker could ship in a pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "code-ran"


@pytest.fixture
def saved(tmp_path) -> tuple[wb.Estimator, Path]:
    """An unfitted PyTorch estimator (weights from seed 3, not the creator's default) and its directory."""
    estimator = wb.Estimator.from_torch(make_mlp, loss="cross_entropy", metrics=["accuracy"], seed=3)
    estimator.save(tmp_path / "saved")
    return estimator, tmp_path / "saved"


def outputs(estimator: wb.Estimator) -> np.ndarray:
    with torch.no_grad():
        return estimator.model_(torch.linspace(-1, 1, 12).reshape(3, 4)).numpy()


def test_the_payload_runs_when_unpickled(marker):
    """The refusals below are meaningful: this payload does run code once unpickled."""
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


# -- PyTorch -------------------------------------------------------------------------------------


def test_a_loss_name_and_metric_names_need_no_pickle(saved):
    _, path = saved
    assert sorted(p.name for p in path.iterdir()) == ["model.pkl", "optimizer.npz", "weights.pt", "workbench.json"]
    config = json.loads((path / "workbench.json").read_text())
    assert config["loss"] == "cross_entropy" and config["metrics"] == ["accuracy"]


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_weights_holding_code_are_refused_even_when_trusted(saved, marker, writer):
    _, path = saved
    weights = path / "weights.pt"
    if writer == "pickle":
        weights.write_bytes(pickle.dumps({"0.weight": Payload(marker)}, protocol=2))  # torch.load's own protocol
    else:
        torch.save({"0.weight": Payload(marker)}, weights)
    for trust_code in (False, True):
        with pytest.raises(UntrustedCodeError, match="weights.pt holds objects other than tensors and was refused"):
            wb.Estimator.load(path, model=make_mlp, trust_code=trust_code)
    with pytest.raises(UntrustedCodeError, match="weights.pt holds objects other than tensors"):
        Net.load(path, model=make_mlp)
    assert not marker.exists()


def test_a_pickled_model_needs_model_or_trust_code(saved, marker):
    _, path = saved
    (path / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UntrustedCodeError, match=r"model.pkl holds pickled Python code.*model=\.\.\..*trust_code=True"):
        wb.Estimator.load(path)
    assert issubclass(UntrustedCodeError, ValueError)
    wb.Estimator.load(path, model=make_mlp)  # the given model: model.pkl is never read
    assert not marker.exists()


@pytest.mark.parametrize("given", ["creator", "module"])
def test_the_given_model_gets_the_saved_weights(saved, given):
    estimator, path = saved
    restored = wb.Estimator.load(path, model=make_mlp if given == "creator" else make_mlp())
    np.testing.assert_array_equal(restored.get_weights(), estimator.get_weights())
    np.testing.assert_array_equal(outputs(restored), outputs(estimator))
    assert restored.metric_specs == ["accuracy"] and restored.backend.loss_name == "CrossEntropyLoss"


def test_trust_code_loads_the_pickled_architecture(tmp_path):
    estimator = wb.Estimator.from_torch(lambda: torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Sigmoid()))
    estimator.save(tmp_path / "saved")
    restored = wb.Estimator.load(tmp_path / "saved", trust_code=True)
    assert isinstance(restored.model_[1], torch.nn.Sigmoid)
    np.testing.assert_array_equal(restored.get_weights(), estimator.get_weights())


def test_a_pickled_loss_and_metrics_need_arguments_or_trust_code(tmp_path, marker):
    def halved_mse(output, target):
        return torch.nn.functional.mse_loss(output, target) / 2

    def mean_output(output, target):
        return float(output.mean())

    wb.Estimator.from_torch(make_mlp, loss=halved_mse, metrics=["mae", mean_output]).save(tmp_path / "saved")
    path = tmp_path / "saved"
    for name in ("loss.pkl", "metrics.pkl"):
        (path / name).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UntrustedCodeError, match="loss.pkl holds pickled Python code.*pass loss="):
        wb.Estimator.load(path, model=make_mlp)
    with pytest.raises(UntrustedCodeError, match="metrics.pkl holds pickled Python code.*pass metrics="):
        wb.Estimator.load(path, model=make_mlp, loss=halved_mse)
    restored = wb.Estimator.load(path, model=make_mlp, loss=halved_mse, metrics=["mae", mean_output])
    assert restored.metric_specs == ["mae", mean_output]
    assert not marker.exists()


def test_net_load_of_a_saved_directory_follows_the_same_rule(saved, marker):
    estimator, path = saved
    trusted = Net.load(path, trust_code=True)
    (path / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UntrustedCodeError, match="model.pkl holds pickled Python code"):
        Net.load(path)
    given = Net.load(path, framework="torch", model=make_mlp)
    assert not marker.exists()
    for net in (trusted, given):
        assert torch.equal(net.model[0].weight, estimator.model_[0].weight)


# -- damaged and missing files --------------------------------------------------------------------


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


@pytest.mark.parametrize("name, damage", [
    ("workbench.json", lambda file: file.write_text('{"format_version": 1, "backend"')),
    ("weights.pt", truncate),
    ("optimizer.npz", truncate),
    ("optimizer.npz", lambda file: file.write_bytes(pickle.dumps(Payload(file.with_name("code-ran"))))),
    ("model.pkl", truncate),
])
def test_a_damaged_file_is_named(saved, name, damage):
    _, path = saved
    damage(path / name)
    with pytest.raises(ValueError, match=f"cannot load {re.escape(str(path / name))}") as raised:
        wb.Estimator.load(path, model=None if name == "model.pkl" else make_mlp, trust_code=True)
    assert not isinstance(raised.value, UntrustedCodeError)
    assert not (path / "code-ran").exists()


@pytest.mark.parametrize("name", ["weights.pt", "optimizer.npz", "model.pkl", "workbench.json"])
def test_a_missing_file_is_named(saved, name):
    _, path = saved
    (path / name).unlink()
    with pytest.raises(FileNotFoundError, match=name):
        wb.Estimator.load(path, model=None if name == "model.pkl" else make_mlp)


def test_weights_of_another_architecture_are_reported(saved):
    _, path = saved
    with pytest.raises(ValueError, match=r"(?s)cannot load .*weights.pt: .*size mismatch"):
        wb.Estimator.load(path, model=lambda: make_mlp(hidden=8))


# -- Keras ---------------------------------------------------------------------------------------


def test_keras_with_a_loss_name_loads_without_arguments(tmp_path):
    estimator = wb.Estimator.from_keras(make_keras_mlp, loss="mse", metrics=["mae"])
    estimator.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["model.keras", "optimizer.npz", "workbench.json"]
    restored = wb.Estimator.load(tmp_path / "saved")
    np.testing.assert_array_equal(restored.get_weights(), estimator.get_weights())


def test_keras_with_a_loss_function_needs_loss_or_trust_code(tmp_path, marker):
    import keras

    def doubled_mse(y_true, y_pred):
        return 2 * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    estimator = wb.Estimator.from_keras(make_keras_mlp, loss=doubled_mse)
    estimator.save(tmp_path / "saved")
    trusted = wb.Estimator.load(tmp_path / "saved", trust_code=True)
    (tmp_path / "saved" / "loss.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UntrustedCodeError, match="loss.pkl holds pickled Python code.*pass loss="):
        wb.Estimator.load(tmp_path / "saved")
    given = wb.Estimator.load(tmp_path / "saved", loss=doubled_mse)
    assert not marker.exists()
    for restored in (trusted, given):
        assert restored.backend.loss_name == "doubled_mse"
        np.testing.assert_array_equal(restored.get_weights(), estimator.get_weights())


def test_keras_code_in_the_model_file_needs_model_or_trust_code(tmp_path):
    import keras

    def make_scaled():
        return keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: 2 * x), keras.layers.Dense(3)])

    estimator = wb.Estimator.from_keras(make_scaled, loss="mse")
    estimator.save(tmp_path / "saved")
    with pytest.raises(UntrustedCodeError, match=r"model.keras holds Python code .*model=\.\.\..*trust_code=True"):
        wb.Estimator.load(tmp_path / "saved")
    with pytest.raises(UntrustedCodeError, match="model.keras holds Python code"):
        Net.load(tmp_path / "saved")
    for restored in (wb.Estimator.load(tmp_path / "saved", model=make_scaled),
                     wb.Estimator.load(tmp_path / "saved", trust_code=True)):
        np.testing.assert_array_equal(restored.get_weights(), estimator.get_weights())
    assert Net.load(tmp_path / "saved", model=make_scaled).framework == "keras"
    with pytest.raises(ValueError, match="model= rebuilds the model of a saved Workbench directory"):
        Net.load(tmp_path / "saved" / "model.keras", model=make_scaled)


@pytest.mark.parametrize("given", [None, make_keras_mlp])
def test_a_damaged_keras_file_is_named(tmp_path, given):
    wb.Estimator.from_keras(make_keras_mlp, loss="mse").save(tmp_path / "saved")
    truncate(tmp_path / "saved" / "model.keras")
    with pytest.raises(ValueError, match="cannot load .*model.keras"):
        wb.Estimator.load(tmp_path / "saved", model=given)
