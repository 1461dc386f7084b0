"""The README's code runs as written (on generated data)."""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

import workbench as wb

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def write_events(folder: Path) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for part in range(3):
        pd.DataFrame(
            {"x1": rng.random(100), "x2": rng.random(100), "label": rng.integers(0, 2, 100), "other": "text"}
        ).to_parquet(folder / f"part-{part}.parquet")


def test_readme_tour_runs(tmp_path, monkeypatch, no_context):
    write_events(tmp_path / "events")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_blocks()[0], str(README), "exec"), namespace)
    assert len(namespace["history"]) == 3 and 0 <= namespace["scores"]["accuracy"] <= 1
    assert len(namespace["predictions"].compute()) == 300, "one prediction per row"
    assert (namespace["restored"].get_weights() == namespace["est"].get_weights()).all()
    assert namespace["ctx"].closed


def test_readme_keras_sklearn_and_transfer_examples_run(tmp_path, monkeypatch, context):
    write_events(tmp_path / "events")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(200, 2)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    pretrained = wb.Estimator.from_torch(
        lambda: torch.nn.Sequential(OrderedDict(features=torch.nn.Linear(2, 16), classifier=torch.nn.Linear(16, 3))),
        loss="cross_entropy",
    )
    pretrained.fit((features, labels), epochs=1, batch_size=64, verbose=False)
    pretrained.save("model_dir")
    namespace = {"df": wb.data.read_parquet("events"), "X": features, "y": labels, "X_new": features, "y_new": 1 - labels}
    exec(compile(readme_blocks()[1], str(README), "exec"), namespace)
    assert namespace["est"].history_ is not None and len(namespace["est"].history_) == 3
    assert namespace["clf"].classes_.tolist() == [0, 1]


def write_feature_inputs(folder: Path) -> None:
    """The files the feature-engineering example reads: text and image folders, a CSV of 3 stations."""
    rng = np.random.default_rng(2)
    words = {"billing": "invoice charge refund payment", "delivery": "parcel courier late tracking"}
    for label, vocabulary in words.items():
        (folder / "intents" / label).mkdir(parents=True)
        for index in range(10):
            text = " ".join(rng.choice(vocabulary.split(), size=8)) + "?"
            (folder / "intents" / label / f"{index}.txt").write_text(text.capitalize())
    for label, channel in (("red", 0), ("blue", 2)):
        (folder / "photos" / label).mkdir(parents=True)
        for index in range(6):
            pixels = rng.integers(0, 60, size=(40, 40, 3), dtype=np.uint8)
            pixels[..., channel] = 200
            Image.fromarray(pixels).save(folder / "photos" / label / f"{index}.png")
    times = pd.date_range("2026-01-01", periods=400, freq="h")
    pd.concat(
        pd.DataFrame({"time": times, "station": station, "load": np.sin(np.arange(400) / 4) + rng.normal(0, 0.1, 400)})
        for station in ("a", "b", "c")
    ).to_csv(folder / "load.csv", index=False)


def test_readme_feature_engineering_example_runs(tmp_path, monkeypatch, no_context):
    write_feature_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_blocks()[2], str(README), "exec"), namespace)
    assert namespace["X_text"].shape[1] == 50 and len(namespace["X_text"]) == len(namespace["y_text"]) > 0
    assert namespace["X_images"].shape == (12, 3, 32, 32)
    # 400 hours per station: 320 train, 40 validation, 40 test; windows of 24 hours + 1 to forecast
    assert namespace["X_ts"].shape == (3 * (320 - 24), 24, 3)  # load, HOUR, WEEKDAY
    assert namespace["y_test"].shape == (3 * (40 - 24), 1, 1)
    assert (tmp_path / "word_index.json").exists()


def make_served_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def test_readme_serving_examples_run(tmp_path, monkeypatch, context, redis_url):
    from workbench.serving import serve_queue

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    columns = ["x0", "x1", "x2", "x3"]
    table = pd.DataFrame(rng.normal(size=(400, 4)).astype(np.float32), columns=columns)
    table["label"] = (table["x0"] > 0).astype(np.int64) + (table["x1"] > 0.5).astype(np.int64)
    trained = wb.Estimator.from_torch(make_served_model, optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.02},
                                      loss="cross_entropy")
    trained.fit(table, feature_cols=columns, label_cols="label", epochs=3, batch_size=64, verbose=False)
    trained.save("model")
    X = table[columns].to_numpy()
    namespace = {"make_model": make_served_model, "X": X, "X_val": X[:200], "y_val": table["label"].to_numpy()[:200],
                 "df": wb.data.from_pandas(table)}
    exec(compile(readme_blocks()[3], str(README), "exec"), namespace)
    assert namespace["scores"].shape == (32, 3)
    assert namespace["fast"].optimization_report_.metric == "accuracy" and (tmp_path / "model-int8.onnx").is_file()
    assert len(namespace["predictions"].compute()) == len(table)

    namespace["x"] = X[7]
    with serve_queue(namespace["model"], redis_url):
        exec(compile(readme_blocks()[4].replace("redis://127.0.0.1:6379", redis_url), str(README), "exec"), namespace)
    np.testing.assert_allclose(namespace["y"], namespace["scores"][7], rtol=1e-5, atol=1e-6)
