"""Command line: `rhaii-tui [GLOBAL] [COMMAND]` (see ARCHITECTURE.md's CLI surface).

Exit codes: 0 ok, 1 a check failed, 2 bad usage or input. `--json` prints one JSON document.
Heavy modules (Textual, cloud clients, the emulator) are imported only by the command that
needs them, so `--help` and the first frame stay fast.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import __version__

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

# commands register here: name -> (help, add_arguments(parser), run(args, cfg, profile_factory) -> int)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    def deco(fn: Callable) -> Callable:
        COMMANDS[name] = (help, add_arguments or (lambda p: None), fn)
        return fn
    return deco


class UsageError(Exception):
    """Bad usage or input: printed as a one-line message, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # exit 2 with a clear message (argparse's default, kept explicit)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nRun '{self.prog.split()[0]} --help' for the options.\n")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text!r}")
    return v


def _fault_rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= v <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1 (e.g. 0.25), got {text!r}")
    return v


def _replicas(text: str) -> int:
    from .config import validate_replicas

    err = validate_replicas(text)
    if err:
        raise argparse.ArgumentTypeError(err)
    return int(text)


def _log_file_for_help() -> str:
    from .logfile import report_hint

    return report_hint().removeprefix("the log file (").removesuffix(")") or "in the state directory"


def build_parser() -> argparse.ArgumentParser:
    from .sim.names import SCENARIOS

    p = _Parser(
        prog="rhaii-tui",
        description=("Guided deployment of vLLM with prefix caching and cache-aware routing on GKE TPU v6e "
                     "(the RHAII TPU guide's eleven steps). With no command it opens the wizard."),
        epilog=("Environment defaults: PROJECT_ID, ZONE, CLUSTER_NAME, NAMESPACE. "
                "Credentials: Application Default Credentials (gcloud auth application-default login). "
                "Try it without a cloud account: rhaii-tui --sim. "
                f"Log file: {_log_file_for_help()} (rotated, no secrets in it; attach it to problem reports)"),
    )
    p.add_argument("--version", action="version", version=f"rhaii-tui {__version__}")
    g = p.add_argument_group("target and config")
    g.add_argument("--project", help="GCP project id (env PROJECT_ID)")
    g.add_argument("--zone", help="zone offering TPU v6e (env ZONE; default europe-west4-a)")
    g.add_argument("--cluster", help="GKE cluster name (env CLUSTER_NAME; default rhaii-tpu-scaleout-cluster)")
    g.add_argument("--namespace", help="workload namespace (env NAMESPACE; default rhaii-inference)")
    g.add_argument("--replicas", type=_replicas, help="vLLM replicas, one TPU node (4 chips) each (default 3)")
    g.add_argument("--default-machine-type", metavar="TYPE",
                   help="machine type of the cluster's default (CPU) pool (default n1-standard-4; a zone that "
                        "lacks it needs another, step 1 proposes one)")
    g.add_argument("--config", metavar="FILE", help="YAML/JSON file with config fields (below flags and env)")
    s = p.add_argument_group("simulated environment")
    s.add_argument("--sim", action="store_true", help="use the built-in simulated cloud (no GCP account needed)")
    s.add_argument("--scenario", choices=SCENARIOS, default=None,
                   help="simulated world to start (default: continue the saved world, else fresh); only with --sim")
    s.add_argument("--speed", type=_positive_float, default=None,
                   help="simulated time factor (default 30: a 20-minute cluster takes 40 s)")
    s.add_argument("--sim-state", metavar="DIR", help="directory of the simulated world (default: user state dir)")
    s.add_argument("--fault-rate", type=_fault_rate, default=None, metavar="R",
                   help="share of the simulated Kubernetes and Google API requests answered 5xx/429, 0..1 "
                        "(flaky-api: 0.1); applies when the world starts")

    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_, add_args, _fn) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        add_args(sp)
    return p


def _config_from_args(args: argparse.Namespace):
    from .config import StateStore, load_config_file, resolve_config

    file_values = load_config_file(args.config) if args.config else None
    flags = {"project": args.project, "zone": args.zone, "cluster": args.cluster,
             "namespace": args.namespace, "replicas": args.replicas,
             "default_machine_type": getattr(args, "default_machine_type", None)}
    return resolve_config(flags=flags, file_values=file_values, state=StateStore())


def sim_state_dir(args: argparse.Namespace) -> Path:
    if args.sim_state:
        return Path(args.sim_state)
    from .config import state_dir

    return state_dir() / "sim"


def make_profile(args: argparse.Namespace):
    """The connection profile for these arguments (starts or reuses the simulated world)."""
    from .cloud.profile import GcpProfile, SimProfile

    if not args.sim:
        return GcpProfile()
    from .sim.serve import ensure_world

    endpoints = ensure_world(sim_state_dir(args), scenario=args.scenario, speed=args.speed,
                             fault_rate=getattr(args, "fault_rate", None))
    return SimProfile(endpoints)


def _sim_default_project(profile, cfg):
    """In the simulated cloud, an unset project defaults to the world's demo project."""
    if getattr(profile, "simulated", False) and not cfg.project:
        project = profile.endpoints.get("project")
        if project:
            import dataclasses

            sources = dict(cfg.sources, project="sim")
            cfg = dataclasses.replace(cfg, project=project)
            cfg.sources = sources
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    _load_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.scenario or args.speed or args.sim_state or args.fault_rate is not None) and not args.sim \
            and args.command != "sim":
        parser.error("--scenario, --speed, --fault-rate and --sim-state only apply with --sim (or to 'sim serve')")
    from .logfile import report_hint, setup_logging

    setup_logging()  # threads' errors land in the log file, never on the wizard's screen
    try:
        cfg = _config_from_args(args)
    except ValueError as e:
        print(f"rhaii-tui: {e}", file=sys.stderr)
        return EXIT_USAGE
    bad_machine = cfg.errors().get("default_machine_type")  # no screen field shows it: say it here
    if bad_machine:
        print(f"rhaii-tui: {bad_machine} (--default-machine-type, or default_machine_type in the --config file)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command:
            _help, _add, fn = COMMANDS[args.command]
            return int(fn(args, cfg) or 0)
        return _launch_wizard(args, cfg)
    except UsageError as e:
        print(f"rhaii-tui: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rhaii-tui: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the last net: a clear message, never a traceback
        from .cloud.profile import CredentialsError

        if isinstance(e, CredentialsError):
            print(f"rhaii-tui: {e}", file=sys.stderr)
            return EXIT_USAGE
        if os.environ.get("RHAII_TUI_DEBUG"):
            raise
        logging.getLogger("rhaii_tui").error("unexpected error", exc_info=True)
        print(f"rhaii-tui: unexpected error: {type(e).__name__}: {e}\n"
              f"Please report it with {report_hint()} (it has the details; RHAII_TUI_DEBUG=1 shows them here).",
              file=sys.stderr)
        return EXIT_FAIL


def _launch_wizard(args: argparse.Namespace, cfg) -> int:
    """Open the wizard at once; connect (start or reuse the simulated world, or set up ADC)
    in a thread after the first frame, so the start never waits on the network."""
    from .app import run_wizard
    from .config import StateStore

    def connect():
        profile = make_profile(args)
        return profile, _sim_default_project(profile, cfg)

    return int(run_wizard(cfg, None, StateStore(), connect=connect) or 0)


def _load_commands() -> None:
    """Import the modules that register commands (cheap: they import heavy things lazily)."""
    import importlib

    for mod in ("rhaii_tui.commands",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
