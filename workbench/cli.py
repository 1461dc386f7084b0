"""The ``workbench`` command: install the Jupyter kernels, edit the user config, start JupyterLab, serve a model,
create TLS certificates, pack the environment for the workers.

::

    workbench kernels install [--user | --sys-prefix | --prefix PATH]    # "Workbench (local)" and "(cluster)"
    workbench kernels list
    workbench config set cluster tcp://scheduler:8786                   # then restart the cluster kernel
    workbench config get KEY | unset KEY | list
    workbench lab [DIRECTORY] [--port N] [--ip HOST] [--no-browser] [-- JUPYTER_ARGS...]
    workbench serve MODEL [--host HOST] [--port N] [--max-batch-size N] [--max-latency-ms MS]  # HTTP /predict
                          [--backend B] [--concurrency N] [--max-queue N] [--max-body-bytes N] [--token TOKEN]
                          [--signature FILE.json] [--model MODULE:FUNCTION] [--trust-code]
    workbench serve MODEL --queue redis://HOST:PORT [--stream S] [--cluster ADDRESS]           # on the workers
                          [--consumers-per-worker N] [--max-batch-size N] [--result-ttl-s N] [...model options]
    workbench tls create DIR [--host H ...] [--days N] [--force]      # a CA and node certificate for TLS
    workbench pack [OUTPUT] [--exclude PATTERN ...] [--prefix PATH] [--force]  # this venv as a worker archive

User mistakes (an unknown key, a bad value, a missing directory or model) print one line on
stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from workbench import config

__all__ = ["main", "kernelspecs_dir", "TOKEN_ENV_VAR"]

#: where ``workbench serve`` finds its token when ``--token`` is not given (safer than the command line)
TOKEN_ENV_VAR = "WORKBENCH_SERVE_TOKEN"


class CommandError(Exception):
    """A user mistake the command reports in one line (exit status 2)."""


def main(argv: list[str] | None = None) -> int:
    """Run the ``workbench`` command with ``argv`` (default: the process arguments); the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    argv, jupyter_args = _split_at_double_dash(argv)
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # usage errors (status 2) and --help (status 0)
        return int(exit_.code or 0)
    try:
        if jupyter_args and args.command != "lab":
            raise CommandError("arguments after -- are only for `workbench lab` (they go to JupyterLab)")
        return args.run(args, jupyter_args)
    except (CommandError, config.ConfigError) as error:
        print(f"workbench: error: {error}", file=sys.stderr)
        return 2


def kernelspecs_dir() -> Path:
    """The kernelspecs this package ships: ``workbench/kernelspecs`` in a wheel, ``<repo>/kernels``
    in a source checkout or an editable install."""
    packaged = importlib.resources.files("workbench") / "kernelspecs"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[1] / "kernels"
    if checkout.is_dir():
        return checkout
    raise CommandError(f"no Workbench kernelspecs in {packaged} or {checkout}: reinstall analytics-workbench")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench",
                                     description="Workbench: kernels, settings, JupyterLab and model serving.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kernels = commands.add_parser("kernels", help="install or list the Workbench Jupyter kernels")
    kernel_actions = kernels.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = kernel_actions.add_parser("install", help="install Workbench (local) and Workbench (cluster)")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for the current user (the default)")
    where.add_argument("--sys-prefix", action="store_true", help=f"into this environment ({sys.prefix})")
    where.add_argument("--prefix", type=Path, help="under PREFIX/share/jupyter/kernels")
    install.set_defaults(run=_kernels_install)
    kernel_actions.add_parser("list", help="the installed Workbench kernels").set_defaults(run=_kernels_list)

    settings = commands.add_parser("config", help=f"the user config (${config.CONFIG_ENV_VAR} or ~/.config/workbench)")
    config_actions = settings.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_ = config_actions.add_parser("set", help="set KEY to VALUE")
    set_.add_argument("key", metavar="KEY", help=f"one of: {', '.join(config.KNOWN_KEYS)}")
    set_.add_argument("value", metavar="VALUE")
    set_.set_defaults(run=_config_set)
    for name, run, help_ in (("get", _config_get, "print KEY's value"), ("unset", _config_unset, "remove KEY")):
        action = config_actions.add_parser(name, help=help_)
        action.add_argument("key", metavar="KEY")
        action.set_defaults(run=run)
    config_actions.add_parser("list", help="print every setting").set_defaults(run=_config_list)

    lab = commands.add_parser(
        "lab", help="start JupyterLab", usage="workbench lab [DIRECTORY] [options] [-- JUPYTER_ARGS ...]",
        description="Start JupyterLab; arguments after -- go to JupyterLab unchanged.")
    lab.add_argument("directory", nargs="?", type=Path,
                     help="the folder JupyterLab serves (default: ./tutorials if it exists, else .)")
    lab.add_argument("--port", type=int, help="the port (default: JupyterLab's, 8888 or the next free one)")
    lab.add_argument("--ip", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.set_defaults(run=_lab)

    # serving options left out are not passed on, so the defaults stay workbench.serving.server's
    serving = commands.add_parser(
        "serve", argument_default=argparse.SUPPRESS, help="serve a model over HTTP (POST /predict)",
        description="Serve a model over HTTP: POST /predict, GET /health, /signature and /metrics. "
                    "Stops on SIGTERM or Ctrl+C after answering every request it accepted.")
    serving.add_argument("model_path", metavar="MODEL",
                         help="a directory written by Estimator.save, a TorchScript, .keras or .onnx file")
    serving.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    serving.add_argument("--port", type=int, default=8000, metavar="N",
                         help="the port, 0 for any free one (default: %(default)s)")
    serving.add_argument("--backend", metavar="B",
                         help="auto (the default: the model's own framework), torch, keras or onnxruntime")
    serving.add_argument("--concurrency", type=int, metavar="N", help="batches predicted at once (default: 1)")
    serving.add_argument("--max-batch-size", type=int, metavar="N", help="rows merged into one model call (default: 64)")
    serving.add_argument("--max-latency-ms", type=float, metavar="MS",
                         help="how long a request may wait for others to join its batch (default: 5)")
    serving.add_argument("--max-queue", type=int, metavar="N",
                         help="requests that may wait for the model; more are answered 503 (default: 256)")
    serving.add_argument("--max-body-bytes", type=int, metavar="N",
                         help="largest request body; larger is 413 (default: 8 MiB)")
    serving.add_argument("--token", help=f"require 'Authorization: Bearer TOKEN' (except on /health); "
                                         f"better given as ${TOKEN_ENV_VAR}, which the process list does not show")
    serving.add_argument("--signature", type=Path, metavar="FILE.json",
                         help="the model's inputs and outputs (Signature.to_dict()): needed for TorchScript")
    serving.add_argument("--model", dest="model_function", metavar="MODULE:FUNCTION",
                         help="the function that builds a saved Workbench model (imported from the current "
                              "directory or the environment), instead of running the code saved with it")
    serving.add_argument("--trust-code", action="store_true", default=False,
                         help="run the Python code saved with a Workbench model (only for models you trust)")
    queue = serving.add_argument_group("queue serving", "answer requests from a Redis stream with consumers on "
                                       "the Dask workers, instead of HTTP (--max-batch-size: requests per batch)")
    queue.add_argument("--queue", metavar="redis://HOST:PORT", help="the Redis server holding the request stream")
    queue.add_argument("--stream", metavar="S", help="the request stream (default: workbench:requests)")
    queue.add_argument("--cluster", metavar="ADDRESS",
                       help="the Dask scheduler whose workers answer (default: as wb.init() decides)")
    queue.add_argument("--consumers-per-worker", type=int, metavar="N", help="consumers on each worker (default: 1)")
    queue.add_argument("--result-ttl-s", type=int, metavar="N", help="how long results stay readable (default: 3600)")
    serving.set_defaults(run=_serve)

    tls = commands.add_parser("tls", help="TLS certificates for the scheduler, workers and clients")
    tls_actions = tls.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = tls_actions.add_parser(
        "create", help="write a new CA and a node certificate it signs into DIR",
        description="Write a self-signed CA (ca.pem, ca-key.pem) and one certificate it signs (node.pem, "
                    "node-key.pem) for every scheduler, worker and client of a cluster; keys are mode 0600.")
    create.add_argument("directory", metavar="DIR", type=Path, help="where the files go (created if missing)")
    create.add_argument("--host", dest="hosts", action="extend", nargs="+", metavar="H",
                        help="IP addresses or host names of the scheduler and workers, the certificate's "
                             "subject alternative names (default: 127.0.0.1 localhost)")
    create.add_argument("--days", type=int, default=365, metavar="N",
                        help="how long the certificates are valid (default: %(default)s)")
    create.add_argument("--force", action="store_true",
                        help="replace certificates already in DIR (a new CA: every machine needs the new files)")
    create.set_defaults(run=_tls_create)

    pack = commands.add_parser(
        "pack", help="archive this virtual environment for the workers of a cluster (YARN)",
        description="Archive a virtual environment (venv-pack), Workbench included even when installed editable, "
                    "with a manifest of its Python and packages that wb.init checks against the driver's. "
                    "An unchanged environment is packed once: the archive is cached by a hash of its packages.")
    pack.add_argument("output", nargs="?", type=Path, metavar="OUTPUT",
                      help="the archive, .tar.gz, .tgz or .tar (default: in ~/.cache/workbench/environments)")
    pack.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                      help="leave out the entries of site-packages with this name, a glob such as "
                           "'tensorflow*' (repeat for more)")
    pack.add_argument("--prefix", type=Path, default=Path(sys.prefix),
                      help="the virtual environment to pack (default: this one, %(default)s)")
    pack.add_argument("--force", action="store_true", help="pack again, replacing the archive at OUTPUT")
    pack.set_defaults(run=_pack)
    return parser


def _split_at_double_dash(argv: list[str]) -> tuple[list[str], list[str]]:
    """The arguments before the first ``--`` and those after it (JupyterLab's)."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1:]


def _kernels_install(args: argparse.Namespace, _: list[str]) -> int:
    """Install every packaged kernelspec, then point its argv[0] at this interpreter.

    The shipped kernel.json says ``python``; naming ``sys.executable`` instead makes the kernels
    run in this environment whichever Jupyter (and whatever PATH) starts them.
    """
    prefix = str(args.prefix) if args.prefix else sys.prefix if args.sys_prefix else None
    manager = _kernel_spec_manager()
    for source in _packaged_specs():
        destination = Path(manager.install_kernel_spec(str(source), source.name, user=prefix is None, prefix=prefix))
        kernel_json = destination / "kernel.json"
        spec = json.loads(kernel_json.read_text())
        spec["argv"][0] = sys.executable
        kernel_json.write_text(json.dumps(spec, indent=2) + "\n")
        print(f"installed {spec['display_name']!r} ({source.name}) in {destination}")
    return 0


def _kernels_list(args: argparse.Namespace, _: list[str]) -> int:
    names = {source.name for source in _packaged_specs()}
    installed = {name: found for name, found in _kernel_spec_manager().get_all_specs().items() if name in names}
    if not installed:
        print("no Workbench kernels installed: run `workbench kernels install`", file=sys.stderr)
    for name, found in sorted(installed.items()):
        print(f"{name:18} {found['spec']['display_name']:20} {found['resource_dir']}")
    return 0


def _packaged_specs() -> list[Path]:
    return sorted(spec.parent for spec in kernelspecs_dir().glob("*/kernel.json"))


def _kernel_spec_manager() -> Any:
    _require("jupyter_client", "the kernels")
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager()


def _require(module: str, what: str, extra: str = "lab") -> None:
    """Refuse in one line when an extra (Jupyter, the serving libraries) is not installed."""
    if importlib.util.find_spec(module) is None:
        raise CommandError(f"{what} need {module}: pip install 'analytics-workbench[{extra}]'")


def _config_set(args: argparse.Namespace, _: list[str]) -> int:
    stored = config.set(args.key, args.value)
    print(f"{args.key} = {stored}  ({config.path()})")
    return 0


def _config_get(args: argparse.Namespace, _: list[str]) -> int:
    """Print the value; status 1 (nothing printed) when it is not set, as ``git config`` does."""
    value = config.get(args.key)
    if value is None:
        return 1
    print(value)
    return 0


def _config_unset(args: argparse.Namespace, _: list[str]) -> int:
    if not config.unset(args.key):
        print(f"{args.key} was not set", file=sys.stderr)
    return 0


def _config_list(args: argparse.Namespace, _: list[str]) -> int:
    settings = config.items()
    print(f"# {config.path()}")
    for key, value in sorted(settings.items()):
        print(f"{key} = {value}")
    return 0


def _lab(args: argparse.Namespace, jupyter_args: list[str]) -> int:
    """Replace this process by JupyterLab, so signals and the exit status are JupyterLab's own."""
    _require("jupyterlab", "workbench lab")
    root = _lab_root(args.directory)
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ip={args.ip}"]
    if args.port is not None:
        command.append(f"--port={args.port}")
    if args.no_browser:
        command.append("--no-browser")
    if os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses to run as root without it (containers)
    print(f"workbench: JupyterLab serving {root}", file=sys.stderr, flush=True)
    os.execv(sys.executable, command + jupyter_args)


def _lab_root(directory: Path | None) -> Path:
    if directory is None:
        tutorials = Path("tutorials")
        return (tutorials if tutorials.is_dir() else Path.cwd()).resolve()
    if not directory.is_dir():
        raise CommandError(f"{directory} is not a directory" if directory.exists() else f"no such directory: {directory}")
    return directory.resolve()


_HTTP_ONLY = ("max_latency_ms", "max_queue", "max_body_bytes", "token")
_QUEUE_ONLY = ("stream", "cluster", "consumers_per_worker", "result_ttl_s")


def _serve(args: argparse.Namespace, _: list[str]) -> int:
    """Load the model, then serve it until SIGTERM or Ctrl+C (status 0 after a graceful shutdown)."""
    if hasattr(args, "queue"):
        return _serve_queue(args)
    misplaced = [option for option in _QUEUE_ONLY if hasattr(args, option)]
    if misplaced:
        raise CommandError(f"{_flags(misplaced)} only apply with --queue")
    for module in ("starlette", "uvicorn", "prometheus_client"):
        _require(module, "workbench serve", extra="serving")
    from workbench.serving.server import serve

    options = {key: getattr(args, key) for key in ("max_batch_size", "max_latency_ms", "max_queue", "max_body_bytes")
               if hasattr(args, key)}
    options["token"] = getattr(args, "token", os.environ.get(TOKEN_ENV_VAR))
    model = _served_model(args)
    try:
        serve(model, args.host, args.port, name=Path(args.model_path).name, **options)
    except ValueError as error:  # an option out of range
        raise CommandError(str(error)) from error
    except OSError as error:  # the port is taken, or the host is not this machine's
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {error}") from error
    return 0


def _serve_queue(args: argparse.Namespace) -> int:
    """Serve the model from a Redis stream on the workers of the cluster until SIGTERM or Ctrl+C."""
    misplaced = [option for option in _HTTP_ONLY if hasattr(args, option)]
    if misplaced:
        raise CommandError(f"{_flags(misplaced)} apply to HTTP serving, not to --queue")
    _require("redis", "workbench serve --queue", extra="serving")
    import redis

    import workbench as wb
    from workbench.serving.queue import serve_queue

    options = {key: getattr(args, key) for key in ("stream", "consumers_per_worker", "result_ttl_s")
               if hasattr(args, key)}
    if hasattr(args, "max_batch_size"):
        options["batch_size"] = args.max_batch_size
    model = _served_model(args)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as Ctrl+C does: QueueServer.wait stops it
    try:
        wb.init(getattr(args, "cluster", None))
        server = serve_queue(model, args.queue, **options)
        status = server.status()
        print(f"Serving {Path(args.model_path).name} ({model.backend}) from {args.queue} stream "
              f"{server.settings.stream} with {len(status.consumers)} consumers", flush=True)
        server.wait()
    except KeyboardInterrupt:
        return 0
    except (ValueError, redis.ConnectionError) as error:
        raise CommandError(str(error)) from error
    except RuntimeError as error:  # a consumer failed
        print(f"workbench: {error}", file=sys.stderr)
        return 1
    finally:
        wb.stop()
    return 0


def _tls_create(args: argparse.Namespace, _: list[str]) -> int:
    """Write the certificates, then say where each file goes and how the cluster uses them."""
    from workbench.cluster.tls import create_certificates

    hosts = {"hosts": args.hosts} if args.hosts else {}
    try:
        files = create_certificates(args.directory, days=args.days, overwrite=args.force, **hosts)
    except (ValueError, FileExistsError) as error:
        raise CommandError(str(error)) from error
    except OSError as error:  # e.g. a directory that is not writable
        raise CommandError(f"cannot write certificates to {args.directory}: {error.strerror}") from error
    options = " ".join(files.dask_cli_options())
    print(f"wrote {files.ca.parent}/\n"
          f"  {files.ca.name}, {files.cert.name}, {files.key.name}: copy to every scheduler, worker and client\n"
          f"  {files.ca_key.name}: signs certificates, keep it off the cluster\n"
          f"start the cluster with\n"
          f"  dask scheduler {options}\n"
          f"  dask worker tls://SCHEDULER:8786 {options}\n"
          f"and connect with wb.init(\"tls://SCHEDULER:8786\", security=\"{files.ca.parent}\")")
    return 0


def _pack(args: argparse.Namespace, _: list[str]) -> int:
    """Pack (or reuse the up-to-date archive), then say what the workers need besides it."""
    from workbench.cluster.pack import pack_environment, read_manifest

    try:
        archive = pack_environment(args.output, prefix=args.prefix, exclude=args.exclude, force=args.force)
    except (ValueError, FileExistsError) as error:
        raise CommandError(str(error)) from error
    except OSError as error:  # e.g. an output folder that is not writable
        raise CommandError(f"cannot write {args.output or 'the archive'}: {error}") from error
    manifest = read_manifest(archive)
    fingerprint = manifest["fingerprint"]
    left_out = f", {len(manifest['excluded_packages'])} left out" if manifest["excluded_packages"] else ""
    python = (f"Python {fingerprint['python']} is in the archive (run its bin/conda-unpack once unpacked)"
              if manifest.get("kind") == "conda" else
              f"workers need Python {fingerprint['python']} at {manifest['base_prefix']}/bin "
              f"(the archive's bin/python links to it)")
    print(f"{archive}\n  {len(fingerprint['packages'])} packages{left_out}, {archive.stat().st_size / 2**20:.0f} MiB; "
          + python)
    return 0


def _flags(options: list[str]) -> str:
    return ", ".join("--" + option.replace("_", "-") for option in options)


def _served_model(args: argparse.Namespace) -> Any:
    """The InferenceModel ``workbench serve`` was asked for; a CommandError naming the problem if it cannot load."""
    from workbench.serving.model import InferenceModel
    from workbench.serving.signature import Signature
    from workbench.train.checkpoint import UntrustedCodeError

    options = {key: getattr(args, key) for key in ("backend", "concurrency") if hasattr(args, key)}
    if hasattr(args, "signature"):
        try:
            options["signature"] = Signature.from_dict(json.loads(args.signature.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CommandError(f"--signature {args.signature}: not a readable signature ({error!r})") from error
    if hasattr(args, "model_function"):
        options["model"] = _import_function(args.model_function)
    try:
        return InferenceModel.load(args.model_path, trust_code=args.trust_code, **options)
    except UntrustedCodeError as error:
        raise CommandError(f"{error} (here: --model MODULE:FUNCTION or --trust-code)") from error
    except (OSError, ValueError) as error:  # also SignatureError
        raise CommandError(str(error)) from error


def _import_function(spec: str) -> Any:
    """The function named ``MODULE:FUNCTION``, importing MODULE from the current directory first."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise CommandError(f"--model takes MODULE:FUNCTION (e.g. mymodels:make_model), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except ImportError as error:
        raise CommandError(f"--model {spec}: cannot import {module_name} ({error})") from error
    except AttributeError as error:
        raise CommandError(f"--model {spec}: {module_name} has no {function_name}") from error
    if not callable(function):
        raise CommandError(f"--model {spec}: {function_name} is not a function")
    return function


if __name__ == "__main__":
    sys.exit(main())
