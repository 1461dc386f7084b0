"""The Binder config builds what `make install` builds (repo2docker cannot run here, so the files
are checked): the Python version fits the project, Node is there for the extension build, and
postBuild runs the Makefile's install steps, with extras the project defines."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def commands(lines: list[str]) -> list[str]:
    """Shell commands without comments, `$(BIN)/` prefixes, or Make's tab."""
    found = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            found.append(line.replace("$(BIN)/", ""))
    return found


def install_recipe() -> list[str]:
    """The install steps of the Makefile's stamp rule: its pip and workbench commands."""
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    return [c for c in commands(recipe.splitlines()) if c.startswith(("python -m pip install -c", "workbench "))]


def post_build() -> list[str]:
    return commands((BINDER / "postBuild").read_text().splitlines())


def without_extras_and_index(command: str) -> tuple[str, set[str]]:
    """A command with its extras list and --index-url taken out, and the extras."""
    extras = re.search(r"\.\[([\w,]+)\]", command)
    bare = re.sub(r"\s*--index-url\s+\S+", "", re.sub(r"\[[\w,]+\]", "[]", command))
    return bare, set(extras.group(1).split(",")) if extras else set()


def test_environment_gives_a_python_the_project_supports_and_node_for_the_extension():
    environment = yaml.safe_load((BINDER / "environment.yml").read_text())
    dependencies = [d for d in environment["dependencies"] if isinstance(d, str)]
    python = next(d for d in dependencies if d.startswith("python="))
    assert python.removeprefix("python=") + ".0" in SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert any(d.startswith("nodejs") for d in dependencies) and "pip" in dependencies


def test_post_build_is_an_executable_shell_script_that_stops_at_the_first_error():
    script = BINDER / "postBuild"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(script)], check=True)  # parses


def test_post_build_runs_the_makefile_install_steps():
    steps = {without_extras_and_index(c)[0]: without_extras_and_index(c)[1] for c in post_build()}
    for command in install_recipe():
        bare, extras = without_extras_and_index(command)
        assert bare in steps, f"postBuild does not run `{command}`"
        assert steps[bare] <= extras, f"postBuild installs extras {steps[bare] - extras} that `make install` does not"


def test_post_build_installs_only_extras_the_project_defines_and_the_cpu_torch():
    defined = set(PYPROJECT["project"]["optional-dependencies"])
    for command in post_build():
        _, extras = without_extras_and_index(command)
        assert extras <= defined, f"unknown extras {extras - defined} in `{command}`"
    torch = next(c for c in post_build() if c.endswith(" torch"))
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch and "-c constraints.txt" in torch


def test_readme_has_a_binder_badge_opening_the_tutorials():
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\[!\[Binder\]\(https://mybinder\.org/badge_logo\.svg\)\]\((\S+)\)", readme)
    assert badge and badge.group(1).startswith("https://mybinder.org/v2/gh/")
    assert badge.group(1).endswith("?urlpath=lab/tree/tutorials")
