"""Operate: the scheduled scale-to-zero (`ops schedule-zero`), built from what the cluster has.

At the deadline, with nobody at the keyboard and the wizard not running:

- a CronJob `<service>-scale-to-zero` (its own ServiceAccount, and a Role that may only get and
  patch that one LLMInferenceService: `resourceNames: [<service>]`, nothing else; a NetworkPolicy
  lets its pod reach the API server, since step 8 makes egress deny-by-default) runs
  `kubectl patch llminferenceservice <service> --type json` in a kubectl image, setting the
  replicas to 0: KServe removes the vLLM pods;
- the TPU node pool has autoscaling with a minimum of 0 (set when the schedule is made, maximum
  the current size, so nothing changes while the replicas run): GKE's cluster autoscaler
  removes the TPU nodes no pod uses any more, after its scale-down delay (~10 minutes).

One shot. A CronJob has no end date: its schedule names the deadline's minute, day and month
(UTC), which comes back a year later. The patch is a JSON patch whose first operation tests that
the LLMInferenceService still carries the annotation `rhaii-tui.io/scale-to-zero-at` with this
deadline, and whose last operation removes it: the first run scales to zero and disarms the
schedule; any later run (next year, or a retry) fails the test and changes nothing. `ops resume`
and `--cancel` delete the schedule's objects and remove the annotation. `startingDeadlineSeconds`
lets a run the controller missed by up to 6 hours still happen (the money is still worth saving).

`ops resume` restores both sides: the schedule's objects go, the pool's autoscaling goes back to
what it was (recorded on the CronJob), then the pool and the replicas are scaled back.

Times: the deadline is a calendar instant (UTC). On a simulated cloud the world's calendar runs
`time_scale` times faster from the instant the CronJob was created (sim/controllers/jobs.py):
"--after 2h" is two guide hours, i.e. 2h / time_scale of wall time.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ... import manifests as m
from ...cloud.gke import CloudError
from ...config import TPU_POOL_NAME, cost_per_day
from ..operators import time_scale_of
from .common import LLMISVC_KIND, OpEvent, OpResult, Runner, _Failed, _run, spec_replicas

log = logging.getLogger(__name__)

ANN_AT = "rhaii-tui.io/scale-to-zero-at"              # the deadline (RFC 3339, UTC): CronJob and service
ANN_REPLICAS = "rhaii-tui.io/replicas-before"         # what resume scales back to
ANN_NODES = "rhaii-tui.io/pool-nodes-before"
ANN_AUTOSCALING = "rhaii-tui.io/pool-autoscaling-before"   # "off" or "MIN-MAX"
COMPONENT = "scale-to-zero"
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.33.5"    # entrypoint kubectl (no shell in the image)
MAX_AHEAD = 30 * 86400.0                               # a schedule further than 30 days ahead is refused
STARTING_DEADLINE = 6 * 3600                           # a missed run may still start this late (seconds)
SCALE_DOWN_DELAY = 600.0                               # GKE's cluster autoscaler: ~10 min unneeded, then removed
RBAC = "rbac.authorization.k8s.io/v1"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|min|m|s)", re.I)


# --------------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '1d', '45min' -> seconds. ValueError with what to type otherwise."""
    t = (text or "").strip().lower().replace(" ", "")
    if not t or _DURATION.sub("", t):
        raise ValueError(f"--after {text!r} is not a duration: use a number with a unit, e.g. 30m, 2h, 1h30m or 1d.")
    total = 0.0
    for num, unit in _DURATION.findall(t):
        total += float(num) * {"d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}[unit]
    if total <= 0:
        raise ValueError(f"--after {text!r} is zero: give a positive duration such as 30m or 2h.")
    return total


def parse_time(text: str, now: float) -> float:
    """'18:30' (today, UTC), '2026-12-08 18:30', '2026-12-08T18:30Z', '...+01:00' -> epoch seconds."""
    t = (text or "").strip()
    if re.fullmatch(r"\d{1,2}:\d{2}", t):
        today = _dt.datetime.fromtimestamp(now, _dt.timezone.utc).date()
        t = f"{today.isoformat()}T{t.zfill(5)}"
    iso = t.replace(" ", "T", 1)
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    try:
        d = _dt.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"--at {text!r} is not a time: use HH:MM (UTC, today) or YYYY-MM-DD HH:MM "
                         "(UTC unless it ends with an offset such as +01:00).") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def fmt_utc(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return _dt.datetime.fromisoformat(str(s).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def deadline_from(after: str | None, at: str | None, now: float) -> float:
    """The deadline (a calendar instant, rounded up to the minute cron can name). ValueError with a
    clear message for unparseable input, a time in the past, or one too far ahead."""
    if bool(after) == bool(at):
        raise ValueError("Give either --after DURATION (e.g. 2h) or --at TIME (e.g. 18:30 or 2026-12-08 18:30 UTC).")
    if after:
        t = now + parse_duration(after)
    else:
        t = parse_time(str(at), now)
        if t <= now:
            raise ValueError(f"--at {at!r} is in the past ({fmt_utc(t)}; it is now {fmt_utc(now)}): "
                             "give a later time, or --after DURATION.")
    t = float(int((t + 59.999) // 60) * 60)  # cron has minutes
    if t - now > MAX_AHEAD:
        raise ValueError(f"{fmt_utc(t)} is more than 30 days ahead: give an earlier time.")
    return t


def deadline_from_text(text: str, now: float) -> float:
    """The Operate page's one field: "2h" / "in 2h" (after) or "18:30" / "at 2026-12-08 18:30" (at)."""
    t = (text or "").strip()
    low = t.lower()
    if not t:
        raise ValueError("Type when to scale to zero: a duration such as 2h (from now) or a time such as 18:30 (UTC).")
    if low.startswith("in "):
        return deadline_from(t[3:], None, now)
    if low.startswith("at "):
        return deadline_from(None, t[3:], now)
    if ":" in t or re.match(r"\d{4}-", t):
        return deadline_from(None, t, now)
    return deadline_from(t, None, now)


def cron_for(t: float) -> str:
    """minute hour day month *: the deadline's minute (UTC), once a year."""
    d = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    return f"{d.minute} {d.hour} {d.day} {d.month} *"


# --------------------------------------------------------------------------------------------
# the objects
# --------------------------------------------------------------------------------------------


def schedule_name(service: str) -> str:
    return f"{service}-scale-to-zero"[:52]  # CronJob names: at most 52 characters


def _labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": schedule_name(service), "app.kubernetes.io/component": COMPONENT,
            "app.kubernetes.io/part-of": service, "app.kubernetes.io/managed-by": "rhaii-tui"}


def patch_ops(deadline: float) -> list[dict[str, Any]]:
    """The job's JSON patch: only while the service carries this deadline; replicas 0; disarm."""
    path = "/metadata/annotations/" + ANN_AT.replace("~", "~0").replace("/", "~1")
    return [{"op": "test", "path": path, "value": rfc3339(deadline)},
            {"op": "replace", "path": "/spec/replicas", "value": 0},
            {"op": "remove", "path": path}]


def manifests(namespace: str, service: str, deadline: float, *, replicas: int, nodes: int,
              autoscaling_before: tuple[int, int] | None, api_server_cidrs: list[str] | None = None
              ) -> list[dict[str, Any]]:
    """ServiceAccount, Role (get/patch on this one LLMInferenceService only), RoleBinding, a
    NetworkPolicy letting the job's pod reach the API server (step 8's policies make egress
    deny-by-default in the namespace), CronJob."""
    name = schedule_name(service)
    labels = _labels(service)
    md = {"name": name, "namespace": namespace, "labels": labels}
    group = m.LLMISVC_API_VERSION.split("/")[0]
    before = "off" if autoscaling_before is None else f"{autoscaling_before[0]}-{autoscaling_before[1]}"
    annotations = {ANN_AT: rfc3339(deadline), ANN_REPLICAS: str(int(replicas)), ANN_NODES: str(int(nodes)),
                   ANN_AUTOSCALING: before}
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(md)}
    role = {"apiVersion": RBAC, "kind": "Role", "metadata": dict(md),
            "rules": [{"apiGroups": [group], "resources": ["llminferenceservices"], "resourceNames": [service],
                       "verbs": ["get", "patch"]}]}
    binding = {"apiVersion": RBAC, "kind": "RoleBinding", "metadata": dict(md),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]}
    api_peers = [{"ipBlock": {"cidr": c}} for c in (api_server_cidrs or [])] or [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    netpol = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": dict(md),
              "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                       "policyTypes": ["Egress"],
                       "egress": [{"to": api_peers, "ports": [{"protocol": "TCP", "port": 443}]}]}}
    container = {"name": "scale-to-zero", "image": KUBECTL_IMAGE,
                 "args": ["patch", "llminferenceservice", service, "-n", namespace, "--type", "json",
                          "-p", json.dumps(patch_ops(deadline), separators=(",", ":"))],
                 "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                 "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 65532,
                                     "capabilities": {"drop": ["ALL"]}}}
    pod_template = {
        # a sidecar would keep the Job from ever completing
        "metadata": {"labels": labels, "annotations": {"sidecar.istio.io/inject": "false"}},
        "spec": {"serviceAccountName": name, "restartPolicy": "Never", "containers": [container]},
    }
    cron = {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {**md, "annotations": annotations},
            "spec": {"schedule": cron_for(deadline), "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid",
                     "startingDeadlineSeconds": STARTING_DEADLINE, "successfulJobsHistoryLimit": 1,
                     "failedJobsHistoryLimit": 1,
                     "jobTemplate": {"metadata": {"labels": labels},
                                     "spec": {"backoffLimit": 2, "ttlSecondsAfterFinished": 86400,
                                              "template": pod_template}}}}
    return [sa, role, binding, netpol, cron]


# --------------------------------------------------------------------------------------------
# reading it back
# --------------------------------------------------------------------------------------------


@dataclass
class ZeroSchedule:
    name: str
    deadline: float                 # calendar instant (UTC)
    created: float                  # the CronJob's creation (wall)
    replicas_before: int
    nodes_before: int
    autoscaling_before: tuple[int, int] | None
    time_scale: float = 1.0
    ran: str = ""                   # "" | "succeeded" | "failed": the Job's outcome
    armed: bool = True              # the service still carries the deadline (not yet run)
    saves_per_day: float = 0.0
    nodes_now: int | None = None    # the pool's TPU nodes when read

    def remaining(self, now: float | None = None) -> float:
        """Calendar seconds until the deadline (negative once passed)."""
        now = time.time() if now is None else now
        calendar_now = self.created + (now - self.created) * self.time_scale
        return self.deadline - calendar_now

    @property
    def due(self) -> bool:
        return self.remaining() <= 0

    def describe(self) -> str:
        from ..podlife import fmt_duration

        when = fmt_utc(self.deadline)
        if self.ran == "succeeded" or (self.due and not self.armed):
            nodes = ("no TPU node left" if self.nodes_now == 0 else
                     "the idle TPU nodes go ~10 min after the deadline")
            return f"done at {when}: 0 replicas, {nodes} (ops resume to serve again)"
        if self.ran == "failed":
            return f"FAILED at {when}: the job could not scale the service (kubectl logs job/... -n ...)"
        left = self.remaining()
        if left <= 0:
            return f"due at {when} (running)"
        return f"at {when} (in {fmt_duration(left)}) · saves ≈ ${self.saves_per_day:,.2f}/day"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "at": rfc3339(self.deadline), "at_text": fmt_utc(self.deadline),
                "seconds_left": max(0.0, round(self.remaining(), 1)), "due": self.due, "armed": self.armed,
                "ran": self.ran or None, "replicas_before": self.replicas_before, "nodes_before": self.nodes_before,
                "pool_autoscaling_before": list(self.autoscaling_before) if self.autoscaling_before else None,
                "saves_per_day_usd": self.saves_per_day, "tpu_nodes_now": self.nodes_now, "text": self.describe()}


def _parse_before(text: str | None) -> tuple[int, int] | None:
    mm = re.fullmatch(r"(\d+)-(\d+)", str(text or ""))
    return (int(mm.group(1)), int(mm.group(2))) if mm else None


def read_schedule(ctx: Any, *, isvc: dict | None = None, pool_nodes: int | None = None) -> ZeroSchedule | None:
    """The schedule on the cluster, or None. Raises CloudError when the cluster cannot be read."""
    cfg = ctx.cfg
    kube = ctx.kube_or_none()
    if kube is None:
        return None
    name = schedule_name(cfg.service)
    try:
        cj = kube.get("batch/v1", "CronJob", name, cfg.namespace)
    except CloudError as e:
        if e.kind == "not_found":
            return None
        raise
    if cj is None:
        return None
    ann = (cj.get("metadata") or {}).get("annotations") or {}
    deadline = parse_rfc3339(ann.get(ANN_AT))
    if deadline is None:
        return None
    created = parse_rfc3339((cj.get("metadata") or {}).get("creationTimestamp")) or time.time()
    sched = ZeroSchedule(name, deadline, created, int(ann.get(ANN_REPLICAS) or 0), int(ann.get(ANN_NODES) or 0),
                         _parse_before(ann.get(ANN_AUTOSCALING)), time_scale_of(ctx))
    if isvc is None:
        isvc = kube.get(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace)
    sched.armed = bool(isvc) and ((isvc.get("metadata") or {}).get("annotations") or {}).get(ANN_AT) == ann.get(ANN_AT)
    for job in kube.list("batch/v1", "Job", cfg.namespace, label_selector=f"app.kubernetes.io/name={name}"):
        for c in (job.get("status") or {}).get("conditions") or []:
            if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
                sched.ran = "succeeded" if c["type"] == "Complete" else "failed"
    sched.nodes_now = pool_nodes
    nodes = sched.nodes_before if pool_nodes is None else max(pool_nodes, 0)
    if sched.ran == "succeeded" or not sched.armed:
        nodes = pool_nodes or 0
    sched.saves_per_day = round(cost_per_day(nodes, cfg.price_per_node_hour) - cost_per_day(0, cfg.price_per_node_hour), 2)
    return sched


# --------------------------------------------------------------------------------------------
# the actions
# --------------------------------------------------------------------------------------------


def _pool_autoscaling(ctx: Any) -> tuple[bool, tuple[int, int] | None]:
    """(pool exists, its autoscaling (min, max) or None)."""
    info = ctx.cluster(refresh=True)
    pool = info.pool(TPU_POOL_NAME) if info is not None else None
    if pool is None:
        return False, None
    return True, pool.autoscaling


def _set_autoscaling(run: Runner, autoscaling: tuple[int, int] | None) -> None:
    from ..cluster import _send

    cfg = run.ctx.cfg
    gke = run.ctx.gke
    run.follow_pool_operation_in_flight()
    what = "off" if autoscaling is None else f"{autoscaling[0]}-{autoscaling[1]} nodes"
    run.say("nodes", f"Node pool {TPU_POOL_NAME}: autoscaling {what}...")
    op, _again = _send(lambda: gke.set_pool_autoscaling(cfg.cluster, TPU_POOL_NAME, autoscaling),
                       lambda: gke.in_flight(cfg.cluster, {"UPDATE_CLUSTER"}, pool=TPU_POOL_NAME), run.stop)
    run._follow(op, None)


def _annotate_service(run: Runner, value: str | None) -> None:
    cfg = run.ctx.cfg
    run.patch(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, {"metadata": {"annotations": {ANN_AT: value}}},
              "application/merge-patch+json")


def schedule_zero(ctx: Any, deadline: float, *, on_event: Callable[[OpEvent], None] | None = None,
                  stop: threading.Event | None = None, poll: float | None = None) -> OpResult:
    """Create (or move) the scheduled scale-to-zero at `deadline` (a calendar instant, UTC)."""
    run = Runner(ctx, on_event, stop, poll)
    action = "schedule-zero"

    def body() -> OpResult:
        from .status import read_status

        cfg = ctx.cfg
        st = read_status(ctx, with_operation=False)
        if not st.pool_exists or not st.exists:
            raise _Failed(f"{cfg.service} is not deployed." if st.pool_exists else
                          f"There is no TPU node pool {TPU_POOL_NAME}.", "Deploy it first (steps 2 and 5).")
        if st.pool_nodes == 0:   # autoscaling with replicas waiting would make GKE add TPU nodes
            raise _Failed(f"Node pool {TPU_POOL_NAME} is already at 0 TPU nodes: nothing to schedule.",
                          "Resume first ('ops resume') if it should serve until a deadline.")
        old = read_schedule(ctx)
        _exists, auto_now = _pool_autoscaling(ctx)
        if old is not None:   # moving a schedule: keep what was there before the first one
            replicas, nodes, before = old.replicas_before, old.nodes_before, old.autoscaling_before
        else:
            replicas = int(st.replicas_desired or st.configured_replicas or 1)
            nodes, before = st.pool_nodes, auto_now
        from ..netpol import _api_server_cidrs

        kube = ctx.kube()
        for obj in manifests(cfg.namespace, cfg.service, deadline, replicas=replicas, nodes=nodes,
                             autoscaling_before=before, api_server_cidrs=_api_server_cidrs(ctx)):
            run.say("schedule", f"Applying {obj['kind']} {obj['metadata']['name']}...")
            kube.apply(obj, cfg.namespace)
        _annotate_service(run, rfc3339(deadline))
        top = max(nodes, replicas, st.pool_nodes, 1)
        if auto_now != (0, top):
            _set_autoscaling(run, (0, top))
        saves = round(cost_per_day(max(st.pool_nodes, nodes), cfg.price_per_node_hour)
                      - cost_per_day(0, cfg.price_per_node_hour), 2)
        ctx.record(ops_zero_schedule={"at": rfc3339(deadline), "service": cfg.service, "namespace": cfg.namespace})
        return OpResult(action, True, f"Scheduled: at {fmt_utc(deadline)} {cfg.service} scales to 0 replicas "
                        f"(CronJob {schedule_name(cfg.service)}) and GKE's autoscaler removes the idle TPU nodes "
                        f"~10 min later: saves ≈ ${saves:,.2f}/day. 'ops resume' brings it back.",
                        cost_per_day=st.cost_now, data={"at": rfc3339(deadline), "saves_per_day_usd": saves})
    return _run(action, run, body)


def remove_schedule(run: Runner, sched: ZeroSchedule | None) -> bool:
    """Delete the schedule's objects, disarm the service, put the pool's autoscaling back. True
    when there was something to remove."""
    ctx = run.ctx
    cfg = ctx.cfg
    kube = ctx.kube()
    name = schedule_name(cfg.service)
    gone = False
    for api, kind in (("batch/v1", "CronJob"), (RBAC, "RoleBinding"), (RBAC, "Role"), ("v1", "ServiceAccount"),
                      ("networking.k8s.io/v1", "NetworkPolicy")):
        if kube.delete(api, kind, name, cfg.namespace):
            run.say("schedule", f"Deleted {kind} {name}.")
            gone = True
    isvc = run.isvc()
    if isvc is not None and ANN_AT in ((isvc.get("metadata") or {}).get("annotations") or {}):
        _annotate_service(run, None)
        gone = True
    if sched is not None:
        exists, auto_now = _pool_autoscaling(ctx)
        if exists and auto_now != sched.autoscaling_before:
            _set_autoscaling(run, sched.autoscaling_before)
            gone = True
    ctx.record(ops_zero_schedule=None)
    return gone


def cancel_schedule(ctx: Any, *, on_event: Callable[[OpEvent], None] | None = None,
                    stop: threading.Event | None = None, poll: float | None = None) -> OpResult:
    run = Runner(ctx, on_event, stop, poll)
    action = "cancel-schedule-zero"

    def body() -> OpResult:
        sched = read_schedule(ctx)
        changed = remove_schedule(run, sched)
        if not changed:
            return OpResult(action, True, "No scheduled scale-to-zero: nothing to cancel.", changed=False)
        when = f" for {fmt_utc(sched.deadline)}" if sched else ""
        return OpResult(action, True, f"Cancelled the scheduled scale-to-zero{when}; the node pool's autoscaling "
                        "is back to how it was.")
    return _run(action, run, body)


def resume_replicas(ctx: Any) -> int | None:
    """The replicas a schedule that ran scaled down from (None without one)."""
    try:
        sched = read_schedule(ctx)
    except CloudError:
        return None
    return sched.replicas_before if sched and sched.replicas_before else None


def restore_after_schedule(run: Runner) -> int | None:
    """For resume: remove a schedule (run or not), give back the replicas it took. Returns the
    replicas to restore, or None when there was no schedule."""
    sched = read_schedule(run.ctx)
    if sched is None:
        isvc = run.isvc()
        if isvc is None or ANN_AT not in ((isvc.get("metadata") or {}).get("annotations") or {}):
            return None
    remove_schedule(run, sched)
    isvc = run.isvc()
    want = sched.replicas_before if sched and sched.replicas_before else None
    if isvc is not None and want and (spec_replicas(isvc) or 0) == 0:
        run.say("replicas", f"Setting {run.ctx.cfg.service} back to {want} replica(s)...")
        run.patch(m.LLMISVC_API_VERSION, LLMISVC_KIND, run.ctx.cfg.service, {"spec": {"replicas": int(want)}},
                  "application/merge-patch+json")
    return want


__all__ = ["ZeroSchedule", "schedule_zero", "cancel_schedule", "read_schedule", "deadline_from", "deadline_from_text",
           "parse_duration",
           "parse_time", "manifests", "schedule_name", "cron_for", "patch_ops", "ANN_AT", "KUBECTL_IMAGE"]
