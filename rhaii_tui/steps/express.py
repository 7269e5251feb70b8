"""Express mode: every piece of steps/graph.py starts as soon as its needs hold, several at once.

`ExpressRun(ctx, on_event=..., stop=...)`:
- `prepare()` probes where the deployment stands (every step, in parallel) and decides which pieces
  are already done (resumable: a re-run after kill -9 skips them; the others call the steps'
  idempotent ensure/apply functions, which reattach to running operations instead of repeating them).
- `billable_plan()` -> (lines, cost per day) for the ONE confirmation up front (cluster and TPU pool).
- `run()` (blocking, in a worker thread) schedules the pieces: a piece starts when every fact it needs
  holds (read live), on its own thread; `on_event(PieceEvent)` is called from run()'s thread. The
  first failure stops new work, lets running pieces reach a safe point (they get the stop event:
  a cloud operation keeps running and is reattached to next time), and the result carries the
  failing step's diagnosis.
- Times are read on the cloud's clock (`profile.cloud_now()`: simulated under --sim, else the wall
  clock), from the start of the run.

No Textual here.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..cloud.gke import CloudError
from ..threads import DaemonExecutor
from .base import Status, StepState
from .graph import BY_ID, FACTS, PIECES, Piece, holds, last_piece, missing, producers

log = logging.getLogger(__name__)

Say = Callable[[str, int, str], None]  # (piece id, step, text)


@dataclass(frozen=True)
class PieceEvent:
    piece: str
    status: str         # "waiting" | "running" | "done" | "failed" | "skipped" | "stopped"
    at_s: float         # seconds since the run started, on the cloud's clock (simulated under --sim)
    message: str = ""


@dataclass
class ExpressResult:
    ok: bool
    time_to_serving_s: float | None
    timing: dict        # {"clock": "simulated"|"wall", "time_to_serving_s": N, "steps": {"1": {...}}}
    failure: str | None  # the diagnosis text, None when ok
    data: dict = field(default_factory=dict)  # "piece", "step", "state" (StepState) of the failure; "stopped"


@dataclass
class _Record:
    status: str = "waiting"
    start_s: float | None = None
    end_s: float | None = None
    message: str = ""
    state: StepState | None = None


# --- what each piece runs (the steps' own idempotent functions) -----------------------------------


def _run_cluster(ctx: Any, say: Callable[[str], None], opts: Any) -> StepState:
    from .cluster import ensure_cluster
    from .registry import _state_of, check_cluster_confirmed

    try:
        check_cluster_confirmed(ctx, opts)
        res = ensure_cluster(ctx, lambda p: say(p.message), stop=opts.stop, pool=False,
                             poll_min=min(0.2, opts.poll), poll_max=min(10.0, max(opts.poll, 0.05) * 5))
    except CloudError as e:
        return _state_of(e)
    return StepState(Status.DONE, f"Cluster {res.cluster.name} {res.cluster.status}.")


def _run_llmisvc(ctx: Any, say: Callable[[str], None], opts: Any) -> StepState:
    from . import deploy

    try:
        for what in deploy.apply(ctx, health_route=False):
            say(f"applied {what} (server-side); its pods start on the TPU nodes as soon as they are Ready")
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    return StepState(Status.DONE, "LLMInferenceService applied.")


def _run_first_serve(ctx: Any, say: Callable[[str], None], opts: Any) -> StepState:
    """Send completions through the gateway (step 9's quick checks) until one is answered: the
    deployment serves from its first Ready replica while the others still start. Gives up after
    10 guide minutes (then step 9 as a whole says what is wrong)."""
    from .operators import time_scale_of
    from .verify import run_verify

    deadline = time.monotonic() + max(30.0, 600.0 / time_scale_of(ctx))
    last = ""
    while True:
        got: list[Any] = []
        run_verify(ctx, got.append, quick=True)
        done = next((c for c in got if serving_check(c)), None)
        access = next((c for c in got if c.key == "access"), None)
        if done is not None and access is not None and access.ok and "gateway" in access.evidence:
            say(f"first completion through the gateway: {done.evidence}")
            return StepState(Status.DONE, f"Serving through the gateway: {done.evidence}")
        bad = next((c for c in got if c.key in ("access", "completion") and c.ok is False), None)
        last = f"{bad.title}: {bad.evidence}" if bad is not None else "no answer yet"
        if time.monotonic() >= deadline or (opts.stop is not None and opts.stop.wait(max(0.05, opts.poll))):
            return StepState(Status.SKIPPED, f"No completion through the gateway yet ({last}); step 9 checks "
                             "everything once every replica is Ready.")


def _step_runner(n: int) -> Callable[[Any, Callable[[str], None], Any], StepState]:
    def run(ctx: Any, say: Callable[[str], None], opts: Any) -> StepState:
        from .registry import BY_NUMBER

        return BY_NUMBER[n].apply(ctx, say, opts)
    return run


RUNNERS: dict[str, Callable[[Any, Callable[[str], None], Any], StepState]] = {
    "preflight": _step_runner(1), "cluster": _run_cluster, "tpu-pool": _step_runner(2),
    "namespace-secrets": _step_runner(3), "operators": _step_runner(4), "llmisvc": _run_llmisvc,
    "replicas": _step_runner(5), "epp-sidecar": _step_runner(6), "envoyfilters": _step_runner(7),
    "netpol": _step_runner(8), "first-serve": _run_first_serve, "verify": _step_runner(9), "performance": _step_runner(10),
    "identity": _step_runner(11),
}
# pieces done when this fact holds, whatever their step's probe says (part of a step)
_DONE_WHEN = {"cluster": "cluster-api", "llmisvc": "llmisvc"}
# pieces done only when their step is done and this holds too (a kill between the replicas becoming
# Ready and the piece's last action leaves the step's probe DONE without it)
_DONE_ALSO = {"replicas": "health-route"}


class ExpressRun:
    def __init__(self, ctx: Any, *, on_event: Callable[[PieceEvent], None] | None = None,
                 stop: threading.Event | None = None, opts: Any = None, through: int = 11,
                 say: Say | None = None, lease: Any = None, idle_timeout: float | None = None) -> None:
        """`opts`: registry.RunOptions (default: everything confirmed, as after the one confirmation
        up front). `through`: the last step to run. `say(piece, step, text)`: progress lines.
        `lease`: an object with `ensure(step)` and `lost` (headless' lease keeper), or None.
        `idle_timeout`: wall seconds nothing may run while some piece still waits (default:
        20 guide minutes at the cloud's speed, at least 60 s)."""
        from .registry import RunOptions

        self.ctx = ctx
        self.on_event = on_event
        self.stop = stop or threading.Event()
        self.opts = opts if opts is not None else RunOptions(yes=True)
        self.through = through
        self.say = say
        self.lease = lease
        self.pieces: list[Piece] = [p for p in PIECES if p.step <= through]
        self.states: dict[int, StepState] | None = None
        self.records: dict[str, _Record] = {p.id: _Record() for p in self.pieces}
        scale = float(getattr(ctx.profile, "time_scale", 1.0) or 1.0)
        self.idle_timeout = idle_timeout if idle_timeout is not None else max(60.0, 1200.0 / scale)
        self._t0: float | None = None
        self._served_s: float | None = None  # the first completion verified through the gateway

    # --- clock ------------------------------------------------------------------------------------
    def _now(self) -> float:
        try:
            return float(self.ctx.profile.cloud_now())
        except Exception:  # noqa: BLE001 - a clock read never takes the run down
            return time.time() * float(getattr(self.ctx.profile, "time_scale", 1.0) or 1.0)

    def _at(self) -> float:
        if self._t0 is None:
            self._t0 = self._now()
        return round(max(0.0, self._now() - self._t0), 3)

    # --- before ---------------------------------------------------------------------------------
    def prepare(self) -> dict[int, StepState]:
        """Probe every step (in parallel) and mark the pieces already done. Starts the clock."""
        from .registry import probe_all

        if self._t0 is None:
            self._t0 = self._now()
        self.states = probe_all(self.ctx, steps=range(1, self.through + 1))
        for p in self.pieces:
            rec = self.records[p.id]
            st = self.states[p.step]
            done = st.done and not self._redo(p.step, st)
            if not done and p.id in _DONE_WHEN:
                done = holds(self.ctx, _DONE_WHEN[p.id])
            if done and p.id in _DONE_ALSO:
                done = holds(self.ctx, _DONE_ALSO[p.id])
            if done:
                rec.status, rec.message = "skipped", "done before this run"
        return self.states

    def _redo(self, n: int, st: StepState) -> bool:
        return n == 8 and getattr(self.opts, "netpol", None) == "apply" and st.status.value == "skipped"

    def billable_plan(self) -> tuple[list[str], float]:
        """Lines for the one confirmation up front (every billable action of the run), and the total
        cost per day once it runs. ([], 0.0): nothing billable to do. Raises CloudError when the
        cluster cannot be read."""
        from .cluster import plan as cluster_plan
        from .registry import cost_text

        if self.through < 2:
            return [], 0.0
        plan = cluster_plan(self.ctx)
        if not plan.billable:
            return [], 0.0
        return [cost_text(plan), *plan.actions], float(plan.cost_per_day)

    # --- the run --------------------------------------------------------------------------------
    def _emit(self, piece: str, status: str, at_s: float, message: str = "") -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(PieceEvent(piece, status, at_s, message))
        except Exception:  # noqa: BLE001
            log.exception("on_event callback failed")

    def _line(self, p: Piece, text: str) -> None:
        if self.say is not None and text:
            try:
                self.say(p.id, p.step, text)
            except Exception:  # noqa: BLE001
                log.exception("say callback failed")

    def _on_check(self, c: Any) -> None:
        if self.opts.on_check is not None:
            self.opts.on_check(c)
        if serving_check(c) and self._served_s is None:
            self._served_s = self._at()

    def _work(self, p: Piece, opts: Any) -> tuple[StepState, float]:
        last = [""]

        def say(text: str) -> None:
            if text and text != last[0]:
                last[0] = text
                self._line(p, text)
        label = f"{p.step}. {p.title}"
        try:
            self.ctx.step = label
            with self.ctx.transcript.in_step(label):  # this piece's changes name it, not another's
                st = RUNNERS[p.id](self.ctx, say, opts)
        except CloudError as e:
            st = StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
        return st, self._at()

    def run(self) -> ExpressResult:
        """Blocking (run it in a worker thread); `on_event` is called from this thread."""
        from ..lease import LeaseHeld
        from .registry import StepBlocked

        if self.states is None:
            self.prepare()
        for p in self.pieces:
            rec = self.records[p.id]
            self._emit(p.id, rec.status, 0.0, rec.message)
        work_stop = threading.Event()
        opts = dataclasses.replace(self.opts, stop=work_stop, on_check=self._on_check)
        running: dict[cf.Future, Piece] = {}
        failure: tuple[Piece | None, StepState] | None = None
        stopped = False
        idle_since: float | None = None
        poll = max(0.05, min(float(getattr(self.opts, "poll", 2.0) or 2.0), 5.0))
        pool = DaemonExecutor(max_workers=len(self.pieces) or 1, thread_name_prefix="express")
        try:
            while True:
                # finished work
                for fut in [f for f in running if f.done()]:
                    p = running.pop(fut)
                    rec = self.records[p.id]
                    try:
                        st, end = fut.result()
                    except StepBlocked as b:
                        st, end = StepState(Status.FAILED, b.message, data={"blocked": True, **b.data}), self._at()
                    except Exception as e:  # noqa: BLE001 - a crashing piece is that piece's failure
                        log.exception("piece %s crashed", p.id)
                        st, end = StepState(Status.FAILED, f"{p.title} crashed ({e.__class__.__name__}: {e}).",
                                            fix="Run apply again; if it persists, report it."), self._at()
                    rec.state, rec.end_s = st, end
                    if st.done:
                        rec.status, rec.message = "done", st.summary
                    elif (failure is not None and work_stop.is_set()) or stopped:
                        rec.status, rec.message = "stopped", st.summary
                    else:
                        rec.status, rec.message = "failed", st.summary
                        if failure is None:
                            failure = (p, st)
                            work_stop.set()
                    self._emit(p.id, rec.status, end, rec.message)
                    if p.id == "namespace-secrets" and st.done and self.lease is not None and failure is None:
                        try:
                            self.lease.ensure(p.step)
                        except (LeaseHeld, CloudError) as e:
                            failure = (None, _lease_state(e))
                            work_stop.set()
                if self.stop.is_set() and not stopped:
                    stopped = True
                    work_stop.set()
                if self.lease is not None and getattr(self.lease, "lost", None) is not None and failure is None:
                    failure = (None, _lease_state(LeaseHeld(self.lease.lost)))
                    work_stop.set()
                if failure is not None or stopped:
                    if not running:
                        break
                    cf.wait(list(running), timeout=poll, return_when=cf.FIRST_COMPLETED)
                    continue
                # start what can start
                cache: dict[str, bool] = {}
                waiting = [p for p in self.pieces if self.records[p.id].status == "waiting"]
                for p in waiting:
                    if any(q in self.records and self.records[q].status == "waiting" for q in producers(p)):
                        continue  # what makes its needs true has not started: no need to read them yet
                    if missing(self.ctx, p, cache):
                        continue
                    if 3 <= p.step <= 8 and self.lease is not None:
                        try:
                            self.lease.ensure(p.step)
                        except (LeaseHeld, CloudError) as e:
                            failure = (None, _lease_state(e))
                            work_stop.set()
                            break
                    rec = self.records[p.id]
                    rec.status, rec.start_s = "running", self._at()
                    self._emit(p.id, "running", rec.start_s)
                    running[pool.submit(self._work, p, opts)] = p
                if failure is not None:
                    continue
                waiting = [p for p in self.pieces if self.records[p.id].status == "waiting"]
                if not waiting and not running:
                    break
                if running:
                    idle_since = None
                    cf.wait(list(running), timeout=poll, return_when=cf.FIRST_COMPLETED)
                    continue
                # nothing runs, something waits: its facts may still come true (a controller acts)
                idle_since = idle_since if idle_since is not None else time.monotonic()
                if time.monotonic() - idle_since > self.idle_timeout:
                    p = waiting[0]
                    left = missing(self.ctx, p)
                    failure = (p, StepState(
                        Status.FAILED, f"{p.title} waits for " + ", ".join(FACTS[f].title for f in left) +
                        ", which does not come true.",
                        fix="Look at the step that makes it true (rhaii-tui status), fix it, then run apply again."))
                    break
                if self.stop.wait(poll):
                    continue
        finally:
            work_stop.set()
            pool.shutdown(wait=False)
        for p in self.pieces:  # never started
            rec = self.records[p.id]
            if rec.status == "waiting" and (failure is not None or stopped):
                rec.status = "stopped"
                self._emit(p.id, "stopped", self._at(), "not started")
        return self._result(failure, stopped)

    def _result(self, failure: tuple[Piece | None, StepState] | None, stopped: bool) -> ExpressResult:
        timing = self.timing()
        data: dict[str, Any] = {"stopped": stopped}
        text = None
        if failure is not None:
            p, st = failure
            data.update(piece=p.id if p else None, step=p.step if p else None, state=st)
            parts = [f"step {p.step} ({p.title}): {st.summary}" if p else st.summary]
            if st.detail and st.detail != st.summary:
                parts.append(st.detail)
            if st.fix:
                parts.append(f"fix: {st.fix}")
            text = "\n".join(parts)
        ok = failure is None and not stopped
        return ExpressResult(ok, timing["time_to_serving_s"], timing, text, data)

    # --- after ----------------------------------------------------------------------------------
    def timing(self) -> dict[str, Any]:
        """The "timing" JSON: per step, from its first piece's start to its last piece's end; steps
        done before the run have start_s = end_s = 0 and "skipped": true."""
        steps: dict[str, Any] = {}
        for n in sorted({p.step for p in self.pieces}):
            recs = [self.records[p.id] for p in self.pieces if p.step == n]
            ran = [r for r in recs if r.start_s is not None]
            if not ran:
                if all(r.status == "skipped" for r in recs):
                    steps[str(n)] = {"start_s": 0.0, "end_s": 0.0, "skipped": True}
                continue
            ends = [r.end_s for r in recs if r.end_s is not None]
            steps[str(n)] = {"start_s": min(r.start_s for r in ran),  # type: ignore[type-var]
                             "end_s": max(ends) if len(ends) == len(ran) else None}
        return {"clock": getattr(self.ctx.profile, "clock_kind", "wall"),
                "time_to_serving_s": self.time_to_serving(), "steps": steps}

    def time_to_serving(self) -> float | None:
        """From the start of the run to the first verified completion through the gateway (step 9)."""
        rec = self.records.get("verify")
        if rec is None:
            return None
        if rec.status == "done":
            first = self.records.get("first-serve")
            if first is not None and first.status == "done" and first.end_s is not None:
                return min(first.end_s, self._served_s if self._served_s is not None else rec.end_s or first.end_s)
            return self._served_s if self._served_s is not None else rec.end_s
        if rec.status == "skipped":
            return 0.0
        return None

    def critical_path(self) -> list[str]:
        """The chain of pieces that set the time to serving: from the piece that served first (the
        first completion through the gateway, else verify; else the last piece to end), back through
        the producer of its needs that finished last."""
        ended = {pid: r for pid, r in self.records.items() if r.end_s is not None}
        if not ended:
            return []
        first = ended.get("first-serve")
        if first is not None and first.status == "done":
            target = "first-serve"
        elif "verify" in ended:
            target = "verify"
        else:
            target = max(ended, key=lambda k: ended[k].end_s or 0.0)
        path = [target]
        cur = target
        while True:
            before = [q for q in producers(BY_ID[cur]) if q in ended and q not in path]
            if not before:
                break
            cur = max(before, key=lambda q: ended[q].end_s or 0.0)
            path.append(cur)
        return list(reversed(path))

    def pieces_dict(self) -> list[dict[str, Any]]:
        return [{"id": p.id, "title": p.title, "step": p.step, "needs": list(p.needs), "billable": p.billable,
                 "status": self.records[p.id].status, "start_s": self.records[p.id].start_s,
                 "end_s": self.records[p.id].end_s, "message": self.records[p.id].message} for p in self.pieces]


def serving_check(c: Any) -> bool:
    """A verify check (steps/verify.py CheckResult) that is a completion answered through the gateway:
    the moment the deployment serves (`time_to_serving_s` ends there, once step 9 passes as a whole)."""
    return getattr(c, "key", "") == "completion" and getattr(c, "ok", None) is True


def _lease_state(e: Exception) -> StepState:
    from ..lease import LeaseHeld

    if isinstance(e, LeaseHeld):
        return StepState(Status.FAILED, str(e), data={"lease": e.info.to_dict()})
    msg = getattr(e, "message", str(e))
    return StepState(Status.FAILED, f"could not take the deploy lease: {msg}", fix=getattr(e, "fix", ""))


def step_of_piece(piece: str) -> int:
    return BY_ID[piece].step


__all__ = ["PieceEvent", "ExpressResult", "ExpressRun", "RUNNERS", "last_piece", "step_of_piece", "serving_check"]
