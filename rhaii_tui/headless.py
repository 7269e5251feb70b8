"""The headless commands: `status`, `apply`, `verify`, `bench` (see ARCHITECTURE.md's CLI surface).

They run the same step code as the wizard (steps/registry.py's table) and print plain progress
lines for a log, or with `--json` one JSON document at the end. Exit codes: 0 ok, 1 a step or check
failed (with its diagnosis; also: another rhaii-tui holds the lease), 2 bad usage or input (missing
--yes for a billable action, missing secrets, a missing installer checkout).

Secret values never come from the command line: the Hugging Face token from --hf-token-file or
HF_TOKEN, the pull secret from --pull-secret-file or --registry-user with REGISTRY_PASSWORD. They
live in memory only and are scrubbed from every line printed.

This module imports only the standard library at import time (it registers arguments for every
CLI start); the cloud and step modules load when a command runs. No Textual here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_POLL = 2.0

HF_HINT = "give --hf-token-file PATH (the token, or a filled-in huggingface-token-secret.yaml) or set HF_TOKEN"
PULL_HINT = ("give --pull-secret-file PATH (a filled-in templates/redhat-pull-secret.yaml.template) or "
             "--registry-user USER with the password or token in the REGISTRY_PASSWORD environment variable")
INSTALLER_HINT = ("pass --installer-dir DIR, a local checkout of https://github.com/opendatahub-io/rhaii-on-xks "
                  "(its 'make deploy-all' needs make, helm, helmfile and kubectl), or run the installer yourself "
                  "and re-run apply")


class Usage(Exception):
    """Bad usage or input: one line, exit 2."""


# --- arguments ------------------------------------------------------------------------------------


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document instead of lines")


def _poll(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < v <= 300:
        raise argparse.ArgumentTypeError("must be between 0 and 300 seconds")
    return v


def _step_number(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a step number 1-11, got {text!r}") from None
    if not 1 <= v <= 11:
        raise argparse.ArgumentTypeError(f"there are 11 steps: expected 1-11, got {v}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v == float("inf"):  # refuses nan and inf too
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text!r}")
    return v


def _non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= v < float("inf"):  # refuses nan and inf too
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text!r}")
    return v


def status_arguments(p: argparse.ArgumentParser) -> None:
    _json_arg(p)


def apply_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true",
                   help="accept billable actions (cluster / TPU node-pool create, resize); their cost per day is "
                        "printed")
    p.add_argument("--through", type=_step_number, default=11, metavar="N",
                   help="stop after step N (default 11: deploy, then verify)")
    p.add_argument("--express", action="store_true",
                   help="run independent work together (operators on the default pool while the TPU pool "
                        "provisions, ...): every piece starts as soon as what it needs exists; one confirmation "
                        "(--yes) for every billable action up front")
    _json_arg(p)
    s = p.add_argument_group("secrets (step 3; values never on the command line)")
    s.add_argument("--hf-token-file", metavar="PATH",
                   help="file with the Hugging Face token, or a filled-in huggingface-token-secret.yaml "
                        "(else env HF_TOKEN)")
    s.add_argument("--pull-secret-file", metavar="PATH",
                   help="filled-in templates/redhat-pull-secret.yaml.template")
    s.add_argument("--registry-user", metavar="USER",
                   help="registry.redhat.io user; the password or token comes from env REGISTRY_PASSWORD")
    o = p.add_argument_group("steps")
    o.add_argument("--installer-dir", metavar="DIR",
                   help="step 4 in the real cloud: a local checkout of rhaii-on-xks (runs make deploy-all)")
    o.add_argument("--netpol", choices=("apply", "skip"), default=None,
                   help="step 8: apply the NetworkPolicies or skip them (default: the remembered choice, "
                        "else skip for a PoC)")
    o.add_argument("--replace-failed-pool", action="store_true",
                   help="step 2: delete a TPU node pool in ERROR and create it again (needs --yes)")
    o.add_argument("--poll", type=_poll, default=DEFAULT_POLL, metavar="SECONDS",
                   help=f"seconds between progress checks (default {DEFAULT_POLL:g})")
    o.add_argument("--keep-waiting", action="store_true",
                   help="step 2: keep following a TPU node-pool create whose instance group reports a stockout "
                        "(default: stop within minutes, name it and list the options)")


def verify_arguments(p: argparse.ArgumentParser) -> None:
    _json_arg(p)
    p.add_argument("--throughput", action="store_true",
                   help="also measure throughput in step 10 (closed loop of 10, then serial)")
    p.add_argument("--duration", type=_positive_float, default=30.0, metavar="S",
                   help="each throughput run's measured seconds (with --throughput; default 30)")
    p.add_argument("--report", metavar="BASE",
                   help="also write the PoC report to BASE.md, BASE.json and BASE.svg")


def bench_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--concurrency", type=_positive_int, metavar="N",
                   help="closed loop with N requests in flight (the default, N=10)")
    g.add_argument("--rate", type=_positive_float, metavar="R", help="open loop at R requests per second")
    g.add_argument("--serial", action="store_true", help="one request at a time")
    p.add_argument("--duration", type=_positive_float, default=60.0, metavar="S",
                   help="measured seconds (default 60)")
    p.add_argument("--warmup", type=_non_negative_float, default=5.0, metavar="S",
                   help="unmeasured seconds first (default 5)")
    p.add_argument("--max-tokens", type=_positive_int, default=10, metavar="N",
                   help="tokens per completion (default 10)")
    _json_arg(p)


# --- output ---------------------------------------------------------------------------------------


class Output:
    """Plain lines (flushed at once, for a log) or, with --json, events collected for one document.
    Every text goes through the scrubber first (secret values never printed)."""

    def __init__(self, as_json: bool, out: TextIO | None = None, err: TextIO | None = None,
                 secrets: Callable[[], Iterable[str]] | None = None, stamp: bool = True) -> None:
        self.as_json = as_json
        self.stamp = stamp
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._secrets = secrets or (lambda: ())
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.lines = 0

    def scrub(self, text: str) -> str:
        from .report import scrub_text

        return scrub_text(text, [v for v in self._secrets() if v])

    def line(self, text: str, step: int | None = None) -> None:
        text = self.scrub(str(text))
        for part in text.splitlines() or [""]:
            with self._lock:
                self.lines += 1
                if self.as_json:
                    self.events.append({"at": round(time.time(), 3), "step": step, "message": part})
                else:
                    prefix = (time.strftime("%H:%M:%S ") if self.stamp else "") + \
                        (f"[{step}] " if step is not None else "")
                    self.out.write(f"{prefix}{part}\n")
                    self.out.flush()

    def error(self, text: str) -> None:
        """One line on stderr (also in JSON mode: scripts read the document, people the line)."""
        text = " ".join(self.scrub(str(text)).split())
        with self._lock:
            self.err.write(f"rhaii-tui: {text}\n")
            self.err.flush()

    def document(self, doc: dict[str, Any]) -> None:
        from .report import redact

        values = [v for v in self._secrets() if v]
        if values:
            doc = redact(doc, values)
        text = json.dumps(doc, indent=2, default=_json_default)
        with self._lock:
            self.out.write(self.scrub(text) + "\n")
            self.out.flush()


def _json_default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def _state_dict(n: int, st: Any) -> dict[str, Any]:
    from .steps.registry import BY_NUMBER

    e = BY_NUMBER[n]
    return {"number": n, "key": e.key, "title": e.title, "optional": e.optional, **st.to_dict(),
            "data": st.data}


# --- context --------------------------------------------------------------------------------------


def validate_config(cfg: Any) -> None:
    flags = {"project": "--project or PROJECT_ID", "zone": "--zone or ZONE", "cluster": "--cluster or CLUSTER_NAME",
             "namespace": "--namespace or NAMESPACE", "replicas": "--replicas",
             "default_machine_type": "--default-machine-type"}
    errors = cfg.errors()
    if errors:
        k, msg = next(iter(errors.items()))
        where = f" (set it with {flags[k]})" if k in flags else " (set it in the --config file)"
        more = f"; {len(errors) - 1} more problem(s) in the config" if len(errors) > 1 else ""
        raise Usage(f"{msg}{where}{more}")


def make_context(args: argparse.Namespace, cfg: Any, secrets: Any = None) -> Any:
    from .cli import _sim_default_project, make_profile
    from .config import StateStore
    from .steps.context import StepContext

    profile = make_profile(args)
    cfg = _sim_default_project(profile, cfg)
    validate_config(cfg)
    profile.credentials()  # no credentials: CredentialsError, one line and exit 2 (before any probe)
    return StepContext(cfg, profile, StateStore(), secrets=secrets)


def _target(ctx: Any) -> dict[str, Any]:
    cfg = ctx.cfg
    return {"project": cfg.project, "zone": cfg.zone, "cluster": cfg.cluster, "namespace": cfg.namespace,
            "service": cfg.service, "replicas": cfg.replicas, "environment": getattr(ctx.profile, "label", ""),
            "simulated": bool(getattr(ctx.profile, "simulated", False))}


def _lease_now(ctx: Any) -> dict[str, Any] | None:
    from .lease import read_lease

    try:
        session = ctx.kube_or_none()
        if session is None:
            return None
        info = read_lease(session, ctx.cfg.namespace)
    except Exception:  # noqa: BLE001 - the lease is a detail of the status
        return None
    return info.to_dict() if info else None


# --- secrets --------------------------------------------------------------------------------------


def gather_secrets(args: argparse.Namespace, env: dict[str, str] | None = None) -> tuple[Any, dict[str, str]]:
    """The secrets given for step 3 (memory only) and, per secret name, how to give it (with the
    problem of an unusable HF_TOKEN, reported only if step 3 needs it). Raises Usage for a given
    file or user that is not usable."""
    from .config import HF_SECRET_NAME, PULL_SECRET_NAME
    from .secrets import (SecretInputError, SecretsInput, hf_secret_from_form, parse_secret_file,
                          parse_secret_text, pull_secret_from_form)

    env = dict(os.environ) if env is None else env
    inp = SecretsInput()
    hints = {HF_SECRET_NAME: HF_HINT, PULL_SECRET_NAME: PULL_HINT}
    pull_file = getattr(args, "pull_secret_file", None)
    user = getattr(args, "registry_user", None)
    if pull_file and user:
        raise Usage("give the pull secret once: --pull-secret-file or --registry-user, not both")
    try:
        if pull_file:
            specs = parse_secret_file(pull_file)
            if not any(s.kind == "pull" for s in specs):
                raise Usage(f"--pull-secret-file {pull_file} holds no {PULL_SECRET_NAME} secret "
                            "(start from templates/redhat-pull-secret.yaml.template)")
            for s in specs:
                inp.add(s)
        elif user:
            password = env.get("REGISTRY_PASSWORD", "")
            if not password:
                raise Usage("--registry-user needs the password or token in the REGISTRY_PASSWORD environment "
                            "variable (never on the command line)")
            inp.add(pull_secret_from_form(user, password))
        hf_file = getattr(args, "hf_token_file", None)
        if hf_file:
            inp.add(_hf_from_file(hf_file, parse_secret_text, hf_secret_from_form))
        elif env.get("HF_TOKEN") and inp.hf is None:
            try:
                inp.add(hf_secret_from_form(env["HF_TOKEN"].strip()))
            except SecretInputError as e:
                hints[HF_SECRET_NAME] = f"HF_TOKEN is set but not usable ({e}); {HF_HINT}"
    except SecretInputError as e:
        raise Usage(str(e)) from None
    return inp, hints


def _hf_from_file(path: str, parse_text: Callable, from_form: Callable) -> Any:
    from .secrets import SecretInputError

    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise Usage(f"--hf-token-file {path} does not exist") from None
    except IsADirectoryError:
        raise Usage(f"--hf-token-file {path} is a directory; give the file holding the token") from None
    except (OSError, UnicodeDecodeError) as e:
        raise Usage(f"cannot read --hf-token-file {path}: {getattr(e, 'strerror', None) or 'not a text file'}") \
            from None
    stripped = text.strip()
    if "kind:" in text and "Secret" in text:  # a manifest in the template's format
        specs = [s for s in parse_text(text, str(p)) if s.kind == "hf"]
        if not specs:
            raise Usage(f"--hf-token-file {path} holds no huggingface-token secret")
        return specs[0]
    lines = [ln for ln in stripped.splitlines() if ln.strip()]
    if len(lines) > 1:
        raise Usage(f"--hf-token-file {path} has {len(lines)} lines; it should hold only the token "
                    "(or a Secret manifest)")
    try:
        return from_form(stripped)
    except SecretInputError as e:
        raise Usage(f"--hf-token-file {path}: {e}") from None


# --- status ---------------------------------------------------------------------------------------


def run_status(ctx: Any, out: Output) -> int:
    from .steps.registry import BY_NUMBER, probe_all, summary

    states = probe_all(ctx)
    standing = summary(states)
    lease = _lease_now(ctx)
    # scripts rely on it: 0 only when the deployment is serving (steps 1-9 done), else 1
    code = EXIT_OK if standing.serving else EXIT_FAIL
    causes = standing.causes  # why steps could not be read: each root cause said once, at the top
    if out.as_json:
        steps = [_state_dict(n, st) for n, st in states.items()]
        for s in steps:
            if s.get("status") == "unknown":
                s.update(summary="not read (see error)", detail="", fix="",
                         data={k: v for k, v in (s.get("data") or {}).items() if k != "cause"})
        error = None
        if causes:
            error = {k: v for k, v in causes[0].items()}
            if len(causes) > 1:
                error["others"] = causes[1:]
        out.document({"command": "status", "target": _target(ctx), "serving": standing.serving, "exit_code": code,
                      "error": error, "steps": steps, "standing": standing.to_dict(), "lease": lease})
        return code
    t = _target(ctx)
    out.line(f"target {ctx.cfg.target} ({t['environment']}), {ctx.cfg.replicas} replica(s)")
    for c in causes:
        steps_txt = ", ".join(str(n) for n in c["steps"])
        out.line(f"error (steps {steps_txt} could not be read): {c.get('message')}")
        if c.get("fix"):
            out.line(f"   fix: {c['fix']}")
    for n, st in states.items():
        e = BY_NUMBER[n]
        out.line(f"{n:>2} {e.key:<13} {st.status.value:<12} "
                 + ("not read (see the error above)" if st.status.value == "unknown" else st.summary))
        if st.status.value == "failed" and st.fix:
            out.line(f"   fix: {st.fix}")
    if lease:
        out.line(f"lease: {lease['holder']} ({'live' if lease['live'] else 'stale'}, renewed "
                 f"{lease['age_seconds']:.0f} s ago)")
    out.line(f"standing: {standing.headline}")
    return code


# --- apply ----------------------------------------------------------------------------------------


class _LeaseKeeper:
    """Takes the lease before the first mutating step (once the namespace exists), renews it, and
    stops the run when someone else takes it."""

    def __init__(self, ctx: Any, out: Output, stop: threading.Event, ttl: float) -> None:
        self.ctx = ctx
        self.out = out
        self.stop = stop
        self.ttl = ttl
        self.lease: Any = None
        self.holder: str | None = None     # who held it for this run, once taken
        self.said_no_namespace = False
        self.said_unreadable = False

    def ensure(self, step: int | None) -> None:
        """Raises LeaseHeld when another rhaii-tui holds it, CloudError when it cannot be read or written.

        A cluster that cannot be read (API disabled, permission, credentials, unreachable) is not a
        lease problem: no lease is taken and the step that runs next reports that error itself."""
        from .cloud.gke import CloudError
        from .lease import Lease

        if self.lease is not None and self.lease.held:
            return
        if self.lease is None:
            self.lease = Lease(self.ctx.kube, self.ctx.cfg.namespace, ttl=self.ttl, command="apply")
        try:
            session = self.ctx.kube_or_none()
        except CloudError as e:
            if not self.said_unreadable:
                self.said_unreadable = True
                self.out.line(f"no lease yet: the cluster cannot be read ({e.kind}); the steps say why", step)
            return
        if session is None or not self.lease.acquire():
            if not self.said_no_namespace:
                self.said_no_namespace = True
                self.out.line(f"no lease yet: namespace {self.ctx.cfg.namespace}, which holds it, does not exist "
                              "(step 3 creates it; the lease is taken then)", step)
            return
        taken = self.lease.taken_over
        self.holder = self.lease.identity.holder
        self.out.line(f"lease taken: {self.lease.identity.holder} holds {self.ctx.cfg.namespace}/rhaii-tui-lease "
                      f"(TTL {self.ttl:g} s)" + (f"; replaced a stale lease of {taken.who()}" if taken else ""), step)
        self.lease.start_renewing(on_lost=lambda _info: self.stop.set())

    @property
    def lost(self) -> Any:
        return self.lease.lost if self.lease is not None else None

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()


def _asked_to_redo(n: int, st: Any, opts: Any) -> bool:
    """`--netpol apply` overrides an earlier run's remembered skip: step 8 SKIPPED runs again."""
    return n == 8 and getattr(opts, "netpol", None) == "apply" and st.status.value == "skipped"


class _CloudClock:
    """Seconds since the apply started, on the cloud's clock (the profile's `cloud_now()`: the
    emulator's simulated clock under --sim, else the wall clock)."""

    def __init__(self, ctx: Any) -> None:
        self.profile = ctx.profile
        self.kind = getattr(ctx.profile, "clock_kind", "wall")
        self.t0 = self.now()

    def now(self) -> float:
        try:
            return float(self.profile.cloud_now())
        except Exception:  # noqa: BLE001 - a clock read never takes the apply down
            return time.time()

    def at(self) -> float:
        return round(max(0.0, self.now() - self.t0), 3)


def _sequential_timing(clock: _CloudClock, spans: dict[int, dict[str, Any]], final: dict[int, Any],
                       served: list[float]) -> dict[str, Any]:
    """The "timing" JSON: time to serving = from the start of the apply to the first completion
    verified through the gateway (step 9, once it passes as a whole; 0 when it was done before)."""
    to_serving = None
    st9 = final.get(9)
    if 9 in spans and st9 is not None and st9.done:
        to_serving = 0.0 if spans[9].get("skipped") else (served[0] if served else spans[9]["end_s"])
    elif 9 not in spans and st9 is not None and st9.done and served:
        to_serving = served[0]
    return {"clock": clock.kind, "time_to_serving_s": to_serving,
            "steps": {str(n): v for n, v in sorted(spans.items())}}


def _wait_for_needs(ctx: Any, n: int, opts: Any, say: Callable[[str], None]) -> None:
    """The sequential run reads the same dependency graph as express (steps/graph.py): before a step,
    the facts its pieces need from earlier steps should hold; one just made true may lag a little
    (a controller acts), so wait briefly, then run the step anyway: it says what is missing."""
    from .steps.graph import FACTS, BY_ID, pieces_of, wait_for_needs

    mine = pieces_of(n)
    outside = [p for p in mine if any(BY_ID[FACTS[f].by].step != n for f in p.needs)]
    if not outside:
        return
    from .steps.graph import Piece

    probe = [Piece(p.id, p.title, p.step, tuple(f for f in p.needs if BY_ID[FACTS[f].by].step != n))
             for p in outside]
    wait_for_needs(ctx, probe, timeout=3 * opts.poll, poll=max(0.05, opts.poll / 2), stop=opts.stop,
                   on_wait=say)


def _refuse_early(ctx: Any, opts: Any, pending: list[int], keeper: Any) -> None:
    """Before an apply (either mode) changes anything: the secrets step 3 needs, step 4's installer
    directory (NeedsInput), and the deploy lease when a changing step is pending (LeaseHeld)."""
    from .cloud.gke import CloudError
    from .steps.registry import NeedsInput, check_secrets_given, installer_dir_problem, secrets_needed

    if 3 in pending:
        check_secrets_given(ctx, opts, secrets_needed(ctx))
    if 4 in pending and opts.installer_dir is not None:
        problem = installer_dir_problem(opts.installer_dir)
        if problem:
            raise NeedsInput(4, problem)
    if any(2 <= n <= 8 for n in pending):
        try:
            keeper.ensure(None)
        except CloudError:
            pass  # not a lease held by someone else: the first changing step tries again and says why


def run_apply(ctx: Any, out: Output, *, through: int = 11, opts: Any = None, lease_ttl: float = 60.0) -> int:
    """Resume the deployment where the environment stands: probe, skip what is done, run the rest in
    order through step `through`, stop at the first failure with its diagnosis."""
    from .cloud.gke import CloudError
    from .lease import LeaseHeld
    from .steps.registry import (BY_NUMBER, RunOptions, StepBlocked, check_cluster_confirmed, probe_all, probe_step,
                                 summary)

    opts = opts or RunOptions()
    stop = opts.stop = opts.stop or threading.Event()
    numbers = list(range(1, through + 1))
    actions: dict[int, str] = {n: "not reached" for n in numbers}
    final: dict[int, Any] = {}
    error: dict[str, Any] | None = None
    code = EXIT_OK
    keeper = _LeaseKeeper(ctx, out, stop, lease_ttl)
    lease_step: int | None = None  # the step that was about to run when the lease was being taken
    clock = _CloudClock(ctx)
    spans: dict[int, dict[str, Any]] = {}
    served: list[float] = []  # when step 9's completion through the gateway passed
    outer_on_check = opts.on_check

    def on_check(c: Any) -> None:
        from .steps.express import serving_check

        if outer_on_check is not None:
            outer_on_check(c)
        if serving_check(c) and not served:
            served.append(clock.at())
    opts.on_check = on_check

    def finish() -> int:
        if out.as_json:
            from .steps.registry import summary as summarize

            out.document({"command": "apply", "ok": code == EXIT_OK, "exit_code": code, "through": through,
                          "target": _target(ctx),
                          "steps": [{**_state_dict(n, final[n]), "action": actions[n]} if n in final else
                                    {"number": n, "key": BY_NUMBER[n].key, "title": BY_NUMBER[n].title,
                                     "action": actions[n]} for n in numbers],
                          "standing": summarize(final).to_dict() if final else None,
                          "lease": keeper.holder,
                          "timing": _sequential_timing(clock, spans, final, served),
                          "error": error, "events": out.events})
        return code

    out.line(f"target {ctx.cfg.target} ({_target(ctx)['environment']}), {ctx.cfg.replicas} replica(s), "
             f"steps 1-{through}")
    states = probe_all(ctx, steps=numbers)
    final.update(states)
    standing = summary(states)
    out.line(f"standing: {standing.headline}")
    try:
        # refuse before changing anything: costly actions, missing secrets, a bad installer dir
        pending = [n for n in numbers if not states[n].done or _asked_to_redo(n, states[n], opts)]
        if 2 in pending:
            try:
                check_cluster_confirmed(ctx, opts)
            except CloudError:
                pass  # step 2 itself says what is wrong
        _refuse_early(ctx, opts, pending, keeper)
        reprobe = False
        for n in numbers:
            e = BY_NUMBER[n]
            if keeper.lost is not None:
                raise LeaseHeld(keeper.lost)
            probed_at = clock.at() if reprobe else 0.0
            st = probe_step(ctx, n) if reprobe else states[n]
            final[n] = st
            if st.done and not _asked_to_redo(n, st, opts):
                actions[n] = "skipped (done)"
                # done before the apply, or found done by the probe after the previous step (step 9's
                # probe runs its checks through the gateway: the first verified completion)
                spans[n] = {"start_s": probed_at, "end_s": clock.at(), "found_done": True} if reprobe else \
                    {"start_s": 0.0, "end_s": 0.0, "skipped": True}
                out.line(f"step {n} {e.title}: done - {st.summary}", n)
                continue
            _wait_for_needs(ctx, n, opts, lambda text, n=n: out.line(text, n))
            if e.mutating:
                lease_step = n
                keeper.ensure(n)
                lease_step = None
            out.line(f"step {n} {e.title}: {st.summary} -> running", n)
            actions[n] = "ran"
            t0 = time.monotonic()
            spans[n] = {"start_s": clock.at(), "end_s": None}
            ctx.step = e.label  # the transcript names the step each change belongs to
            result = e.apply(ctx, lambda text, n=n: out.line(text, n), opts)
            spans[n]["end_s"] = clock.at()
            reprobe = True
            final[n] = result
            if keeper.lost is not None:
                raise LeaseHeld(keeper.lost)
            if n == 3 and keeper.lease is not None and not keeper.lease.held and through > 3:
                lease_step = n + 1
                keeper.ensure(n)
                lease_step = None
            if not result.done:
                code = EXIT_FAIL
                error = {"step": n, "title": e.title, "status": result.status.value, "message": result.summary,
                         "detail": result.detail, "fix": result.fix}
                if result.data.get("stockout"):  # step 2 named a stockout: the diagnosis and the options
                    error["stockout"] = result.data["stockout"]
                out.line(f"step {n} {e.title}: {result.status.value.upper()} - {result.summary}", n)
                if result.detail and result.detail != result.summary:
                    out.line(result.detail, n)
                if result.fix:
                    out.line(f"fix: {result.fix}", n)
                out.error(f"step {n} ({e.title}) {'failed' if result.status.value == 'failed' else 'did not finish'}"
                          f": {result.summary}" + (f" Fix: {result.fix}" if result.fix else ""))
                return finish()
            out.line(f"step {n} {e.title}: done in {time.monotonic() - t0:.1f} s - {result.summary}", n)
        standing = summary(final)
        out.line(f"done: {standing.headline} (stopped after step {through}, as asked)" if through < 11 else
                 f"done: steps 1-{through} complete - {standing.headline}")
        return finish()
    except StepBlocked as b:
        code = EXIT_USAGE
        error = {"step": b.step, "message": b.message, **b.data}
        out.error(b.message)
        return finish()
    except LeaseHeld as h:
        code = EXIT_FAIL
        error = {"step": None, "message": str(h), "lease": h.info.to_dict()}
        out.error(str(h))
        return finish()
    except CloudError as e:  # the lease could not be read or written
        code = EXIT_FAIL
        error = {"step": lease_step, "message": f"could not take the deploy lease: {e.message}", "fix": e.fix,
                 "kind": e.kind}
        out.error(f"could not take the deploy lease: {e.message} {e.fix}".strip())
        return finish()
    except KeyboardInterrupt:
        stop.set()
        raise
    finally:
        keeper.release()


def run_express(ctx: Any, out: Output, *, through: int = 11, opts: Any = None, lease_ttl: float = 60.0) -> int:
    """`apply --express`: the pieces of steps/graph.py, each started as soon as what it needs holds
    (steps/express.py). The same refusals before any change as the sequential apply (one for every
    billable action, with the total cost per day), the same lease, exit codes and diagnosis."""
    from .cloud.gke import CloudError
    from .steps.express import ExpressRun
    from .steps.graph import BY_ID
    from .steps.registry import BY_NUMBER, NeedsConfirmation, RunOptions, StepBlocked, summary

    opts = opts or RunOptions()
    stop = opts.stop = opts.stop or threading.Event()
    keeper = _LeaseKeeper(ctx, out, stop, lease_ttl)
    numbers = list(range(1, through + 1))
    error: dict[str, Any] | None = None
    code = EXIT_OK
    final: dict[int, Any] = {}

    def on_event(ev: Any) -> None:
        if ev.status in ("running", "done", "failed", "stopped"):
            step = BY_ID[ev.piece].step
            out.line(f"{ev.piece}: {ev.status} at {ev.at_s / 60:.1f} min"
                     + (f" - {ev.message}" if ev.message and ev.status != "running" else ""), step)

    run = ExpressRun(ctx, on_event=on_event, stop=stop, opts=opts, through=through, lease=keeper,
                     say=lambda piece, step, text: out.line(f"{piece}: {text}", step))

    def finish() -> int:
        if out.as_json:
            steps = []
            for n in numbers:
                pieces = [p for p in run.pieces if p.step == n]
                recs = [run.records[p.id] for p in pieces]
                action = ("skipped (done)" if all(r.status == "skipped" for r in recs) else
                          "ran" if any(r.start_s is not None for r in recs) else "not reached")
                st = final.get(n)
                steps.append({**_state_dict(n, st), "action": action} if st is not None else
                             {"number": n, "key": BY_NUMBER[n].key, "title": BY_NUMBER[n].title, "action": action})
            out.document({"command": "apply", "mode": "express", "ok": code == EXIT_OK, "exit_code": code,
                          "through": through, "target": _target(ctx), "steps": steps,
                          "pieces": run.pieces_dict(), "critical_path": run.critical_path(),
                          "standing": summary(final).to_dict() if final else None, "lease": keeper.holder,
                          "timing": run.timing(), "error": error, "events": out.events})
        return code

    out.line(f"target {ctx.cfg.target} ({_target(ctx)['environment']}), {ctx.cfg.replicas} replica(s), "
             f"steps 1-{through}, express")
    try:
        states = run.prepare()
        final.update(states)
        out.line(f"standing: {summary(states).headline}")
        pending = [n for n in numbers if not states[n].done or _asked_to_redo(n, states[n], opts)]
        # refuse before changing anything: one confirmation for every billable action, secrets, installer
        if 2 in pending:
            try:
                lines, per_day = run.billable_plan()
            except CloudError:
                lines, per_day = [], 0.0  # step 2 itself says what is wrong
            if lines and not opts.yes:
                raise NeedsConfirmation(2, f"express would {lines[0]}; total about ${per_day:,.2f}/day. "
                                        "Re-run with --yes to accept the cost.", billable=lines, cost_per_day=per_day)
            if lines:
                out.line(f"Confirmed with --yes (one confirmation for the whole run): {lines[0]}; "
                         f"total about ${per_day:,.2f}/day.", 2)
        _refuse_early(ctx, opts, pending, keeper)
        res = run.run()
        for n in numbers:
            last = [run.records[p.id].state for p in run.pieces if p.step == n and run.records[p.id].state]
            if last:
                final[n] = last[-1] if all(s.done for s in last) else next(s for s in last if not s.done)
        if res.ok:
            cp = run.critical_path()
            t = res.time_to_serving_s
            if cp:  # something ran
                out.line(("serving through the gateway after " + f"{t / 60:.1f} min ({res.timing['clock']} clock); "
                          if t else "") + "critical path: " + " -> ".join(cp))
            out.line(f"done: steps 1-{through} complete (express) - {summary(final).headline}")
            return finish()
        code = EXIT_FAIL
        piece, st = res.data.get("piece"), res.data.get("state")
        n = res.data.get("step")
        if res.data.get("stopped") and st is None:
            error = {"step": None, "message": "stopped"}
            out.error("stopped")
            return finish()
        if st is not None and st.data.get("blocked"):
            code = EXIT_USAGE
        if st is not None and st.data.get("lease"):
            error = {"step": None, "message": st.summary, "lease": st.data["lease"]}
        else:
            error = {"step": n, "piece": piece, "title": BY_NUMBER[n].title if n else None,
                     "status": st.status.value if st else "failed", "message": st.summary if st else res.failure,
                     "detail": st.detail if st else "", "fix": st.fix if st else ""}
            if st is not None and st.data.get("stockout"):
                error["stockout"] = st.data["stockout"]
        for line in (res.failure or "").splitlines():
            out.line(line, n)
        out.error((f"step {n} ({BY_NUMBER[n].title}) failed: " if n else "") + (st.summary if st else "failed")
                  + (f" Fix: {st.fix}" if st is not None and st.fix else ""))
        return finish()
    except StepBlocked as b:
        code = EXIT_USAGE
        error = {"step": b.step, "message": b.message, **b.data}
        out.error(b.message)
        return finish()
    except KeyboardInterrupt:
        stop.set()
        raise
    finally:
        keeper.release()


# --- verify ---------------------------------------------------------------------------------------


def run_verify_command(ctx: Any, out: Output, *, throughput: bool = False, duration: float = 30.0,
                       report_base: str | None = None) -> int:
    from .report import ReportError, build_report_from_run, run_checks, secret_values, write_report
    from .steps.performance import PerfOptions

    perf = PerfOptions(modes=("closed", "serial") if throughput else (), duration_s=duration,
                       latency_only=True)
    run = run_checks(ctx, perf, on_line=lambda text: out.line(text.strip()))
    data = build_report_from_run(ctx, run)
    code = EXIT_OK if run.passed else EXIT_FAIL
    written: list[str] = []
    if report_base:
        from .report import redact
        from .runreport import deployment_report

        data.update(redact(deployment_report(ctx, run), secret_values(ctx)))  # the whole deployment
        try:
            written = [str(p) for p in write_report(report_base, data, secrets=secret_values(ctx))]
        except ReportError as e:
            raise Usage(str(e)) from None
        except OSError as e:
            raise Usage(f"cannot write the report to {report_base}: {e.strerror}") from None
    verdicts = data.get("verdict", {}).get("steps", {})
    if out.as_json:
        out.document({"command": "verify", "ok": run.passed, "exit_code": code, "target": _target(ctx),
                      "report_files": written, **data})
    else:
        for name, v in verdicts.items():
            out.line(f"step {name}: {v}")
        for p in written:
            out.line(f"report written: {p}")
        out.line("verify: PASS" if run.passed else "verify: FAIL")
    if not run.passed:
        out.error("verify failed: " + _first_problem(run))
    return code


def _first_problem(run: Any) -> str:
    from .steps.verify import first_failure

    bad = first_failure(run.verify)
    if bad is not None:
        return f"step 9, {bad.title}: {bad.evidence}"
    if run.performance is not None and not run.performance.passed:
        return f"step 10: {run.performance.status}: {run.performance.headline}"
    if run.identity is not None and not run.identity.passed:
        return f"step 11: {run.identity.headline}"
    return "not every check passed"


# --- bench ----------------------------------------------------------------------------------------


def run_bench(ctx: Any, out: Output, *, mode: str = "closed", concurrency: int = 10, rate: float = 25.0,
              duration: float = 60.0, warmup: float = 5.0, max_tokens: int = 10) -> int:
    from .steps.performance import bench, bench_options

    opts = bench_options(modes=(mode,), concurrency=concurrency, rate=rate, duration_s=duration, warmup_s=warmup,
                         max_tokens=max_tokens)
    problems = opts.problems()
    if problems:
        raise Usage("; ".join(problems))
    last = [0.0]

    def on_event(e: Any) -> None:
        if e.tick is not None:
            now = time.monotonic()
            if now - last[0] < 5.0:
                return
            last[0] = now
        out.line(e.message)

    res, code = bench(ctx, opts, on_event)
    if out.as_json:
        out.document({"command": "bench", "ok": code == EXIT_OK, "exit_code": code, "target": _target(ctx),
                      **res.to_dict()})
    else:
        for t in res.throughput:
            r = t.result
            if r is None:
                out.line(f"{t.label}: failed: {t.error}")
                continue
            lat = r.latency_ms
            out.line(f"{t.label}: {r.throughput:.1f} req/s over {r.spec.get('duration_s')} s, {r.requests} requests, "
                     f"{r.requests - r.ok} errors; latency P50 {_ms(lat.p50)}, P90 {_ms(lat.p90)}, P99 {_ms(lat.p99)}"
                     + ("" if lat.p99_reliable else " (P99 from too few samples)"))
            for g in r.guide:
                mark = {True: "meets", False: "MISSES", None: "n/a"}[g.ok]
                out.line(f"  guide {g.name}: {g.measured} vs {g.expected}: {mark}" + (f" ({g.note})" if g.note else ""))
        out.line(f"bench: {res.status.upper()}: {res.headline}")
    if code != EXIT_OK:
        out.error(f"bench: {res.status}: {res.headline}")
    return code


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.0f} ms"


# --- the commands (registered in commands.py) -----------------------------------------------------


def _run(fn: Callable[[], int], out: Output) -> int:
    """Map the refusals that are the user's to fix to exit 2 with one line."""
    from .cli import UsageError

    try:
        return fn()
    except Usage as e:
        raise UsageError(out.scrub(str(e))) from None


def status_command(args: argparse.Namespace, cfg: Any) -> int:
    out = Output(args.json, stamp=False)

    def go() -> int:
        ctx = make_context(args, cfg)
        return run_status(ctx, out)
    return _run(go, out)


def apply_command(args: argparse.Namespace, cfg: Any) -> int:
    from .steps.registry import RunOptions

    holder: dict[str, Any] = {}
    out = Output(args.json, secrets=lambda: holder["ctx"].secrets.values() if "ctx" in holder else ())

    def go() -> int:
        if args.replace_failed_pool and not args.yes:
            raise Usage("--replace-failed-pool deletes and re-creates a billable TPU node pool: add --yes")
        secrets, hints = gather_secrets(args)
        ctx = make_context(args, cfg, secrets)
        holder["ctx"] = ctx
        from .config import state_dir

        opts = RunOptions(yes=args.yes, netpol=args.netpol, installer_dir=args.installer_dir,
                          replace_failed_pool=args.replace_failed_pool, poll=args.poll, secret_hints=hints,
                          installer_hint=INSTALLER_HINT, kubeconfig_dir=str(state_dir() / "kubeconfigs"))
        opts.keep_waiting = bool(getattr(args, "keep_waiting", False))
        if getattr(args, "express", False):
            return run_express(ctx, out, through=args.through, opts=opts)
        return run_apply(ctx, out, through=args.through, opts=opts)
    return _run(go, out)


def verify_command(args: argparse.Namespace, cfg: Any) -> int:
    out = Output(args.json)

    def go() -> int:
        ctx = make_context(args, cfg)
        return run_verify_command(ctx, out, throughput=args.throughput, duration=args.duration,
                                  report_base=args.report)
    return _run(go, out)


def bench_command(args: argparse.Namespace, cfg: Any) -> int:
    out = Output(args.json)
    mode, concurrency, rate = "closed", 10, 25.0
    if args.serial:
        mode = "serial"
    elif args.rate is not None:
        mode, rate = "open", args.rate
    elif args.concurrency is not None:
        concurrency = args.concurrency

    def go() -> int:
        if args.warmup < 0:
            raise Usage("--warmup must be 0 or more seconds")
        ctx = make_context(args, cfg)
        return run_bench(ctx, out, mode=mode, concurrency=concurrency, rate=rate, duration=args.duration,
                         warmup=args.warmup, max_tokens=args.max_tokens)
    return _run(go, out)


__all__ = ["Output", "run_status", "run_apply", "run_express", "run_verify_command", "run_bench", "gather_secrets",
           "status_command", "apply_command", "verify_command", "bench_command", "status_arguments",
           "apply_arguments", "verify_arguments", "bench_arguments"]
