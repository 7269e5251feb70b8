"""The CLI's commands. Each registers itself with `cli.command` and imports what it needs lazily."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from . import headless
from .cli import EXIT_OK, EXIT_USAGE, UsageError, _replicas, command


def _ops_replicas(text: str) -> int:
    """--replicas of ops scale/migrate: 1-64, checked before anything is sent."""
    if text.strip() == "0":
        raise argparse.ArgumentTypeError("must be 1 or more (use 'ops scale-to-zero' to stop the TPU nodes)")
    return _replicas(text)


def _render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write the manifests into")


@command("render-manifests", "write the manifests rendered from the current config", _render_args)
def render_manifests(args: argparse.Namespace, cfg) -> int:
    from .config import VALIDATORS

    errors = {k: VALIDATORS[k](getattr(cfg, k)) for k in ("namespace", "service", "model", "image", "replicas")}
    errors = {k: v for k, v in errors.items() if v}
    if errors:
        raise UsageError("; ".join(errors.values()))
    from .manifests import write_manifests

    out = Path(args.out)
    try:
        written = write_manifests(cfg, out)  # atomic: a failure leaves no partial output
    except OSError as e:
        raise UsageError(f"cannot write to {out}: {e.strerror}; nothing was written") from None
    except ValueError as e:
        raise UsageError(f"cannot render the manifests: {e}; nothing was written") from None
    for path in written:
        print(path)
    return EXIT_OK


def _sim_args(p: argparse.ArgumentParser) -> None:
    from .sim.names import SCENARIOS

    sub = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True, parser_class=type(p))
    s = sub.add_parser("serve", help="run the simulated cloud in the foreground (real kubectl/gcloud can use it)")
    s.add_argument("--state-dir", metavar="DIR", help="world directory (default: user state dir)")
    s.add_argument("--scenario", choices=SCENARIOS, default=None, dest="serve_scenario", metavar="NAME",
                   help="one of: " + ", ".join(SCENARIOS) + " (default: continue the saved world, else fresh)")
    s.add_argument("--speed", type=float, default=None, dest="serve_speed", metavar="X", help="simulated time factor (default 30)")
    s.add_argument("--reset", action="store_true", help="discard the saved world in DIR and start the scenario anew")
    s.add_argument("--port", type=int, default=0, help="Google APIs port (default: any free port)")
    s.add_argument("--fault-rate", type=float, default=None, dest="serve_fault_rate", metavar="R",
                   help="share of Kubernetes and Google API requests answered 5xx/429, 0..1 (flaky-api: 0.1)")
    for name, help_ in (("login", "sign in to the running simulated cloud again: a fresh access token "
                                  "(the simulated 'gcloud auth application-default login')"),
                        ("revoke-token", "revoke the running simulated cloud's access token (rehearse "
                                         "expired credentials; undo with 'sim login')"),
                        ("status", "is a simulated cloud running here: its process, scenario, speed and endpoints"),
                        ("stop", "stop the simulated cloud running in the background (its world is saved and "
                                 "resumes, time having passed, on the next start)")):
        a = sub.add_parser(name, help=help_, description=help_)
        a.add_argument("--state-dir", metavar="DIR", help="world directory (default: --sim-state, else user state dir)")


@command("sim", "the built-in simulated environment (sim serve|status|stop|login|revoke-token)", _sim_args)
def sim(args: argparse.Namespace, cfg) -> int:
    from .cli import sim_state_dir

    if args.sim_command in ("login", "revoke-token"):
        return _sim_token_command(args.sim_command, Path(args.state_dir) if args.state_dir else sim_state_dir(args))
    if args.sim_command in ("status", "stop"):
        return _sim_process_command(args.sim_command, Path(args.state_dir) if args.state_dir else sim_state_dir(args))
    if args.serve_speed is not None and not (args.serve_speed > 0 and math.isfinite(args.serve_speed)):
        raise UsageError("--speed must be a finite number greater than 0")
    state = Path(args.state_dir) if args.state_dir else sim_state_dir(args)
    from .sim.serve import serve_main

    return int(serve_main(state, scenario=args.serve_scenario, speed=args.serve_speed, port=args.port,
                          reset=args.reset, fault_rate=args.serve_fault_rate) or 0)


def _sim_token_command(which: str, state: Path) -> int:
    """`sim login` / `sim revoke-token`: ask the world running on `state` through its control API.
    The token is never printed: clients read it from the world's endpoints.json."""
    import httpx

    from .cli import EXIT_FAIL
    from .sim.serve import ENDPOINTS_FILE, running_world

    info = running_world(state)
    if info is None:
        print(f"rhaii-tui sim {which}: no simulated cloud is running in {state}. Start it with: rhaii-tui --sim "
              f"(or rhaii-tui sim serve{'' if state == _default_sim_dir() else f' --state-dir {state}'}), "
              "or name its directory with --state-dir DIR.", file=sys.stderr)
        return EXIT_FAIL
    control = info.get("control") or (str(info["google_api"]).rstrip("/") + "/_emu")
    path = "login" if which == "login" else "revoke-token"
    try:
        r = httpx.post(f"{control}/{path}", headers={"Authorization": f"Bearer {info.get('token', '')}"},
                       timeout=10.0)
    except httpx.HTTPError as e:
        print(f"rhaii-tui sim {which}: the simulated cloud in {state} did not answer ({type(e).__name__}); "
              "check that it still runs, then try again.", file=sys.stderr)
        return EXIT_FAIL
    if r.status_code >= 400:
        print(f"rhaii-tui sim {which}: the simulated cloud refused (HTTP {r.status_code}); its endpoints file "
              f"{state / ENDPOINTS_FILE} may be from another run: restart it (rhaii-tui sim serve) and try again.",
              file=sys.stderr)
        return EXIT_FAIL
    if which == "login":
        account = info.get("account") or "the demo account"
        print(f"Signed in to the simulated cloud as {account}: a new access token is in "
              f"{state / ENDPOINTS_FILE} (and its kubeconfigs). In the wizard, press Retry.")
    else:
        print("The simulated cloud's access token is revoked: Google and Kubernetes API calls now answer "
              "401 Unauthorized. The wizard asks you to re-authenticate; sign in again with: rhaii-tui sim login"
              + ("" if state == _default_sim_dir() else f" --state-dir {state}"))
    return EXIT_OK


def _sim_process_command(which: str, state: Path, timeout: float = 20.0) -> int:
    """`sim status` (exit 0 running, 1 not) / `sim stop` (SIGTERM: the world saves itself and exits)."""
    import contextlib
    import os
    import signal
    import time

    from .cli import EXIT_FAIL
    from .sim.serve import running_world

    info = running_world(state)
    if info is None:
        print(f"No simulated cloud is running in {state}."
              + (" Start one with: rhaii-tui --sim (or rhaii-tui sim serve)." if which == "status" else ""))
        return EXIT_FAIL if which == "status" else EXIT_OK
    pid = int(info["pid"])
    if which == "status":
        print(f"Simulated cloud running in {state}: pid {pid}, scenario {info.get('scenario', '?')}, "
              f"speed {info.get('speed', '?')}x, Google APIs {info.get('google_api')}")
        return EXIT_OK
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as e:
        print(f"rhaii-tui sim stop: could not stop process {pid}: {e.strerror}", file=sys.stderr)
        return EXIT_FAIL
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it (else it lingers as a zombie)
        try:
            os.kill(pid, 0)
        except OSError:
            print(f"Stopped the simulated cloud in {state} (pid {pid}); its world is saved.")
            return EXIT_OK
        time.sleep(0.1)
    print(f"rhaii-tui sim stop: process {pid} is still running after {timeout:g} s; stop it with: kill {pid}",
          file=sys.stderr)
    return EXIT_FAIL


def _default_sim_dir() -> Path:
    from .sim.serve import default_state_dir

    return default_state_dir()


# headless steps (rhaii_tui/headless.py): status, apply, verify, bench
command("status", "probe the live environment, print each step's state", headless.status_arguments)(
    headless.status_command)
command("apply", "run the steps headless, resuming where the environment stands (costly actions need --yes)",
        headless.apply_arguments)(headless.apply_command)
command("verify", "steps 9-11 headless (service, cache proof, model identity); exit 0 only if all pass",
        headless.verify_arguments)(headless.verify_command)
command("bench", "throughput test against the deployed service", headless.bench_arguments)(headless.bench_command)


# day-two operations (rhaii_tui/steps/operate/): ops status|scale|scale-to-zero|schedule-zero|resume|...
def _ops_args(p: argparse.ArgumentParser) -> None:
    from .headless import _positive_float

    sub = p.add_subparsers(dest="ops_command", metavar="ACTION", required=True, parser_class=type(p))

    def action(name: str, help_: str, yes: bool = True) -> argparse.ArgumentParser:
        a = sub.add_parser(name, help=help_, description=help_)
        a.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
        if yes:
            a.add_argument("--yes", action="store_true", help="go ahead with this billable or destructive action")
        return a

    action("status", "the deployment at a glance: replicas, TPU nodes, gateway, image, cost", yes=False)
    a = action("scale", "scale the replicas and the TPU node pool together (quota checked first)")
    a.add_argument("--replicas", dest="ops_replicas", type=_ops_replicas, required=True, metavar="N",
                   help="replicas wanted (1-64)")
    action("scale-to-zero", "TPU node pool to 0 nodes (the service stays; cost drops to the cluster overhead)")
    a = action("resume", "TPU node pool back to the remembered size, then the quick verification")
    a.add_argument("--no-verify", action="store_true", help="skip the quick verification")
    a = action("update-image", "rolling update of the vLLM image, one replica at a time", yes=False)
    a.add_argument("tag", metavar="TAG", help="new image tag (e.g. 3.3.0) or a full image reference")
    a.add_argument("--no-rollback", action="store_true", help="do not roll back when a new replica fails")
    a.add_argument("--allow-downtime", action="store_true", help="allow an update with a single replica")
    a.add_argument("--ready-timeout", type=_positive_float, default=None, metavar="S",
                   help="seconds a new replica may take to become Ready once it has a node (default 1800)")
    action("rollback-image", "roll back to the previous vLLM image", yes=False)
    a = action("teardown", "delete the service, its EnvoyFilters and NetworkPolicies (and more with the flags)")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--node-pool", action="store_true", help="also delete the TPU node pool")
    g.add_argument("--cluster", dest="ops_cluster", action="store_true", help="delete the whole cluster")
    a = action("schedule-zero", "at a deadline, with nobody at the keyboard: the service to 0 replicas (a CronJob) "
               "and the idle TPU nodes removed (node pool autoscaling down to 0)")
    g = a.add_mutually_exclusive_group(required=True)
    g.add_argument("--after", metavar="DURATION", help="from now, e.g. 30m, 2h, 1h30m, 1d")
    g.add_argument("--at", dest="ops_at", metavar="TIME",
                   help="HH:MM (UTC, today) or 'YYYY-MM-DD HH:MM' (UTC unless it ends with an offset)")
    g.add_argument("--cancel", action="store_true", help="remove the schedule (autoscaling back to how it was)")
    a = action("migrate", "migrate from the single-model deployment to the scale-out pattern (or roll back)")
    a.add_argument("--from", dest="ops_single", metavar="SERVICE", help="the single-model LLMInferenceService")
    a.add_argument("--replicas", dest="ops_replicas", type=_ops_replicas, metavar="N",
                   help="scale-out replicas, 1-64 (default: config)")
    a.add_argument("--rollback", action="store_true", help="the guide's rollback procedure instead")
    a.add_argument("--status", dest="ops_checklist", action="store_true", help="only show the checklist, probed live")


@command("ops", "day-two operations: status, scale, scale-to-zero, schedule-zero, resume, update-image, "
         "rollback-image, teardown, migrate (costly or destructive ones need --yes)", _ops_args)
def ops(args: argparse.Namespace, cfg) -> int:
    from .steps import operate

    out = headless.Output(args.json)
    which = args.ops_command

    def go() -> int:
        deadline = None
        if which == "schedule-zero" and not args.cancel:  # bad times are refused before anything is sent
            try:
                deadline = operate.deadline_from(args.after, args.ops_at, time.time())
            except ValueError as e:
                raise headless.Usage(str(e)) from None
        if which == "update-image":  # a malformed tag is bad input: refused before anything is sent
            try:
                operate.resolve_image(cfg.image, args.tag)
            except ValueError as e:
                raise headless.Usage(str(e)) from None
        ctx = headless.make_context(args, cfg)
        ctx.step = f"12. Operate (ops {which})"  # the transcript names where each change came from
        if which == "status" or (which == "migrate" and args.ops_checklist):
            return _ops_show(ctx, out, which, args)
        action, n, tag, opts = which, getattr(args, "ops_replicas", None), None, {}
        if which == "schedule-zero":
            action = "cancel-schedule-zero" if args.cancel else action
            if deadline is not None:
                opts["deadline"] = deadline
        if which == "scale" and (n is None or n < 1):
            raise headless.Usage("--replicas must be 1 or more (use 'ops scale-to-zero' to stop the TPU nodes)")
        if which == "teardown":
            action = "teardown-cluster" if args.ops_cluster else ("teardown-node-pool" if args.node_pool
                                                                  else "teardown-service")
        elif which == "migrate" and args.rollback:
            action = "rollback-migration"
        elif which == "resume":
            opts["verify"] = not args.no_verify
        elif which == "update-image":
            tag = args.tag
            opts.update(auto_rollback=not args.no_rollback, allow_downtime=args.allow_downtime)
            if args.ready_timeout:
                opts["ready_timeout"] = args.ready_timeout
        outcome = operate.run_headless(ctx, action, yes=getattr(args, "yes", False), n=n, tag=tag,
                                       single=getattr(args, "ops_single", None),
                                       on_event=lambda e: out.line(f"{e.phase}: {e.message}"), **opts)
        if outcome.exit_code == 2:
            raise headless.Usage(outcome.message)
        if action == "schedule-zero" and outcome.confirmation is not None and outcome.confirmation.refused:
            raise headless.Usage(f"{outcome.confirmation.refused} {outcome.confirmation.fix}".strip())
        res = outcome.result
        if args.json:
            out.document({"action": action, "target": headless._target(ctx), "ok": outcome.exit_code == 0,
                          **outcome.to_dict(), "events": out.events,
                          "status": operate.read_status(ctx).to_dict()})
        elif res is None:
            out.error(outcome.message)
        elif not res.ok:
            out.error(res.summary + (f" Fix: {res.fix}" if res.fix else ""))
        return outcome.exit_code
    return headless._run(go, out)


def _ops_show(ctx, out, which: str, args: argparse.Namespace) -> int:
    from .steps import operate

    if which == "status":
        st = operate.read_status(ctx)
        if args.json:
            status = st.to_dict()
            out.document({"target": headless._target(ctx), "state": st.state.to_dict(), "status": status,
                          "cost": status["cost"]})
        else:
            for label, value in st.lines():
                out.line(f"{label + ':':<12} {value}")
            for p in st.pods:
                out.line(f"  {p.name}  {p.stage}  {p.node or '-'}  {p.tag}")
        return EXIT_OK if not st.problem else 1
    items = operate.migration_status(ctx, single=args.ops_single, replicas=args.ops_replicas)
    if args.json:
        out.document({"target": headless._target(ctx), "checklist": [i.to_dict() for i in items]})
    else:
        for i in items:
            out.line(f"{i.item.number}. [{i.state}] {i.item.title}: {i.evidence}")
    return EXIT_OK


def _web_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only); another address lets "
                        "other machines reach the page and prints a warning")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")


@command("web", "serve the wizard to a browser (loopback only and a secret token in the URL, by default)",
         _web_args)
def web(args: argparse.Namespace, cfg) -> int:
    from .web import serve_main

    return serve_main(args)


# the transcript (rhaii_tui/transcript.py): every change the wizard made to this target
def _transcript_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document instead of lines")


@command("transcript", "every change the wizard made to this target, with the equivalent gcloud/kubectl "
         "commands", _transcript_args)
def transcript(args: argparse.Namespace, cfg) -> int:
    import json

    from .config import StateStore
    from .transcript import format_entry, read_entries, transcript_path

    path = transcript_path(StateStore().root, cfg.project, cfg.zone, cfg.cluster)
    entries = read_entries(path)
    if args.json:
        print(json.dumps({"target": {"project": cfg.project, "zone": cfg.zone, "cluster": cfg.cluster},
                          "file": str(path), "entries": entries}, indent=2))
        return EXIT_OK
    if not entries:
        print(f"No change recorded yet for {cfg.cluster} in {cfg.project}/{cfg.zone} ({path}).")
        return EXIT_OK
    for e in entries:
        print(format_entry(e))
    return EXIT_OK
