"""The guide's pod lifecycle (step 5) as a pure model: no I/O, no clients, no Textual.

Three parts the deploy screen, the headless commands and the tests share:

- `classify(pod, now=..., time_scale=...)` -> `PodLife`: the guide's stage of a workload pod
  (Pending, Init:0/1, PodInitializing, Running 0/1, Running 1/1, or a failure state), ready
  containers, restarts, how long it has been in that stage, the guide's expected range for it and a
  severity (ok / amber when past the range / red when far past it, or in a failure state).
- `MilestoneTracker`: fed with log lines of one pod; records the model download line and the five
  vLLM start-up milestones with timestamps and durations, and the KV cache size.
- `PodTable`: a keyed table model that applies watch events (ADDED / MODIFIED / DELETED / a full
  re-list) and yields minimal row diffs (changed cells only), so the screen updates cells in place.

Pods are plain dicts in the API's JSON shape (camelCase, as a watch or `sanitize_for_serialization`
gives them). Timestamps may be RFC 3339 strings, datetimes or epoch floats.

Time scale: durations observed on the cluster are wall-clock; `time_scale` says how many guide
seconds one wall second stands for (real cloud: 1.0; the simulated cloud at speed 30: 30.0).
Everything shown (time in stage, expected range) is in guide seconds, so the comparison is the same
in both worlds.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping

INIT_CONTAINER = "storage-initializer"
MAIN_CONTAINER = "main"


# --- objects -------------------------------------------------------------------------------------

_SANITIZER = None


def as_dict(obj: Any) -> dict:
    """An API object as a camelCase dict: dicts pass through; kubernetes client models (what typed
    list/watch calls return) are serialized the way the API sends them."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return obj  # type: ignore[return-value]
    global _SANITIZER
    if _SANITIZER is None:
        from kubernetes.client import ApiClient

        _SANITIZER = ApiClient.sanitize_for_serialization.__get__(object.__new__(ApiClient))
    out = _SANITIZER(obj)
    return out if isinstance(out, dict) else {}


# --- time helpers --------------------------------------------------------------------------------


def to_epoch(value: Any) -> float | None:
    """RFC 3339 string / datetime / epoch number -> epoch seconds (None when absent/unparseable)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, str):
        s = value.strip()
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        try:
            d = _dt.datetime.fromisoformat(s)
        except ValueError:
            return None
        if d.tzinfo is None:
            d = d.replace(tzinfo=_dt.timezone.utc)
        return d.timestamp()
    return None


def fmt_duration(seconds: float | None) -> str:
    """Short human duration, as kubectl shows ages: '8s', '4m10s' (seconds below 10 minutes),
    '25m', '1h05m'. An age older than 10 minutes changes once a minute on screen, not every second."""
    if seconds is None:
        return "-"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, sec = divmod(s, 60)
        return f"{m}m{sec:02d}s" if sec and s < 600 else f"{m}m"
    h, rem = divmod(s, 3600)
    return f"{h}h{rem // 60:02d}m"


def fmt_duration_changes_in(seconds: float) -> float:
    """How many seconds after `seconds` the text of `fmt_duration(seconds)` next changes (it shows
    seconds below 10 minutes, minutes above): a display of ages sleeps until then."""
    seconds = max(0.0, float(seconds))
    s = int(round(seconds))
    step = 1 if s < 600 else 60
    # int(round(x)) reaches the next multiple of `step` at x = next - 0.5 (half a second early at most)
    nxt = (s // step + 1) * step
    return max(0.0, nxt - 0.5 - seconds) + 1e-3


# --- stages --------------------------------------------------------------------------------------


class Stage(str, Enum):
    PENDING = "Pending"
    INIT = "Init:0/1"
    POD_INITIALIZING = "PodInitializing"
    STARTING = "Running 0/1"
    READY = "Running 1/1"
    # failure states
    INIT_CRASHLOOP = "Init:CrashLoopBackOff"
    INIT_ERROR = "Init:Error"
    ERR_IMAGE_PULL = "ErrImagePull"
    IMAGE_PULL_BACKOFF = "ImagePullBackOff"
    CRASHLOOP = "CrashLoopBackOff"
    TERMINATING = "Terminating"
    FAILED = "Failed"
    UNKNOWN = "Unknown"

    @property
    def is_failure(self) -> bool:
        return self in FAILURE_STAGES

    def __str__(self) -> str:  # so f"{stage}" prints the guide's text
        return self.value


FAILURE_STAGES = frozenset({
    Stage.INIT_CRASHLOOP, Stage.INIT_ERROR, Stage.ERR_IMAGE_PULL, Stage.IMAGE_PULL_BACKOFF,
    Stage.CRASHLOOP, Stage.FAILED,
})

# The guide's table (step 5): guide seconds (low, high). PodInitializing is "~10 s".
EXPECTED: dict[Stage, tuple[float, float]] = {
    Stage.PENDING: (60.0, 300.0),
    Stage.INIT: (30.0, 60.0),
    Stage.POD_INITIALIZING: (5.0, 10.0),
    Stage.STARTING: (180.0, 300.0),
    Stage.TERMINATING: (0.0, 30.0),  # default termination grace period
}

MEANING: dict[Stage, str] = {
    Stage.PENDING: "waiting for a TPU node",
    Stage.INIT: "storage-initializer downloads the model",
    Stage.POD_INITIALIZING: "init done, main container starting",
    Stage.STARTING: "vLLM loads weights and compiles for the TPU",
    Stage.READY: "ready, serving requests",
    Stage.INIT_CRASHLOOP: "the model download keeps failing",
    Stage.INIT_ERROR: "the model download failed",
    Stage.ERR_IMAGE_PULL: "the image cannot be pulled",
    Stage.IMAGE_PULL_BACKOFF: "the image cannot be pulled (retrying with back-off)",
    Stage.CRASHLOOP: "vLLM keeps crashing",
    Stage.TERMINATING: "shutting down",
    Stage.FAILED: "the pod failed",
    Stage.UNKNOWN: "state unknown (node unreachable?)",
}

RED_FACTOR = 2.0  # red when more than this many times past the top of the expected range


def expected_text(stage: Stage) -> str:
    rng = EXPECTED.get(stage)
    if rng is None:
        return ""
    lo, hi = rng
    if stage is Stage.POD_INITIALIZING:
        return "~10s"
    if stage is Stage.TERMINATING:
        return f"<{fmt_duration(hi)}"
    if lo >= 60 and hi >= 60 and lo % 60 == 0 and hi % 60 == 0:
        return f"{int(lo // 60)}-{int(hi // 60)} min"
    return f"{int(lo)}-{int(hi)} s"


def severity_for(stage: Stage, seconds_in_stage: float | None) -> str:
    """'ok' | 'amber' | 'red' for a stage held for `seconds_in_stage` guide seconds."""
    if stage.is_failure:
        return "red"
    if stage is Stage.UNKNOWN:
        return "amber"
    rng = EXPECTED.get(stage)
    if rng is None or seconds_in_stage is None:
        return "ok"
    hi = rng[1]
    if seconds_in_stage > hi * RED_FACTOR:
        return "red"
    if seconds_in_stage > hi:
        return "amber"
    return "ok"


# --- classification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodLife:
    """One pod's place in the guide's lifecycle."""

    name: str
    namespace: str
    uid: str
    stage: Stage
    status_text: str  # kubectl-like text shown in the table, e.g. "Init:0/1", "Running"
    ready: int
    total: int
    restarts: int
    node: str | None
    stage_since: float | None  # epoch seconds (wall clock) when the current stage began
    seconds_in_stage: float | None  # guide seconds
    expected: tuple[float, float] | None  # guide seconds
    severity: str  # ok | amber | red
    reason: str = ""  # waiting/terminated reason or condition message, for diagnosis
    message: str = ""

    @property
    def ready_text(self) -> str:
        return f"{self.ready}/{self.total}"

    @property
    def expected_text(self) -> str:
        return expected_text(self.stage)

    @property
    def in_stage_text(self) -> str:
        return fmt_duration(self.seconds_in_stage)

    @property
    def meaning(self) -> str:
        return MEANING.get(self.stage, "")

    @property
    def is_ready(self) -> bool:
        return self.stage is Stage.READY

    @property
    def is_failed(self) -> bool:
        return self.stage.is_failure


def _meta(pod: Mapping) -> Mapping:
    return pod.get("metadata") or {}


def _status(pod: Mapping) -> Mapping:
    return pod.get("status") or {}


def _conditions(pod: Mapping) -> dict[str, Mapping]:
    return {c.get("type"): c for c in (_status(pod).get("conditions") or []) if isinstance(c, Mapping)}


def _cond_true(pod: Mapping, ctype: str) -> bool:
    return str((_conditions(pod).get(ctype) or {}).get("status")) == "True"


def _cond_time(pod: Mapping, ctype: str) -> float | None:
    return to_epoch((_conditions(pod).get(ctype) or {}).get("lastTransitionTime"))


def _state(cs: Mapping | None) -> tuple[str, Mapping]:
    """('waiting'|'running'|'terminated'|'', detail) of a container status."""
    st = (cs or {}).get("state") or {}
    for k in ("terminated", "running", "waiting"):
        if st.get(k) is not None:
            return k, st.get(k) or {}
    return "", {}


def _last_terminated(cs: Mapping | None) -> Mapping:
    return (((cs or {}).get("lastState") or {}).get("terminated")) or {}


def pod_key(pod: Mapping) -> str:
    m = _meta(pod)
    return f"{m.get('namespace') or ''}/{m.get('name') or ''}"


_BACKOFF_PULL = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
                 "RegistryUnavailable"}


TIMESTAMP_PRECISION = 1.0  # API timestamps carry whole seconds


def classify(pod: Mapping, now: float | None = None, time_scale: float = 1.0,
             since_hint: float | None = None) -> PodLife:
    """The guide's stage of a pod, with timing and severity. Pure: same input, same answer.

    `since_hint`: when the caller saw the pod enter its current stage (a watch). The API's
    timestamps are whole seconds, which at a high simulated speed is minutes of guide time; a hint
    within that second refines the stage start."""
    now = time.time() if now is None else now
    pod = as_dict(pod)
    meta, status, spec = _meta(pod), _status(pod), pod.get("spec") or {}
    phase = status.get("phase") or "Pending"
    init_statuses = list(status.get("initContainerStatuses") or [])
    statuses = list(status.get("containerStatuses") or [])
    spec_containers = spec.get("containers") or []
    # native sidecars (init containers with restartPolicy Always, e.g. istio-proxy) count like kubectl
    sidecars = {c.get("name") for c in (spec.get("initContainers") or []) if c.get("restartPolicy") == "Always"}
    total = (len(spec_containers) or len(statuses) or 1) + len(sidecars)
    ready = sum(1 for cs in statuses if cs.get("ready")) + \
        sum(1 for cs in init_statuses if cs.get("name") in sidecars and cs.get("ready"))
    init_statuses = [cs for cs in init_statuses if cs.get("name") not in sidecars]
    restarts = sum(int(cs.get("restartCount") or 0) for cs in statuses + init_statuses)
    created = to_epoch(meta.get("creationTimestamp"))
    reason = message = ""

    stage: Stage
    since: float | None = None
    status_text: str

    n_init = len([c for c in (spec.get("initContainers") or []) if c.get("name") not in sidecars]) \
        or len(init_statuses)
    init_done = sum(1 for cs in init_statuses if _state(cs)[0] == "terminated"
                    and int((_state(cs)[1]).get("exitCode") or 0) == 0)

    if meta.get("deletionTimestamp"):
        stage, status_text = Stage.TERMINATING, "Terminating"
        grace = meta.get("deletionGracePeriodSeconds")
        dt = to_epoch(meta.get("deletionTimestamp"))
        since = dt - float(grace) if dt is not None and grace is not None else dt
        reason = "Terminating"
    elif phase == "Failed":
        stage, status_text = Stage.FAILED, status.get("reason") or "Failed"
        reason, message = status.get("reason") or "Failed", status.get("message") or ""
        since = max([t for t in (to_epoch(_state(cs)[1].get("finishedAt")) for cs in statuses) if t] or [created or now])
    elif phase == "Unknown":
        stage, status_text = Stage.UNKNOWN, "Unknown"
        since = created
    elif not spec.get("nodeName") and not _cond_true(pod, "PodScheduled"):
        stage, status_text = Stage.PENDING, "Pending"
        since = created or _cond_time(pod, "PodScheduled")
        c = _conditions(pod).get("PodScheduled") or {}
        reason, message = c.get("reason") or "", c.get("message") or ""
    else:
        # 1) init containers (kubectl order: the first unfinished init container decides)
        init_stage = None
        for cs in init_statuses:
            kind, d = _state(cs)
            if kind == "terminated" and int(d.get("exitCode") or 0) == 0:
                continue
            last = _last_terminated(cs)
            if kind == "waiting":
                r = d.get("reason") or ""
                reason, message = r, d.get("message") or ""
                if r == "CrashLoopBackOff":
                    init_stage = Stage.INIT_CRASHLOOP
                    since = to_epoch(last.get("finishedAt")) or to_epoch(last.get("startedAt"))
                elif r == "ImagePullBackOff":
                    init_stage = Stage.IMAGE_PULL_BACKOFF
                elif r in _BACKOFF_PULL:
                    init_stage = Stage.ERR_IMAGE_PULL
                elif last and int(last.get("exitCode") or 0) != 0:
                    init_stage = Stage.INIT_ERROR
                    since = to_epoch(last.get("finishedAt"))
                else:  # PodInitializing / ContainerCreating of the init container itself
                    init_stage = Stage.INIT
            elif kind == "terminated":  # exit code != 0
                init_stage = Stage.INIT_ERROR
                reason, message = d.get("reason") or "Error", d.get("message") or ""
                since = to_epoch(d.get("finishedAt"))
            else:  # running, or no state yet
                init_stage = Stage.INIT
                since = to_epoch(d.get("startedAt")) if kind == "running" else None
            break
        if init_stage is not None:
            stage = init_stage
            if stage is Stage.INIT:
                status_text = f"Init:{init_done}/{n_init or 1}"
            elif stage in (Stage.IMAGE_PULL_BACKOFF, Stage.ERR_IMAGE_PULL):
                status_text = f"Init:{reason or stage.value}"
            else:
                status_text = stage.value
            if since is None:
                since = _cond_time(pod, "PodScheduled") or created
        else:
            # 2) main containers
            main = _main_status(statuses)
            kind, d = _state(main)
            last = _last_terminated(main)
            if main is None or kind == "":
                if n_init and (init_done >= n_init or _cond_true(pod, "Initialized")):
                    stage, status_text = Stage.POD_INITIALIZING, "PodInitializing"
                    since = _cond_time(pod, "Initialized") or _init_finished(init_statuses)
                elif n_init:
                    stage, status_text = Stage.INIT, f"Init:{init_done}/{n_init}"
                    since = _cond_time(pod, "PodScheduled") or created
                else:
                    stage, status_text = Stage.POD_INITIALIZING, "ContainerCreating"
                    since = _cond_time(pod, "PodScheduled") or created
            elif kind == "waiting":
                r = d.get("reason") or ""
                reason, message = r, d.get("message") or ""
                if r == "CrashLoopBackOff":
                    stage, status_text = Stage.CRASHLOOP, "CrashLoopBackOff"
                    since = to_epoch(last.get("finishedAt")) or to_epoch(last.get("startedAt"))
                elif r == "ImagePullBackOff":
                    stage, status_text = Stage.IMAGE_PULL_BACKOFF, "ImagePullBackOff"
                elif r in _BACKOFF_PULL:
                    stage, status_text = Stage.ERR_IMAGE_PULL, r
                elif r in ("CreateContainerConfigError", "CreateContainerError", "RunContainerError"):
                    stage, status_text = Stage.CRASHLOOP, r
                else:  # PodInitializing, ContainerCreating
                    stage, status_text = Stage.POD_INITIALIZING, "PodInitializing" if n_init else (r or "ContainerCreating")
                    since = _cond_time(pod, "Initialized") or _init_finished(init_statuses)
                if since is None:
                    since = _cond_time(pod, "Initialized") or _init_finished(init_statuses) \
                        or _cond_time(pod, "PodScheduled") or created
            elif kind == "running":
                if ready >= total and _ready_or_unset(pod):
                    stage, status_text = Stage.READY, "Running"
                    since = _cond_time(pod, "Ready") or to_epoch(d.get("startedAt"))
                else:
                    stage, status_text = Stage.STARTING, "Running"
                    since = to_epoch(d.get("startedAt"))
                    # other containers (sidecars) might be in a failure state
                    for cs in statuses:
                        k2, d2 = _state(cs)
                        if k2 == "waiting" and (d2.get("reason") or "") == "CrashLoopBackOff":
                            stage, status_text = Stage.CRASHLOOP, "CrashLoopBackOff"
                            reason, message = "CrashLoopBackOff", d2.get("message") or ""
                            since = to_epoch(_last_terminated(cs).get("finishedAt"))
                            break
                        if k2 == "waiting" and (d2.get("reason") or "") in _BACKOFF_PULL:
                            r2 = d2.get("reason")
                            stage = Stage.IMAGE_PULL_BACKOFF if r2 == "ImagePullBackOff" else Stage.ERR_IMAGE_PULL
                            status_text, reason, message = r2, r2, d2.get("message") or ""
                            break
            else:  # terminated main container while pod still running/pending
                code = int(d.get("exitCode") or 0)
                reason, message = d.get("reason") or ("Completed" if code == 0 else "Error"), d.get("message") or ""
                stage, status_text = Stage.CRASHLOOP, reason
                since = to_epoch(d.get("finishedAt"))

    if since is None:
        since = created
    if since is not None and since_hint is not None and since <= since_hint <= since + TIMESTAMP_PRECISION:
        since = since_hint
    seconds = None if since is None else max(0.0, (now - since) * float(time_scale))
    sev = "ok" if stage is Stage.READY else severity_for(stage, seconds)
    if stage is Stage.TERMINATING:
        grace = meta.get("deletionGracePeriodSeconds")
        expected = (0.0, float(grace)) if grace is not None else EXPECTED[Stage.TERMINATING]
        hi = expected[1] or 1.0
        sev = "red" if seconds is not None and seconds > hi * RED_FACTOR else \
            "amber" if seconds is not None and seconds > hi else "ok"
    else:
        expected = EXPECTED.get(stage)
    return PodLife(
        name=meta.get("name") or "", namespace=meta.get("namespace") or "", uid=meta.get("uid") or "",
        stage=stage, status_text=status_text, ready=ready, total=total, restarts=restarts,
        node=spec.get("nodeName") or None, stage_since=since, seconds_in_stage=seconds,
        expected=expected, severity=sev, reason=reason, message=message,
    )


def _ready_or_unset(pod: Mapping) -> bool:
    c = _conditions(pod).get("Ready")
    return c is None or str(c.get("status")) == "True"


def _main_status(statuses: list[Mapping]) -> Mapping | None:
    for cs in statuses:
        if cs.get("name") == MAIN_CONTAINER:
            return cs
    return statuses[0] if statuses else None


def _init_finished(init_statuses: list[Mapping]) -> float | None:
    times = [to_epoch(_state(cs)[1].get("finishedAt")) for cs in init_statuses if _state(cs)[0] == "terminated"]
    times = [t for t in times if t is not None]
    return max(times) if times else None


# --- log milestones ------------------------------------------------------------------------------


MILESTONES: tuple[tuple[str, str], ...] = (
    ("download", "model downloaded"),
    ("shards", "checkpoint shards loaded"),
    ("weights", "weights loaded"),
    ("kv_cache", "KV cache allocated"),
    ("compile_start", "XLA compilation started"),
    ("compile_done", "XLA compilation done"),
)
MILESTONE_LABELS = dict(MILESTONES)

_TS_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))\s+(.*)$")
_RE_DOWNLOAD = re.compile(r"Successfully copied (\S+) to (/mnt/models\S*)")
_RE_SHARDS = re.compile(r"Loading safetensors checkpoint shards:\s*100%")
_RE_WEIGHTS = re.compile(r"Loading weights took\s+([0-9]+(?:\.[0-9]+)?)\s*(?:s\b|sec|seconds)")
_RE_KV = re.compile(r"(?:(GPU|TPU)\s+)?KV cache size:\s*([0-9][0-9,_]*)\s*tokens")
_RE_COMPILE_START = re.compile(r"Compiling the model with different input shapes")
# vLLM also prints "Compilation finished in X [secs]" after the first of several compile passes:
# only the guide's line marks the end.
_RE_COMPILE_DONE = re.compile(r"Compiled the model with different input shapes")


def split_timestamp(line: str) -> tuple[float | None, str]:
    """'2026-01-01T10:00:00.123Z text' (kubectl logs --timestamps) -> (epoch, 'text')."""
    m = _TS_PREFIX.match(line)
    if not m:
        return None, line
    return to_epoch(m.group(1)), m.group(2)


@dataclass
class Milestone:
    key: str
    label: str
    at: float  # epoch seconds (wall clock)
    line: str


@dataclass
class MilestoneTracker:
    """Milestones of one pod, from its storage-initializer and main container logs.

    `feed(line, ts=None)`: returns the Milestone the line completed (or None). Lines may carry a
    kubectl `--timestamps` prefix; otherwise `ts` (or the current time) stamps them. Feeding the
    same line twice (a log follow that resumed) does not move a milestone.
    """

    start: float | None = None  # e.g. when the pod was scheduled: the reference for the first duration
    time_scale: float = 1.0
    reached: "OrderedDict[str, Milestone]" = field(default_factory=OrderedDict)
    model_uri: str | None = None
    weights_seconds: float | None = None  # as vLLM reports it ("Loading weights took X seconds")
    kv_cache_tokens: int | None = None
    kv_cache_device: str | None = None  # "TPU" | "GPU" | None
    last_lines: list[str] = field(default_factory=list)
    keep_lines: int = 20

    def feed(self, line: str, ts: float | None = None) -> Milestone | None:
        pts, text = split_timestamp(line.rstrip("\n"))
        at = pts if pts is not None else (ts if ts is not None else time.time())
        self.last_lines.append(text)
        if len(self.last_lines) > self.keep_lines:
            del self.last_lines[: len(self.last_lines) - self.keep_lines]
        m = _RE_DOWNLOAD.search(text)
        if m:
            self.model_uri = m.group(1)
            return self._hit("download", at, text)
        if _RE_SHARDS.search(text):
            return self._hit("shards", at, text)
        m = _RE_WEIGHTS.search(text)
        if m:
            self.weights_seconds = float(m.group(1))
            return self._hit("weights", at, text)
        m = _RE_KV.search(text)
        if m:
            self.kv_cache_device = m.group(1)
            self.kv_cache_tokens = int(re.sub(r"[,_]", "", m.group(2)))
            return self._hit("kv_cache", at, text)
        if _RE_COMPILE_START.search(text):
            return self._hit("compile_start", at, text)
        if _RE_COMPILE_DONE.search(text):
            return self._hit("compile_done", at, text, keep_first=False)
        return None

    def feed_many(self, lines: Iterable[str], ts: float | None = None) -> list[Milestone]:
        out = []
        for line in lines:
            m = self.feed(line, ts)
            if m:
                out.append(m)
        return out

    def _hit(self, key: str, at: float, line: str, keep_first: bool = True) -> Milestone | None:
        if key in self.reached and keep_first:
            return None
        ms = Milestone(key, MILESTONE_LABELS[key], at, line)
        self.reached[key] = ms
        return ms

    # derived ------------------------------------------------------------------------------
    @property
    def last(self) -> Milestone | None:
        """The furthest milestone reached (in the guide's order)."""
        for key, _ in reversed(MILESTONES):
            if key in self.reached:
                return self.reached[key]
        return None

    @property
    def compiling(self) -> bool:
        return "compile_start" in self.reached and "compile_done" not in self.reached

    @property
    def done(self) -> bool:
        return "compile_done" in self.reached

    def durations(self) -> list[tuple[str, str, float | None, float | None]]:
        """[(key, label, at, guide seconds since the previous milestone)] in the guide's order,
        for every milestone (not reached: at/duration None)."""
        out = []
        prev = self.start
        for key, label in MILESTONES:
            ms = self.reached.get(key)
            if ms is None:
                out.append((key, label, None, None))
                continue
            dur = None if prev is None else max(0.0, (ms.at - prev) * self.time_scale)
            out.append((key, label, ms.at, dur))
            prev = ms.at
        return out

    def compile_seconds(self) -> float | None:
        a, b = self.reached.get("compile_start"), self.reached.get("compile_done")
        if not a or not b:
            return None
        return max(0.0, (b.at - a.at) * self.time_scale)

    def summary(self) -> str:
        """One line for the table's milestone column: 'KV cache allocated (3,145,728 tokens)'."""
        last = self.last
        if last is None:
            return ""
        if last.key == "kv_cache" and self.kv_cache_tokens is not None:
            return f"{last.label} ({self.kv_cache_tokens:,} tokens)"
        if last.key == "weights" and self.weights_seconds is not None:
            return f"{last.label} ({self.weights_seconds:g} s)"
        if last.key == "compile_done":
            c = self.compile_seconds()
            return f"{last.label}" + (f" ({fmt_duration(c)})" if c is not None else "")
        return last.label


# --- the keyed table model -----------------------------------------------------------------------


COLUMNS: tuple[str, ...] = ("name", "stage", "ready", "restarts", "node", "in_stage", "expected",
                            "severity", "milestone")


@dataclass(frozen=True)
class RowDiff:
    """One change to the table: op 'add' (cells: all columns), 'update' (cells: only the changed
    ones) or 'remove' (cells empty)."""

    op: str
    key: str
    cells: dict[str, str] = field(default_factory=dict)


class PodTable:
    """Keyed rows of pods (key 'namespace/name'), fed by watch events; yields minimal diffs.

    - `apply(event_type, pod)`: ADDED / MODIFIED / DELETED (BOOKMARK and ERROR are ignored).
      A stale event for a pod deleted earlier (same uid) is ignored; an ADDED for an existing key
      updates it; a DELETED for an unknown key does nothing.
    - `resync(pods)`: a full re-list: rows not in the list go, new ones come, others update.
    - `tick(now)`: recompute the time-dependent cells (time in stage, severity).
    - `feed_log(key, line)`: a log line for a pod: milestones update the 'milestone' cell.
    Each returns the diffs to apply to the widget (changed cells only); `rows()` gives the whole
    table (sorted by name) for a first render.
    """

    def __init__(self, columns: tuple[str, ...] = COLUMNS, time_scale: float = 1.0,
                 clock=time.time, pod_filter=None):
        self.columns = columns
        self.time_scale = float(time_scale)
        self.clock = clock
        self.pod_filter = pod_filter
        self._pods: dict[str, dict] = {}
        self._life: dict[str, PodLife] = {}
        self._cells: dict[str, dict[str, str]] = {}
        self._milestones: dict[str, MilestoneTracker] = {}
        self._entered: dict[str, tuple[str, str, float]] = {}  # key -> (uid, stage, when first seen)
        self._deleted_uids: "OrderedDict[str, None]" = OrderedDict()

    # access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._cells)

    def __contains__(self, key: str) -> bool:
        return key in self._cells

    def keys(self) -> list[str]:
        return sorted(self._cells)

    def rows(self) -> list[tuple[str, dict[str, str]]]:
        return [(k, dict(self._cells[k])) for k in self.keys()]

    def pod(self, key: str) -> dict | None:
        return self._pods.get(key)

    def life(self, key: str) -> PodLife | None:
        return self._life.get(key)

    def lives(self) -> list[PodLife]:
        return [self._life[k] for k in self.keys()]

    def pods(self) -> list[dict]:
        return [self._pods[k] for k in self.keys()]

    def milestones(self, key: str) -> MilestoneTracker:
        mt = self._milestones.get(key)
        if mt is None:
            mt = MilestoneTracker(time_scale=self.time_scale)
            pod = self._pods.get(key)
            if pod is not None:
                mt.start = _cond_time(pod, "PodScheduled") or to_epoch(_meta(pod).get("creationTimestamp"))
            self._milestones[key] = mt
        return mt

    # events -------------------------------------------------------------------------------
    def apply_watch_event(self, ev: Any) -> list[RowDiff]:
        """A `cloud.kube.WatchEvent` (ADDED / MODIFIED / DELETED, or RESYNC with the full list)."""
        et = str(getattr(ev, "type", "") or "").upper()
        if et == "RESYNC":
            return self.resync(getattr(ev, "objects", None) or [])
        return self.apply(et, getattr(ev, "obj", None))

    def apply(self, event_type: str, pod: Any) -> list[RowDiff]:
        et = (event_type or "").upper()
        pod = as_dict(pod) if pod is not None else None
        if et in ("BOOKMARK", "ERROR") or not pod:
            return []
        key = pod_key(pod)
        uid = _meta(pod).get("uid") or ""
        if et == "DELETED":
            if uid:
                self._remember_deleted(uid)
            return self._remove(key, uid)
        if uid and uid in self._deleted_uids:
            return []  # a late event for a pod already deleted
        if self.pod_filter is not None and not self.pod_filter(pod):
            return self._remove(key, None)
        return self._upsert(key, dict(pod))

    def resync(self, pods: Iterable[Any]) -> list[RowDiff]:
        fresh: dict[str, dict] = {}
        for p in pods:
            p = as_dict(p)
            if self.pod_filter is not None and not self.pod_filter(p):
                continue
            fresh[pod_key(p)] = dict(p)
        diffs: list[RowDiff] = []
        for key in sorted(set(self._cells) - set(fresh)):
            uid = _meta(self._pods.get(key) or {}).get("uid")
            if uid:
                self._remember_deleted(uid)
            diffs += self._remove(key, None)
        for key in sorted(fresh):
            uid = _meta(fresh[key]).get("uid")
            if uid and uid in self._deleted_uids:
                self._deleted_uids.pop(uid, None)  # the list is the truth
            diffs += self._upsert(key, fresh[key])
        return diffs

    def tick(self, now: float | None = None) -> list[RowDiff]:
        diffs = []
        for key in self.keys():
            diffs += self._recompute(key, now)
        return diffs

    def feed_log(self, key: str, line: str, ts: float | None = None) -> list[RowDiff]:
        if key not in self._pods:
            return []
        if self.milestones(key).feed(line, ts) is None:
            return []
        return self._recompute(key)

    # internals ----------------------------------------------------------------------------
    def _remember_deleted(self, uid: str) -> None:
        self._deleted_uids[uid] = None
        while len(self._deleted_uids) > 512:
            self._deleted_uids.popitem(last=False)

    def _remove(self, key: str, uid: str | None) -> list[RowDiff]:
        if key not in self._cells:
            return []
        cur_uid = _meta(self._pods.get(key) or {}).get("uid")
        if uid and cur_uid and uid != cur_uid:
            return []  # a DELETED for an older pod of the same name
        self._cells.pop(key, None)
        self._entered.pop(key, None)
        self._pods.pop(key, None)
        self._life.pop(key, None)
        self._milestones.pop(key, None)
        return [RowDiff("remove", key)]

    def _upsert(self, key: str, pod: dict) -> list[RowDiff]:
        old = self._pods.get(key)
        if old is not None and _meta(old).get("uid") != _meta(pod).get("uid"):
            self._milestones.pop(key, None)  # same name, new pod
        self._pods[key] = pod
        return self._recompute(key)

    def _recompute(self, key: str, now: float | None = None) -> list[RowDiff]:
        pod = self._pods[key]
        now = self.clock() if now is None else now
        uid = _meta(pod).get("uid") or ""
        entered = self._entered.get(key)
        hint = entered[2] if entered is not None and entered[0] == uid else None
        life = classify(pod, now=now, time_scale=self.time_scale, since_hint=hint)
        if entered is None or entered[0] != uid or entered[1] != life.stage.value:
            # first sight of this stage: remember when (a hint for the next recomputations)
            self._entered[key] = (uid, life.stage.value, self.clock())
            life = classify(pod, now=now, time_scale=self.time_scale, since_hint=self._entered[key][2])
        self._life[key] = life
        mt = self._milestones.get(key)
        cells = {
            "name": life.name,
            "stage": life.status_text if life.stage not in (Stage.STARTING, Stage.READY)
            else f"Running {life.ready_text}",
            "ready": life.ready_text,
            "restarts": str(life.restarts),
            "node": life.node or "-",
            "in_stage": "-" if life.stage is Stage.READY else life.in_stage_text,
            "expected": life.expected_text,
            "severity": life.severity,
            "milestone": mt.summary() if mt else "",
        }
        cells = {c: cells.get(c, "") for c in self.columns}
        prev = self._cells.get(key)
        self._cells[key] = cells
        if prev is None:
            return [RowDiff("add", key, dict(cells))]
        changed = {c: v for c, v in cells.items() if prev.get(c) != v}
        return [RowDiff("update", key, changed)] if changed else []
