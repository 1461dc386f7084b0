"""Every public built-in model's docstring example runs as written (on the 2-worker cluster)."""

from __future__ import annotations

import inspect
import re
import textwrap

import pytest

import workbench.models


def docstring_example(obj: object) -> str | None:
    """The literal block after a line ending in ``Example::`` in ``obj``'s docstring, dedented."""
    match = re.search(r"Example::\n\n(.*?)(?:\n\S|\Z)", inspect.getdoc(obj) or "", re.DOTALL)
    return textwrap.dedent(match.group(1)) if match else None


PUBLIC_MODELS = [getattr(workbench.models, name) for name in workbench.models.__all__
                 if inspect.isclass(getattr(workbench.models, name))]


@pytest.mark.parametrize("model_class", PUBLIC_MODELS, ids=lambda cls: cls.__name__)
def test_docstring_example_runs(model_class, context, tmp_path, monkeypatch):
    example = docstring_example(model_class)
    assert example, f"{model_class.__name__}'s docstring has no 'Example::' block"
    monkeypatch.chdir(tmp_path)
    exec(compile(example, f"<{model_class.__name__} docstring>", "exec"), {})
