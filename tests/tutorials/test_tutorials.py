"""Every tutorial runs end to end in a fresh "Workbench (local)" kernel and reaches its headline
result; tutorials are committed without outputs.

Each tutorial's last cell displays its results as JSON (see :mod:`tests.tutorials.notebooks`);
the conditions below are the claims the README makes of them, with room for run-to-run noise.
The executed notebook and its results are kept in ``test-artifacts/tutorials/`` to read after a run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .notebooks import KERNEL, execute

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))

#: tutorial -> what its results must show
EXPECTATIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "01-quickstart": lambda r: (
        r["test_accuracy"] >= 0.93 and r["test_accuracy"] >= r["baseline_accuracy"] + 0.3
        and r["test_accuracy"] >= r["linear_accuracy"] + 0.05 and r["reload_max_difference"] <= 1e-6
        and r["workers"] == 2),
    "02-text-classification": lambda r: (
        r["cnn_accuracy"] >= 0.95 and r["lstm_accuracy"] >= 0.90 and r["baseline_accuracy"] <= 0.2
        and min(r["cnn_accuracy"], r["lstm_accuracy"]) >= r["baseline_accuracy"] + 0.6
        and r["served_questions"] == 3 and r["served_correct"] >= 2),
    "03-recommendation": lambda r: (
        r["ncf_hit_ratio_10"] >= max(0.5, 2 * r["baseline_hit_ratio_10"])
        and r["wide_deep_hit_ratio_10"] >= 2 * r["baseline_hit_ratio_10"]
        and r["ncf_ndcg_10"] >= 2 * r["baseline_ndcg_10"] and r["wide_deep_ndcg_10"] >= 2 * r["baseline_ndcg_10"]
        and r["recommended_users"] == 4 and r["recommendations_per_user"] == 10),
    "04-anomaly-detection": lambda r: (
        r["lstm_recall"] == 1.0 and r["lstm_false_alarms_at_full_recall"] == 0 and r["lstm_precision"] >= 0.7
        and r["lstm_margin"] >= max(1.5, 1.4 * r["baseline_margin"])),
    "05-fraud-detection": lambda r: (
        min(r["classifier_auprc"], r["autoencoder_auprc"]) >= 20 * r["positive_rate"]
        and r["baseline_auprc"] < 0.03 and r["classifier_recall_top2pct"] >= 0.5),
    "06-transfer-learning": lambda r: (
        r["transfer_accuracy"] >= max(0.8, r["baseline_accuracy"] + 0.05) and r["transfer_accuracy_min"] >= 0.75),
    "07-image-similarity": lambda r: (
        r["precision_at_5"] >= 0.85 and r["baseline_precision_at_5"] <= 0.65
        and r["precision_at_5"] >= r["baseline_precision_at_5"] + 0.25 and r["chance_precision_at_5"] < 0.15),
    "08-keras-and-sklearn": lambda r: (
        r["keras_accuracy"] >= 0.88 and r["grid_best_accuracy"] >= 0.88
        and min(r["keras_accuracy"], r["grid_best_accuracy"]) >= r["baseline_accuracy"] + 0.10
        and r["baseline_accuracy"] > r["majority_accuracy"]),
    "09-laptop-to-cluster": lambda r: (
        r["workers_lost"] == 1 and r["epochs_completed"] == 8
        and min(r["local_accuracy"], r["cluster_accuracy"]) >= 0.93
        and abs(r["cluster_accuracy"] - r["local_accuracy"]) <= 0.03 and r["baseline_accuracy"] < 0.2
        and 40 <= r["rolled_back_to_step"] <= 60 and 0 <= r["steps_replayed"] <= 20 and r["recovery_s"] < 30),
}


def test_every_tutorial_is_numbered_and_has_its_expectations():
    names = [path.stem for path in NOTEBOOKS]
    assert names == sorted(EXPECTATIONS), "each tutorial needs its entry in EXPECTATIONS (and only those)"
    assert [name[:2] for name in names] == [f"{n:02d}" for n in range(1, len(names) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_tutorials_are_committed_without_outputs_for_the_workbench_kernel(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == KERNEL
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs: clear them"
    assert notebook.cells[0].cell_type == "markdown"  # it starts by saying what it shows


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_tutorial_runs_and_reaches_its_result(path, tmp_path):
    executed, results = execute(path, tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, ARTIFACTS / path.name)
    (ARTIFACTS / f"{path.stem}.json").write_text(json.dumps(results, indent=1))
    assert EXPECTATIONS[path.stem](results), results
