"""The eleven steps in one table: each step's probe and its headless apply, plus where the
deployment stands.

- `STEPS`: one `StepEntry` per guide step (number, key, title, `probe(ctx) -> StepState`,
  `apply(ctx, say, opts) -> StepState`, mutating?, optional?).
- `probe_step(ctx, ref)`: one probe that never raises (a crash becomes a FAILED state).
- `probe_all(ctx, on_progress)`: every probe at once (threads); `on_progress(number, state)` is called
  as each finishes (from the calling thread). Returns `{number: StepState}` in step order.
- `summary(states)` -> `Standing`: which steps are done, in progress (with what, e.g.
  "step 5: 2/3 pods ready, replica 3 compiling for 4m"), failed and why, and the first step not done.
  The resume screen and `rhaii-tui status` both use it.
- The apply functions are what `rhaii-tui apply` runs for a step that is not done. They use the same
  step modules as the wizard's screens. A step that cannot go on without the user raises `StepBlocked`
  (`NeedsConfirmation` for a billable action, `NeedsInput` for missing secrets or installer) before it
  changes anything; everything else comes back as a StepState.

No Textual here.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..cloud.gke import CloudError
from ..config import HF_SECRET_NAME, PULL_SECRET_NAME, TPU_MACHINE_TYPE, TPU_POOL_NAME
from ..guide import STEPS as GUIDE_STEPS
from ..guide import step as guide_step
from ..threads import DaemonExecutor
from .base import Status, StepState

log = logging.getLogger(__name__)

Say = Callable[[str], None]


# --- options and refusals ------------------------------------------------------------------------


@dataclass
class RunOptions:
    """How the headless apply runs the steps."""

    yes: bool = False                      # billable actions (cluster/pool create, resize) confirmed
    netpol: str | None = None              # "apply" | "skip" | None (remembered choice, else skip)
    installer_dir: str | None = None       # a rhaii-on-xks checkout (real cloud, step 4)
    replace_failed_pool: bool = False      # step 2: delete a TPU pool in ERROR and create it again (needs yes)
    poll: float = 2.0                      # seconds between progress checks
    stop: threading.Event | None = None    # set to stop following (Ctrl-C, lost lease)
    perf: Any = None                       # steps.performance.PerfOptions for step 10 (default: proof only)
    secret_hints: dict[str, str] = field(default_factory=dict)  # secret name -> how to give it
    installer_hint: str = ""               # how to give the installer (said when it is missing)
    kubeconfig_dir: str | None = None      # where step 4 writes the installer's kubeconfig (real cloud)
    keep_waiting: bool = False             # step 2: keep following a TPU pool the instance groups say is stocked out
    on_check: Callable[[Any], None] | None = None  # step 9: called with each verify.CheckResult as it finishes


class StepBlocked(Exception):
    """The step needs something from the user before it may change anything (exit code 2)."""

    def __init__(self, step: int, message: str, **data: Any) -> None:
        self.step = step
        self.message = message
        self.data = data
        super().__init__(message)


class NeedsConfirmation(StepBlocked):
    """A billable action (cluster or node-pool create, resize) was not confirmed."""


class NeedsInput(StepBlocked):
    """Secrets or the installer checkout were not given."""


# --- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepEntry:
    number: int
    key: str
    title: str
    probe: Callable[[Any], StepState]
    apply: Callable[[Any, Say, RunOptions], StepState]
    mutating: bool          # changes the cluster (takes the lease from step 3 on)
    optional: bool = False

    @property
    def label(self) -> str:
        return f"{self.number}. {self.title}"


def _probe(module: str) -> Callable[[Any], StepState]:
    def probe(ctx: Any) -> StepState:
        import importlib

        return importlib.import_module(f"rhaii_tui.steps.{module}").probe(ctx)
    probe.__name__ = f"probe_{module}"
    return probe


def _state_of(e: CloudError) -> StepState:
    return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind, **_plain(e.details)})


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (d or {}).items() if isinstance(v, (str, int, float, bool, type(None)))}


def _dedupe(say: Say) -> Say:
    last = [None]

    def out(line: str) -> None:
        if line and line != last[0]:
            last[0] = line
            say(line)
    return out


# 1 ------------------------------------------------------------------------------------------------
def apply_preflight(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from .preflight import run_checks

    marks = {"pass": "ok", "warn": "warning", "fail": "FAILED", "skip": "not checked"}
    rep = run_checks(ctx, lambda r: say(f"{r.title}: {marks.get(r.status, r.status)} - {r.detail}"))
    return rep.state()


# 2 ------------------------------------------------------------------------------------------------
def cost_text(plan: Any) -> str:
    """What a billable plan creates or changes (with verbs), and what it costs per day."""
    parts = []
    if plan.creates_cluster:
        parts.append(f"create cluster {plan.cluster} in {plan.zone}")
    if plan.creates_pool:
        parts.append(f"create node pool {TPU_POOL_NAME} ({plan.replicas} x {TPU_MACHINE_TYPE}, {plan.chips} TPU v6e "
                     "chips)")
    if plan.resize:
        parts.append(f"resize node pool {TPU_POOL_NAME} from {plan.resize[0]} to {plan.resize[1]} node(s)")
    what = " and ".join(parts) or "change billable resources"
    return (f"{what}: about ${plan.cost_per_day:,.2f}/day while running "
            f"(${plan.cost_scaled_to_zero:,.2f}/day scaled to zero)")


def check_cluster_confirmed(ctx: Any, opts: RunOptions) -> Any:
    """Step 2's plan; raises NeedsConfirmation when it is billable and not confirmed."""
    from .cluster import plan as cluster_plan

    plan = cluster_plan(ctx)
    if plan.billable and not opts.yes:
        raise NeedsConfirmation(2, f"step 2 would {cost_text(plan)}. Re-run with --yes to accept the cost.",
                                plan=plan.to_dict())
    return plan


def apply_cluster(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from .cluster import ensure_cluster, probe

    try:
        plan = check_cluster_confirmed(ctx, opts)
    except CloudError as e:
        return _state_of(e)
    if plan.billable:
        say(f"Confirmed with --yes: {cost_text(plan)}.")
    for a in plan.actions:
        say(a)
    out = _dedupe(say)
    poll_min = min(0.2, opts.poll)
    poll_max = min(10.0, max(opts.poll, 0.05) * 5)
    try:
        res = ensure_cluster(ctx, lambda p: out(p.message), resize=opts.yes, stop=opts.stop,
                             replace_failed_pool=opts.replace_failed_pool and opts.yes,
                             poll_min=poll_min, poll_max=poll_max, keep_waiting=opts.keep_waiting)
    except CloudError as e:
        if e.details.get("failed_pool") and not opts.replace_failed_pool:
            e.fix += (" Headless: rhaii-tui apply --yes --replace-failed-pool deletes the failed pool and creates "
                      "it again.")
        state = _state_of(e)
        if isinstance(e.details.get("stockout"), dict):  # the diagnosis and the options, with their commands
            state.data["stockout"] = e.details["stockout"]
            state.detail = "\n".join(e.details["stockout"].get("lines") or [])
        return state
    if res.resize_needed:
        from .stockout import billing_summary

        cur, want = res.resize_needed
        billing = billing_summary(ctx.cfg, cur)
        return StepState(Status.FAILED, f"Node pool {TPU_POOL_NAME} has {cur} node(s); {want} wanted.",
                         detail=f"Already running and billing: {billing['text']}",
                         fix=f"Re-run with --yes to resize it (billable), or with --replicas {max(cur, 1)} to use "
                             "the pool's size.", data={"billing": billing})
    return probe(ctx)


# 3 ------------------------------------------------------------------------------------------------
def secrets_needed(ctx: Any) -> list[str]:
    """The secrets step 3 still has to create: those not in the cluster in good shape (all of them
    while there is no cluster)."""
    from .secrets import secret_statuses

    try:
        info = ctx.cluster()
        if info is None or not info.serving_api:
            return [PULL_SECRET_NAME, HF_SECRET_NAME]
        ok = {s.name for s in secret_statuses(ctx) if s.ok}
    except CloudError:
        return [PULL_SECRET_NAME, HF_SECRET_NAME]
    return [n for n in (PULL_SECRET_NAME, HF_SECRET_NAME) if n not in ok]


def check_secrets_given(ctx: Any, opts: RunOptions, needed: Iterable[str] | None = None) -> list[str]:
    """Raises NeedsInput naming what to give when a needed secret was not supplied."""
    needed = list(secrets_needed(ctx) if needed is None else needed)
    have = {s.name for s in ctx.secrets.specs}
    missing = [n for n in needed if n not in have]
    if missing:
        how = "; ".join(f"{n}: {opts.secret_hints.get(n) or 'enter it in step 3'}" for n in missing)
        raise NeedsInput(3, f"step 3 needs {len(missing)} secret(s) not in the cluster yet. {how}", missing=missing)
    return needed


def apply_secrets(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from . import secrets as step3

    needed = check_secrets_given(ctx, opts)
    have = [s for s in ctx.secrets.specs if s.name in needed]
    try:
        if not have:  # both already fine: only the namespace may be missing
            created = step3.ensure_namespace(ctx)
            say(f"Namespace {ctx.cfg.namespace} {'created' if created else 'exists'}.")
        else:
            from ..secrets import SecretsInput

            inp = SecretsInput()
            for s in have:
                inp.add(s)
            step3.apply_secrets(ctx, inp, say)
    except CloudError as e:
        return _state_of(e)
    return step3.probe(ctx)


# 4 ------------------------------------------------------------------------------------------------
def apply_operators(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from ..cloud.profile import CredentialsError, cluster_key
    from . import operators

    st = operators.probe(ctx)
    if st.status is Status.DONE:
        return st
    if st.status is Status.FAILED:
        return st
    if st.status is Status.NOT_STARTED:
        cfg = ctx.cfg
        key = cluster_key(cfg.project, cfg.zone, cfg.cluster)
        if opts.installer_dir is not None:
            problem = installer_dir_problem(opts.installer_dir)
            if problem:
                raise NeedsInput(4, problem)
        try:
            op = ctx.profile.install_operators(key, opts.installer_dir)
        except CredentialsError as e:
            hint = opts.installer_hint or "give the installer's directory"
            raise NeedsInput(4, f"step 4 installs the operators with the upstream installer: {hint}. ({e})") from None
        except CloudError as e:
            return _state_of(e)
        if op.command:
            env = dict(op.env)
            kubeconfig = _installer_kubeconfig(ctx, opts)
            if kubeconfig:
                env["KUBECONFIG"] = str(kubeconfig)
                say(f"KUBECONFIG={kubeconfig} (this cluster only)")
            say(f"$ {' '.join(op.command)}  (in {op.cwd or '.'})")
            code = operators.run_streaming(op.command, say, cwd=op.cwd, env=env, stop=opts.stop)
            if code != 0:
                return StepState(Status.FAILED, f"The installer exited with code {code}.",
                                 fix=operators.TROUBLESHOOTING["operator-pods"]["text"],
                                 data={"exit_code": code})
        else:
            say(op.message or "Operator install started.")
    else:
        say(f"Install already under way: {st.summary}")
    out = _dedupe(say)
    timeout = max(2 * 600.0 / operators.time_scale_of(ctx), 30.0)  # a loaded machine needs wall time too
    return operators.wait_ready(ctx, timeout, poll=opts.poll, stop=opts.stop, on_state=lambda s: out(s.summary))


def installer_dir_problem(path: str) -> str | None:
    p = Path(path).expanduser()
    if not p.is_dir():
        return f"--installer-dir {path}: no such directory (a local checkout of rhaii-on-xks is expected)."
    if not (p / "Makefile").is_file():
        return (f"--installer-dir {path} has no Makefile: point it at a checkout of "
                "https://github.com/opendatahub-io/rhaii-on-xks (make deploy-all).")
    return None


def _installer_kubeconfig(ctx: Any, opts: RunOptions) -> Path | None:
    """A kubeconfig with only this cluster, so the installer's kubectl/helm cannot hit another one."""
    if not opts.kubeconfig_dir:
        return None
    info = ctx.cluster(refresh=True)
    if info is None:
        return None
    path = Path(opts.kubeconfig_dir) / f"kubeconfig-{ctx.cfg.cluster}"
    try:
        return ctx.gke.write_kubeconfig(info, path)
    except CloudError as e:
        log.warning("could not write the installer's kubeconfig: %s", e)
        return None


# 5-8 ----------------------------------------------------------------------------------------------
def apply_deploy(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from . import deploy

    return deploy.run(ctx, _dedupe(say), stop=opts.stop, poll=opts.poll)


def apply_epp(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from . import epp

    return epp.run(ctx, _dedupe(say), stop=opts.stop)


def apply_envoyfilters(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from . import envoyfilters

    return envoyfilters.run(ctx, say)


def netpol_decision(ctx: Any, opts: RunOptions) -> tuple[str, str]:
    """(decision, where it came from): the flag, the remembered choice, else skip for a PoC."""
    from . import netpol

    if opts.netpol in (netpol.SKIP, netpol.APPLY):
        return opts.netpol, "--netpol"
    remembered = netpol.choice(ctx)
    if remembered:
        return remembered, "remembered choice"
    return netpol.SKIP, "default for a PoC"


def apply_netpol(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from . import netpol

    decision, source = netpol_decision(ctx, opts)
    if decision == netpol.SKIP:
        say(f"NetworkPolicies: skip ({source}); use --netpol apply for production isolation.")
    else:
        say(f"NetworkPolicies: apply ({source}).")
    return netpol.run(ctx, say, decision=decision)


# 9-11 ---------------------------------------------------------------------------------------------
def _check_line(c: Any) -> str:
    return f"[{c.mark}] {c.title}: {c.evidence}"


def apply_verify(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from .verify import all_passed, first_failure, run_verify, summary_of

    def on_check(c: Any) -> None:
        say(_check_line(c))
        if opts.on_check is not None:
            opts.on_check(c)

    checks = run_verify(ctx, on_check)
    data = {"checks": [c.to_dict() for c in checks]}
    if all_passed(checks):
        return StepState(Status.DONE, summary_of(checks), data=data)
    bad = first_failure(checks)
    return StepState(Status.FAILED, summary_of(checks), detail=bad.evidence if bad else "",
                     fix=bad.fix if bad else "", data=data)


def default_perf_options() -> Any:
    from .performance import PerfOptions

    return PerfOptions(modes=(), latency_only=False)


def apply_performance(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from .performance import probe, run_performance

    res = run_performance(ctx, opts.perf or default_perf_options(),
                          lambda e: say(e.message) if e.tick is None else None, stop=opts.stop)
    if res.passed:
        st = probe(ctx)
        if st.status is Status.DONE:
            return st
        return StepState(Status.DONE, res.headline, data={"result": res.summary()})
    return StepState(Status.FAILED, f"{res.status}: {res.headline}",
                     fix="Fix what it names (steps 6-7 for routing, step 5 for the replicas), then run it again.",
                     data={"result": res.summary()})


def apply_identity(ctx: Any, say: Say, opts: RunOptions) -> StepState:
    from .identity import run_identity

    res = run_identity(ctx, lambda c: say(_check_line(c)))
    bad = next((c for c in res.checks if c.ok is False), None)
    if res.passed:
        return StepState(Status.DONE, res.headline, data={"result": res.to_dict()})
    return StepState(Status.FAILED, res.headline, fix=bad.fix if bad else "", data={"result": res.to_dict()})


_APPLY = {1: apply_preflight, 2: apply_cluster, 3: apply_secrets, 4: apply_operators, 5: apply_deploy,
          6: apply_epp, 7: apply_envoyfilters, 8: apply_netpol, 9: apply_verify, 10: apply_performance,
          11: apply_identity}
_MODULES = {1: "preflight", 2: "cluster", 3: "secrets", 4: "operators", 5: "deploy", 6: "epp",
            7: "envoyfilters", 8: "netpol", 9: "verify", 10: "performance", 11: "identity"}

STEPS: tuple[StepEntry, ...] = tuple(
    StepEntry(s.number, s.key, s.title, _probe(_MODULES[s.number]), _APPLY[s.number],
              mutating=3 <= s.number <= 8, optional=s.optional)
    for s in GUIDE_STEPS)
BY_NUMBER: dict[int, StepEntry] = {e.number: e for e in STEPS}


def entry(ref: int | str) -> StepEntry:
    return BY_NUMBER[guide_step(ref).number]


# --- probing ---------------------------------------------------------------------------------------


def probe_step(ctx: Any, ref: int | str) -> StepState:
    """One step's state from the live environment. Never raises."""
    e = entry(ref)
    t0 = time.monotonic()
    try:
        st = e.probe(ctx)
    except CloudError as err:
        st = _state_of(err)
    except Exception as err:  # noqa: BLE001 - a probe never takes the caller down
        from ..cloud.profile import CredentialsError

        if isinstance(err, CredentialsError):
            st = StepState(Status.FAILED, str(err), data={"error_kind": "credentials"})
        else:
            log.exception("probe of step %s crashed", e.number)
            st = StepState(Status.FAILED, f"Could not read the state of step {e.number} "
                           f"({err.__class__.__name__}: {err}).", fix="Retry; if it persists, report it.",
                           data={"error_kind": "unknown"})
    if st.status is Status.FAILED and (st.data or {}).get("error_kind") in UNREADABLE_KINDS:
        # not the step's failure: its state could not be read (one root cause for every step)
        st = StepState(Status.UNKNOWN, "Not read: " + st.summary, detail=st.detail, fix=st.fix,
                       data={**st.data, "cause": {"kind": st.data.get("error_kind"), "message": st.summary,
                                                  "fix": st.fix}})
    st.data.setdefault("probe_seconds", round(time.monotonic() - t0, 3))
    return st


# a probe that fails with these could not read the step's state (it says nothing about the step)
UNREADABLE_KINDS = ("unavailable", "credentials")


def probe_all(ctx: Any, on_progress: Callable[[int, StepState], None] | None = None, *,
              steps: Iterable[int] | None = None, max_workers: int = 6) -> dict[int, StepState]:
    """Probe the steps in parallel (a thread each, up to max_workers). `on_progress(number, state)` is
    called as each probe finishes, from the thread that called probe_all (run probe_all in a worker and
    post a message from the callback). Returns {number: state} in step order."""
    numbers = sorted(set(steps)) if steps is not None else [e.number for e in STEPS]
    try:  # one cluster read up front: the probes then share it instead of racing for it
        ctx.cluster(refresh=True)
    except Exception:  # noqa: BLE001 - each probe reports its own error
        pass
    results: dict[int, StepState] = {}

    def one(n: int) -> tuple[int, StepState]:
        return n, probe_step(ctx, n)

    with DaemonExecutor(max_workers=max(1, min(max_workers, len(numbers))),  # quitting never waits for it
                        thread_name_prefix="probe") as pool:
        for fut in cf.as_completed([pool.submit(one, n) for n in numbers]):
            n, st = fut.result()
            results[n] = st
            if on_progress is not None:
                try:
                    on_progress(n, st)
                except Exception:  # noqa: BLE001
                    log.exception("on_progress callback failed")
    return {n: results[n] for n in numbers}


# --- where the deployment stands -------------------------------------------------------------------


@dataclass
class Standing:
    """Where the deployment stands, from the steps' states."""

    states: dict[int, StepState]
    done: list[int] = field(default_factory=list)          # done or skipped by choice
    in_progress: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    not_started: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)       # could not be read
    first_not_done: int | None = None                      # None: every step is done
    headline: str = ""

    @property
    def causes(self) -> list[dict[str, Any]]:
        """Why the unknown steps could not be read: each distinct cause once, with its steps."""
        out: list[dict[str, Any]] = []
        for n in self.unknown:
            c = dict((self.states[n].data or {}).get("cause") or {"message": self.states[n].summary})
            same = next((o for o in out if o["message"] == c.get("message") and o.get("fix") == c.get("fix")), None)
            if same is None:
                out.append({**c, "steps": [n]})
            else:
                same["steps"].append(n)
        return out

    @property
    def complete(self) -> bool:
        return self.first_not_done is None and bool(self.states)

    @property
    def serving(self) -> bool:
        """Steps 1-9 done: the service answers."""
        return all(self.states.get(n) is not None and self.states[n].done for n in range(1, 10))

    def lines(self) -> list[str]:
        """Short lines for a log or a resume screen."""
        out = []
        for n in self.failed:
            st = self.states[n]
            out.append(f"step {n} failed: {st.summary}" + (f" Fix: {st.fix}" if st.fix else ""))
        for n in self.in_progress:
            out.append(f"step {n}: {self.states[n].summary}")
        if self.first_not_done is not None:
            out.append(f"first step not done: {BY_NUMBER[self.first_not_done].label}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "in_progress": [{"step": n, "summary": self.states[n].summary}
                                                   for n in self.in_progress],
                "failed": [{"step": n, "summary": self.states[n].summary, "detail": self.states[n].detail,
                            "fix": self.states[n].fix} for n in self.failed],
                "not_started": self.not_started, "unknown": self.unknown, "first_not_done": self.first_not_done,
                "complete": self.complete, "serving": self.serving, "headline": self.headline}


def summary(states: Mapping[int, StepState]) -> Standing:
    """Where the deployment stands: done / in progress (with what) / failed and why / the first step
    not done, and a one-line headline (the first failure, else the first step in progress, else the
    next step to run)."""
    st = Standing(dict(sorted(states.items())))
    for n, s in st.states.items():
        if s.done:
            st.done.append(n)
        elif s.status is Status.IN_PROGRESS:
            st.in_progress.append(n)
        elif s.status is Status.FAILED:
            st.failed.append(n)
        elif s.status is Status.UNKNOWN:
            st.unknown.append(n)
        else:
            st.not_started.append(n)
    st.first_not_done = next((n for n, s in st.states.items() if not s.done), None)
    if st.failed:
        n = st.failed[0]
        st.headline = f"step {n} failed: {st.states[n].summary}"
    elif st.unknown:
        kind = st.causes[0].get("kind")
        st.headline = f"{len(st.unknown)} step(s) could not be read: " + (
            "the cloud refused the credentials" if kind == "credentials" else "the cloud could not be reached")
    elif st.in_progress:
        n = st.in_progress[0]
        st.headline = f"step {n}: {st.states[n].summary}"
    elif st.first_not_done is not None:
        n = st.first_not_done
        done_to = n - 1
        before = f"steps 1-{done_to} done; " if done_to > 1 else ("step 1 done; " if done_to == 1 else "")
        st.headline = f"{before}next: step {n} ({BY_NUMBER[n].title})"
    elif st.states and len(st.states) == len(STEPS):
        st.headline = f"all {len(st.states)} steps done: serving with cache-aware routing"
    elif st.states:
        nums = list(st.states)
        st.headline = (f"steps {nums[0]}-{nums[-1]} done" if len(nums) > 1 else f"step {nums[0]} done")
    else:
        st.headline = "no step probed"
    return st


__all__ = ["STEPS", "StepEntry", "RunOptions", "StepBlocked", "NeedsConfirmation", "NeedsInput", "entry",
           "probe_step", "probe_all", "summary", "Standing", "cost_text", "check_cluster_confirmed",
           "check_secrets_given", "secrets_needed", "netpol_decision", "installer_dir_problem",
           "default_perf_options"]
