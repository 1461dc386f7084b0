"""The ``workbench`` command: install the Jupyter kernels, edit the user config, start JupyterLab.

::

    workbench kernels install [--user | --sys-prefix | --prefix PATH]    # "Workbench (local)" and "(cluster)"
    workbench kernels list
    workbench config set cluster tcp://scheduler:8786                   # then restart the cluster kernel
    workbench config get KEY | unset KEY | list
    workbench lab [DIRECTORY] [--port N] [--ip HOST] [--no-browser] [-- JUPYTER_ARGS...]

User mistakes (an unknown key, a bad value, a missing directory) print one line on stderr and
exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from workbench import config

__all__ = ["main", "kernelspecs_dir"]


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
    parser = argparse.ArgumentParser(prog="workbench", description="Workbench: kernels, settings and JupyterLab.")
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


def _require(module: str, what: str) -> None:
    """Refuse in one line when the "lab" extra (Jupyter) is not installed."""
    if importlib.util.find_spec(module) is None:
        raise CommandError(f"{what} need {module}: pip install 'analytics-workbench[lab]'")


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


if __name__ == "__main__":
    sys.exit(main())
