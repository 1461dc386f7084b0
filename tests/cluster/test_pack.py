"""Environment shipping (`workbench pack`): the driver's venv packed, unpacked elsewhere and trained
through by a `dask worker` started from it; a conda environment packed with its Python and run
unpacked elsewhere; the cache; the check that refuses an archive of another environment (made by
Workbench or by another tool); editable packages; the command line.

The driver's venv is the real one (Workbench installed editable from this checkout) with the
packages a torch worker does not need left out; the other environments are tiny venvs made here
with one small package (six), installed by pip.
"""

from __future__ import annotations

import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.cli import main
from workbench.cluster.pack import (MANIFEST_NAME, EnvironmentMismatch, check_environment, environment_fingerprint,
                                    pack_environment, read_manifest)

from ..conftest import wait_for
from .conda import conda_environment

#: what the driver's venv has and a torch worker does not need (most of its 3.9 GB)
DRIVER_ONLY = ["tensorflow*", "tensorboard*", "keras*", "jupyter*", "playwright*", "kubernetes*", "llvmlite*",
               "numba*", "panel*", "onnx*", "clang*", "holoviews*", "babel*", "jedi*", "debugpy*", "sqlalchemy*",
               "sympy*", "networkx*", "bokeh*", "statsmodels*"]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
THIS_PYTHON = f"{sys.base_prefix}/bin/python{sys.version_info[0]}.{sys.version_info[1]}"  # the driver venv's base
OTHER_PYTHON = "/usr/bin/python3.11"  # Debian's: another micro version


def make_venv(folder: Path, *requirements: str, python: str = THIS_PYTHON) -> Path:
    """A venv without pip at ``folder``, with ``requirements`` installed by this environment's pip."""
    subprocess.run([python, "-m", "venv", "--without-pip", str(folder)], check=True)
    install(folder, *requirements)
    return folder


def install(venv: Path, *requirements: str) -> None:
    if requirements:
        subprocess.run(PIP + ["--python", str(venv / "bin" / "python"), "install", "--no-deps", *requirements],
                       check=True, capture_output=True)


@pytest.fixture(scope="module")
def six_venv(tmp_path_factory) -> Path:
    """A venv of this Python with six 1.16.0."""
    return make_venv(tmp_path_factory.mktemp("six") / "venv", "six==1.16.0")


@pytest.fixture(scope="module")
def newer_six_venv(tmp_path_factory) -> Path:
    """A venv of this Python with six 1.17.0."""
    return make_venv(tmp_path_factory.mktemp("newer-six") / "venv", "six==1.17.0")


@pytest.fixture(scope="module")
def other_python_venv(tmp_path_factory) -> tuple[Path, str]:
    """A venv of Debian's Python (another micro version) with six 1.16.0, and that version."""
    venv = make_venv(tmp_path_factory.mktemp("other-python") / "venv", "six==1.16.0", python=OTHER_PYTHON)
    version = subprocess.run([OTHER_PYTHON, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version != platform.python_version()
    return venv, version


# --- the archive is self-sufficient ---------------------------------------------------------------

@pytest.fixture
def unpacked_worker_cluster(tmp_path, no_context):
    """A scheduler in this process, and yields (scheduler address, tmp folder, start_worker(venv))."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                           dashboard_address="127.0.0.1:0")
    workers: list[subprocess.Popen] = []

    def start_worker(venv: Path) -> subprocess.Popen:
        # as YARN containers do: activate the unpacked environment in a bare shell; no PATH to this
        # venv, no PYTHONPATH, a working directory without the checkout
        command = (f"source {venv}/bin/activate && exec dask worker {cluster.scheduler_address} --nthreads 1 "
                   "--no-nanny --no-dashboard --host 127.0.0.1")
        workers.append(subprocess.Popen(["bash", "-c", command], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                                        stdout=(tmp_path / "worker.log").open("w"), stderr=subprocess.STDOUT))
        return workers[-1]

    try:
        yield cluster.scheduler_address, tmp_path, start_worker
    finally:
        wb.stop()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        cluster.close()
        # 1.7 GB each: removed now rather than left to pytest's rotation of tmp folders
        shutil.rmtree(tmp_path / "unpacked", ignore_errors=True)
        for name in ("env.tar", "env.tar.json"):
            (tmp_path / name).unlink(missing_ok=True)


@pytest.mark.timeout(180)
def test_the_packed_driver_environment_trains_through_a_worker_started_from_it(unpacked_worker_cluster):
    address, folder, start_worker = unpacked_worker_cluster
    archive, unpacked = folder / "env.tar", folder / "unpacked"
    times = {}

    started = time.perf_counter()
    excludes = [option for pattern in DRIVER_ONLY for option in ("--exclude", pattern)]
    subprocess.run([str(Path(sys.executable).with_name("workbench")), "pack", str(archive), *excludes], check=True)
    times["pack"] = time.perf_counter() - started
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == MANIFEST_NAME
    site_packages = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    # the editable project is in the archive, not the .pth that points at this checkout
    assert f"{site_packages}/workbench/train/estimator.py" in names
    assert not [name for name in names if name.startswith(f"{site_packages}/_editable_impl")]
    assert not [name for name in names if name.startswith(f"{site_packages}/tensorflow")]

    started = time.perf_counter()
    unpacked.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(unpacked)], check=True)
    times["unpack"] = time.perf_counter() - started
    check_environment(archive)  # the driver's own archive matches it

    started = time.perf_counter()
    worker = start_worker(unpacked)
    ctx = wb.init(address)
    wait_for(lambda: ctx.workers or worker.poll() is not None, "the worker of the unpacked environment")
    assert worker.poll() is None, (folder / "worker.log").read_text()
    times["worker start"] = time.perf_counter() - started
    where = ctx.client.run(lambda: (sys.prefix, wb.__file__, torch.__file__))
    assert list(where.values()) == [(str(unpacked), f"{unpacked}/{site_packages}/workbench/__init__.py",
                                     f"{unpacked}/{site_packages}/torch/__init__.py")]

    def make_model():  # defined here, so cloudpickle ships it by value
        return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))

    rng = np.random.default_rng(0)
    features = rng.normal(size=(1200, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64) + (features[:, 1] > 0.5).astype(np.int64)
    started = time.perf_counter()
    estimator = wb.Estimator.from_torch(make_model, optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.02},
                                        loss="cross_entropy", metrics=["accuracy"])
    estimator.fit((features, labels), epochs=8, batch_size=32, progress=None)
    predictions = estimator.predict(features).compute()
    scores = estimator.evaluate((features, labels))
    times["train"] = time.perf_counter() - started
    print("pack / unpack / worker start / train (s):", {key: round(value, 1) for key, value in times.items()},
          f"archive {archive.stat().st_size / 2**30:.2f} GiB")

    assert list(estimator.workers_) == list(where)
    assert scores["accuracy"] >= 0.9
    assert predictions.shape == (1200, 3)


# --- a conda environment ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def conda_env(tmp_path_factory) -> Path:
    """A conda environment (this machine's Python as a conda package, installed by rattler) with six
    1.16.0 installed by pip, as conda users install what conda-forge lacks."""
    work = tmp_path_factory.mktemp("conda")
    prefix = conda_environment(work / "env", work)
    install(prefix, "six==1.16.0")
    return prefix


def test_a_conda_environment_is_packed_with_its_python_and_runs_unpacked_elsewhere(tmp_path, conda_env, six_venv,
                                                                                  newer_six_venv, capsys):
    archive = tmp_path / "conda.tar.gz"
    assert main(["pack", str(archive), "--prefix", str(conda_env)]) == 0
    assert f"Python {platform.python_version()} is in the archive (run its bin/conda-unpack" in capsys.readouterr().out
    manifest = check_environment(archive, prefix=conda_env)
    assert manifest["kind"] == "conda" and manifest["fingerprint"]["packages"] == {"six": "1.16.0"}
    with tarfile.open(archive) as tar:
        members = {member.name: member for member in tar}
    assert next(iter(members)) == MANIFEST_NAME
    major_minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert members[f"bin/python{major_minor}"].isfile()  # Python itself, not a link to the driver's
    assert members["bin/conda-unpack"].isfile() and members["conda-meta/history"].isfile()
    check_environment(archive, prefix=six_venv)  # the same Python and packages, in a venv
    with pytest.raises(EnvironmentMismatch, match="six 1.16.0 in the archive, 1.17.0 here"):
        check_environment(archive, prefix=newer_six_venv)

    # what a YARN container does: unpack, activate, conda-unpack (yarn.py's script), then run Python
    unpacked = tmp_path / "somewhere" / "else"
    unpacked.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(archive), "-C", str(unpacked)], check=True)
    show = ("import six, sys, sysconfig; "
            "print(sys.prefix, six.__file__, sysconfig.get_config_var('prefix'), sep='\\n')")
    script = f"source {unpacked}/bin/activate && {unpacked}/bin/conda-unpack && exec python -c \"{show}\""
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # the prefix the installer wrote into _sysconfigdata is this folder's once conda-unpack ran
    assert done.stdout.split() == [str(unpacked), f"{unpacked}/lib/python{major_minor}/site-packages/six.py",
                                   str(unpacked)]

    without_six = pack_environment(tmp_path / "no-six.tar", prefix=conda_env, exclude=["six*"])
    with tarfile.open(without_six) as tar:
        assert not [name for name in tar.getnames() if "site-packages/six" in name]
    assert read_manifest(without_six)["excluded_packages"] == {"six": "1.16.0"}
    check_environment(without_six, prefix=conda_env)


# --- the cache -------------------------------------------------------------------------------------

def test_an_unchanged_environment_is_packed_once_and_a_changed_one_again(tmp_path):
    venv = make_venv(tmp_path / "venv", "six==1.16.0")
    cache = tmp_path / "cache"
    first = pack_environment(prefix=venv, cache_dir=cache)
    packed_at = first.stat().st_mtime_ns

    started = time.perf_counter()
    again = pack_environment(prefix=venv, cache_dir=cache)
    assert again == first and first.stat().st_mtime_ns == packed_at
    assert time.perf_counter() - started < 2  # the environment is read, not packed
    assert first.name.endswith(".tar.gz") and first.parent == cache

    without_six = pack_environment(prefix=venv, cache_dir=cache, exclude=["six*"])
    assert without_six != first
    with tarfile.open(without_six) as tar:
        assert not [name for name in tar.getnames() if "six" in name]
    assert read_manifest(without_six)["excluded_packages"] == {"six": "1.16.0"}

    install(venv, "six==1.17.0")
    upgraded = pack_environment(prefix=venv, cache_dir=cache)
    assert upgraded not in (first, without_six)
    assert read_manifest(upgraded)["fingerprint"]["packages"] == {"six": "1.17.0"}
    assert read_manifest(first)["fingerprint"]["packages"] == {"six": "1.16.0"}  # still there


# --- the check ---------------------------------------------------------------------------------------

def test_an_archive_of_another_environment_is_refused_naming_the_difference(tmp_path, six_venv, newer_six_venv,
                                                                            other_python_venv):
    archive = pack_environment(tmp_path / "six.tar.gz", prefix=six_venv)
    assert check_environment(archive, prefix=six_venv)["fingerprint"] == environment_fingerprint(six_venv)

    with pytest.raises(EnvironmentMismatch, match=r"package\(s\) at another version: six 1\.16\.0 in the archive, "
                                                  r"1\.17\.0 here"):
        check_environment(archive, prefix=newer_six_venv)

    other_python, theirs = other_python_venv
    with pytest.raises(EnvironmentMismatch) as refused:
        check_environment(archive, prefix=other_python)
    assert str(refused.value).endswith(f"/venv: Python {platform.python_version()} in the archive, {theirs} "
                                      "here. Pack this environment again (`workbench pack`).")  # and nothing else

    empty = make_venv(tmp_path / "empty")
    with pytest.raises(EnvironmentMismatch, match=r"1 package\(s\) only in the archive: six 1\.16\.0"):
        check_environment(archive, prefix=empty)
    archive_of_empty = pack_environment(tmp_path / "empty.tar", prefix=empty)
    with pytest.raises(EnvironmentMismatch, match=r"1 package\(s\) missing from the archive: six 1\.16\.0"):
        check_environment(archive_of_empty, prefix=six_venv)
    # a package left out on purpose is not missing
    check_environment(pack_environment(tmp_path / "no-six.tar", prefix=six_venv, exclude=["six*"]), prefix=six_venv)

    Path(f"{archive}.json").unlink()  # the manifest travels inside the archive too
    with pytest.raises(EnvironmentMismatch, match="six 1.16.0 in the archive, 1.17.0 here"):
        check_environment(archive, prefix=newer_six_venv)


def test_archives_made_by_other_tools_are_checked_by_the_packages_they_hold(tmp_path, six_venv, newer_six_venv,
                                                                            other_python_venv):
    venv_pack = tmp_path / "venv-pack.tar.gz"
    subprocess.run([str(Path(sys.executable).with_name("venv-pack")), "--prefix", str(six_venv), "--output",
                    str(venv_pack)], check=True, capture_output=True)
    zipped = Path(shutil.make_archive(str(tmp_path / "zipped"), "zip", six_venv))
    for archive in (venv_pack, zipped):
        packed = check_environment(archive, prefix=six_venv)["fingerprint"]
        assert (packed["python"], packed["packages"]) == (platform.python_version(), {"six": "1.16.0"})  # pyvenv.cfg's
        with pytest.raises(EnvironmentMismatch, match="six 1.16.0 in the archive, 1.17.0 here"):
            check_environment(archive, prefix=newer_six_venv)
        with pytest.raises(EnvironmentMismatch, match=f"Python {platform.python_version()} in the archive, "
                                                      f"{other_python_venv[1]} here"):
            check_environment(archive, prefix=other_python_venv[0])

    # conda-pack's layout: Python's version in conda's record of its package, metadata as pip writes it
    major_minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    conda = tmp_path / "conda-env"
    (conda / "conda-meta").mkdir(parents=True)
    (conda / "conda-meta" / f"python-{other_python_venv[1]}-h2a2b1f7_0_cpython.json").write_text("{}")
    (conda / "conda-meta" / "python-dateutil-2.9.0-pyhd8ed1ab_0.json").write_text("{}")
    site_packages = conda / "lib" / f"python{major_minor}" / "site-packages"
    for metadata in ("six-1.16.0.dist-info", "python_dateutil-2.9.0.dist-info", "old_style-1.0-py3.11.egg-info"):
        (site_packages / metadata).mkdir(parents=True)
        (site_packages / metadata / "METADATA").write_text("")
    with tarfile.open(tmp_path / "conda.tar.gz", "w:gz") as tar:
        tar.add(conda, arcname=".")
    with pytest.raises(EnvironmentMismatch) as refused:
        check_environment(tmp_path / "conda.tar.gz", prefix=six_venv)
    assert (f"Python {other_python_venv[1]} in the archive, {platform.python_version()} here; 2 package(s) only in "
            "the archive: old-style 1.0, python-dateutil 2.9.0. Pack") in str(refused.value)

    not_an_environment = tmp_path / "scripts.tar"
    with tarfile.open(not_an_environment, "w") as tar:
        tar.add(Path(sys.executable).parent / "activate", arcname="bin/activate")
    with pytest.raises(ValueError, match="scripts.tar is not an archive of one Python environment: it has no "
                                         "lib/pythonX.Y/site-packages"):
        check_environment(not_an_environment, prefix=six_venv)


def test_other_editable_packages_are_refused_by_name(tmp_path):
    project = tmp_path / "tinyedit"
    (project / "tinyedit").mkdir(parents=True)
    (project / "tinyedit" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=64"]\n'
                                            'build-backend = "setuptools.build_meta"\n'
                                            '[project]\nname = "tinyedit"\nversion = "1.0"\n')
    venv = make_venv(tmp_path / "venv", "-e", str(project))
    with pytest.raises(ValueError, match="editable packages other than Workbench .*: tinyedit"):
        pack_environment(tmp_path / "env.tar", prefix=venv)
    assert not (tmp_path / "env.tar").exists()


# --- the command line ----------------------------------------------------------------------------------

def test_the_command_reuses_an_up_to_date_archive_and_refuses_bad_input(tmp_path, six_venv, capsys):
    output = tmp_path / "env.tgz"
    assert main(["pack", str(output), "--prefix", str(six_venv)]) == 0
    assert capsys.readouterr().out.startswith(f"{output}\n  1 packages, ")
    packed_at = output.stat().st_mtime_ns
    assert main(["pack", str(output), "--prefix", str(six_venv)]) == 0
    assert output.stat().st_mtime_ns == packed_at

    for argv, error in (
        ([str(output), "--prefix", str(six_venv), "--exclude", "six*"], "is not an archive of this environment"),
        ([str(tmp_path / "env.zip"), "--prefix", str(six_venv)], "env.zip: an environment archive ends in .tar.gz"),
        ([str(output), "--prefix", str(six_venv), "--exclude", "lib/six.py"], "not paths: 'lib/six.py'"),
        ([str(output), "--prefix", str(tmp_path)], "has no bin/python"),
    ):
        assert main(["pack", *argv]) == 2
        assert error in capsys.readouterr().err
    assert main(["pack", str(output), "--prefix", str(six_venv), "--exclude", "six*", "--force"]) == 0
    assert read_manifest(output)["excluded_packages"] == {"six": "1.16.0"}
