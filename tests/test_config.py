"""The user config (workbench.config) through the module and through `workbench config`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import workbench as wb
from workbench import config


@pytest.fixture
def config_file(tmp_path, monkeypatch) -> Path:
    """$WORKBENCH_CONFIG at a file (not there yet) in tmp_path."""
    file = tmp_path / "settings" / "config.yaml"
    monkeypatch.setenv("WORKBENCH_CONFIG", str(file))
    return file


def workbench(*args: str) -> subprocess.CompletedProcess:
    """Run the `workbench` command (as `python -m workbench.cli`) with this test's environment."""
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, timeout=60)


def test_module_round_trip(config_file):
    assert config.path() == config_file
    assert config.items() == {} and config.get("cluster") is None

    assert config.set("cluster", "scheduler.example:8786") == "tcp://scheduler.example:8786"  # as wb.init reads it
    assert config.get("cluster") == "tcp://scheduler.example:8786"
    assert yaml.safe_load(config_file.read_text()) == {"cluster": "tcp://scheduler.example:8786"}
    assert config.set("cluster", "LOCAL") == "local"
    assert config.items() == {"cluster": "local"}
    assert [p.name for p in config_file.parent.iterdir()] == ["config.yaml"]  # no temporary file left

    assert config.unset("cluster") is True
    assert config.get("cluster") is None and config.unset("cluster") is False


def test_cli_round_trip(config_file):
    result = workbench("config", "set", "cluster", "tls://10.0.0.5:8786")
    assert result.returncode == 0 and str(config_file) in result.stdout
    assert config.get("cluster") == "tls://10.0.0.5:8786"  # the command and the module share the file

    assert workbench("config", "get", "cluster").stdout == "tls://10.0.0.5:8786\n"
    listing = workbench("config", "list")
    assert listing.returncode == 0 and listing.stdout == f"# {config_file}\ncluster = tls://10.0.0.5:8786\n"

    assert workbench("config", "unset", "cluster").returncode == 0
    missing = workbench("config", "get", "cluster")
    assert (missing.returncode, missing.stdout) == (1, "")  # not set: status 1, as `git config`


def test_default_locations(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.path() == tmp_path / "xdg" / "workbench" / "config.yaml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.path() == tmp_path / "home" / ".config" / "workbench" / "config.yaml"


def test_a_bad_cluster_is_refused_with_the_message_of_wb_init(config_file):
    with pytest.raises(ValueError) as from_init:
        wb.init("not a cluster")
    with pytest.raises(config.ConfigError) as from_config:
        config.set("cluster", "not a cluster")
    assert str(from_config.value) == str(from_init.value)

    result = workbench("config", "set", "cluster", "not a cluster")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"workbench: error: {from_init.value}\n"
    assert not config_file.exists()


def test_unknown_keys_are_refused_with_the_known_ones(config_file):
    with pytest.raises(config.ConfigError, match="unknown config key 'clutser'; known keys: cluster"):
        config.set("clutser", "local")
    for args in (["set", "clutser", "local"], ["get", "clutser"], ["unset", "clutser"]):
        result = workbench("config", *args)
        assert result.returncode == 2
        assert result.stderr == "workbench: error: unknown config key 'clutser'; known keys: cluster, workers, worker-cores, worker-memory, queue, security\n"


@pytest.mark.parametrize("text", ["cluster: [unclosed", "- just\n- a list\n"])
def test_a_corrupt_file_is_named(config_file, text):
    config_file.parent.mkdir()
    config_file.write_text(text)
    with pytest.raises(config.ConfigError, match="fix or delete it") as error:
        config.get("cluster")
    assert str(config_file) in str(error.value)

    result = workbench("config", "list")
    assert result.returncode == 2 and result.stdout == ""
    assert str(config_file) in result.stderr and "Traceback" not in result.stderr


def test_cluster_sizes_and_tls_directory_are_checked_and_reach_the_cluster_kernels_dask_config(config_file, tmp_path):
    from workbench.cluster.tls import create_certificates

    create_certificates(tmp_path / "certs")
    assert config.set("cluster", "SLURM") == "slurm"
    assert config.set("workers", "8") == 8 and config.set("worker-cores", "4") == 4
    assert config.set("worker-memory", "16 GiB") == "16 GiB" and config.set("queue", " gpu ") == "gpu"
    assert config.set("security", str(tmp_path / "certs")) == str(tmp_path / "certs")
    for key, value, message in [("workers", "0", "whole number >= 1"), ("worker-cores", "two", "whole number"),
                                ("worker-memory", "lots", "a size such as"), ("queue", " ", "non-empty"),
                                ("security", str(tmp_path), "ca.pem")]:
        with pytest.raises(config.ConfigError, match=message):
            config.set(key, value)

    probe = ("from workbench import kernel; kernel.apply_cluster_settings(); import dask.config as c; "
             "print([c.get('workbench.' + k) for k in ('workers', 'worker-cores', 'worker-memory', 'queue', 'security')])")
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert printed.stdout.strip() == str([8, 4, "16 GiB", "gpu", str(tmp_path / "certs")]), printed.stderr
