"""What all built-in models share: JSON configs, ready estimators, and reloading without trust_code."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import workbench as wb
from workbench.models import NCF, TextClassifier
from workbench.models.base import BuiltinModel


def test_a_saved_builtin_model_is_rebuilt_in_a_fresh_process_without_trust_code(tmp_path):
    model = TextClassifier(class_num=3, vocab_size=50, embedding_dim=8, sequence_length=12, encoder_output_dim=16)
    model.estimator().save(tmp_path / "saved")
    code = (
        "import sys, workbench as wb; "
        "m = wb.Estimator.load(sys.argv[1]).model_; print(type(m).__name__, sorted(m.config.items()))"
    )
    printed = subprocess.run([sys.executable, "-c", code, str(tmp_path / "saved")],
                             check=True, capture_output=True, text=True).stdout
    assert printed.strip() == f"TextClassifier {sorted(model.config.items())}"


def test_a_saved_config_can_only_name_a_builtin_class(tmp_path):
    NCF(user_count=5, item_count=7, implicit=True).estimator().save(tmp_path / "saved")
    spec_file = tmp_path / "saved" / "builtin_model.json"
    spec_file.write_text(json.dumps({"class": "os.system", "config": {}}))
    with pytest.raises(ValueError, match="does not name a Workbench built-in model.*known: .*NCF"):
        wb.Estimator.load(tmp_path / "saved")


def test_estimator_uses_the_model_defaults_unless_overridden():
    model = NCF(user_count=5, item_count=7, implicit=True)
    assert model.estimator().metric_specs == list(model.default_metrics)
    assert model.estimator(metrics=["mae"]).metric_specs == ["mae"]


def test_a_config_must_be_json():
    class WithArray(BuiltinModel):
        def __init__(self, weights):
            super().__init__(weights=weights)

    with pytest.raises(TypeError, match="WithArray: its config must hold JSON values only"):
        WithArray(np.zeros(3))
