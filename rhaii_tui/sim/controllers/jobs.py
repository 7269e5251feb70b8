"""CronJob and Job controllers (batch/v1), as kube-controller-manager runs them.

CronJob: at each time its `schedule` (five cron fields, in `timeZone`; only UTC zones are known
here) names, a Job `<cronjob>-<scheduled time in minutes>` is created from `jobTemplate`, owned by
the CronJob (deleting the CronJob deletes its Jobs and their Pods). `suspend` stops new Jobs;
`startingDeadlineSeconds` skips a run that would start later than that; `concurrencyPolicy`
Forbid skips a run while one is active, Replace deletes the active one; finished Jobs beyond
`successfulJobsHistoryLimit` (3) / `failedJobsHistoryLimit` (1) are deleted. Status:
`lastScheduleTime`, `lastSuccessfulTime`, `active`.

Calendar. The emulator compresses durations by `speed` but keeps real timestamps (sim/clock.py).
A CronJob's calendar runs `speed` times faster from the instant the CronJob was created: the
schedule's time T fires at the wall instant created + (T - created) / speed (at speed 1: at T).
So "at 18:00" scheduled at 17:00 in a world running at 60x fires one wall minute later, as a
guide-hour later. Clients that know the time scale compute the same instant.

Job: one Pod at a time from `template` (labels `batch.kubernetes.io/job-name`, `job-name`,
`controller-uid`), until one Pod Succeeds (condition Complete) or more than `backoffLimit` (6)
Pods failed (condition Failed, reason BackoffLimitExceeded). `ttlSecondsAfterFinished` deletes a
finished Job. The Pod's containers run on the simulated kubelet (a `kubectl patch` really
patches, authorised as the Pod's ServiceAccount: controllers/kubectl.py).
"""

from __future__ import annotations

import calendar
import copy
import datetime as _dt
import logging
from typing import Any

from ..store import ApiError, parse_rfc3339
from .common import Obj, controller_of, get_condition, owner_ref, qos_class, set_condition, ts
from .deployments import default_pod_spec

log = logging.getLogger(__name__)

SCHEDULED_AT = "batch.kubernetes.io/cronjob-scheduled-timestamp"
UTC_ZONES = ("", "UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z")

# --- cron ------------------------------------------------------------------------------------------

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


def _field(text: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, s = part.split("/", 1)
            step = int(s)
            if step < 1:
                raise ValueError("step")
        if part in ("*", "?"):
            a, b = lo, hi
        elif "-" in part:
            x, y = part.split("-", 1)
            a, b = int(x), int(y)
        else:
            a = int(part)
            b = hi if step > 1 else a
        if a < lo or b > hi or a > b:
            raise ValueError(f"{part} out of range {lo}-{hi}")
        out.update(range(a, b + 1, step))
    return out


def parse_cron(expr: str) -> tuple[set[int], set[int], set[int], set[int], set[int], bool, bool]:
    """(minutes, hours, days, months, weekdays, day restricted, weekday restricted); ValueError if bad."""
    expr = _MACROS.get(expr.strip(), expr.strip())
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(parts)}: {expr}")
    fields = [_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES)]
    dow = {d % 7 for d in fields[4]}
    return fields[0], fields[1], fields[2], fields[3], dow, parts[2] not in ("*", "?"), parts[4] not in ("*", "?")


def next_fire(expr: str, after: float) -> float | None:
    """The first instant (epoch seconds, UTC) strictly after `after` that the schedule names."""
    mins, hours, days, months, dows, dr, wr = parse_cron(expr)
    start = _dt.datetime.fromtimestamp(int(after // 60) * 60 + 60, _dt.timezone.utc)
    day = start.replace(hour=0, minute=0)
    for _ in range(5 * 366):
        if day.month in months:
            dom_ok = day.day in days
            dow_ok = ((day.weekday() + 1) % 7) in dows
            ok = (dom_ok or dow_ok) if (dr and wr) else (dom_ok and dow_ok)
            if ok:
                for h in sorted(hours):
                    for m in sorted(mins):
                        t = day.replace(hour=h, minute=m)
                        if t >= start:
                            return float(calendar.timegm(t.timetuple()))
        day += _dt.timedelta(days=1)
    return None


def cron_for(t: float) -> str:
    """The five fields naming the minute of `t` (UTC): once a year at that instant."""
    d = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    return f"{d.minute} {d.hour} {d.day} {d.month} *"


def _finished(job: Obj) -> str | None:
    for ctype in ("Complete", "Failed"):
        c = get_condition(job, ctype)
        if c and c.get("status") == "True":
            return ctype
    return None


class JobControllers:
    """Both controllers (they watch each other's objects)."""

    def __init__(self, ctl: Any):
        self.ctl = ctl
        self.store = ctl.store
        self.cjt = self.store.type_for("cronjobs", "batch")
        self.jt = self.store.type_for("jobs", "batch")
        self.pt = self.store.type_for("pods")
        self._shifted: dict[str, float] = {}  # CronJob uid -> wall seconds its calendar was moved back
        ctl.register("cronjob", self.reconcile_cronjob)
        ctl.register("job", self.reconcile_job)

    # --- plumbing ----------------------------------------------------------------------------
    def resync(self) -> None:
        for cj in self.store.list(self.cjt)[0]:
            self.ctl.enqueue(("cronjob", cj["metadata"]["namespace"], cj["metadata"]["name"]))
        for j in self.store.list(self.jt)[0]:
            self.ctl.enqueue(("job", j["metadata"]["namespace"], j["metadata"]["name"]))

    def shift(self, dt: float) -> None:
        for cj in self.store.list(self.cjt)[0]:
            uid = cj["metadata"]["uid"]
            self._shifted[uid] = self._shifted.get(uid, 0.0) + dt

    def flush(self) -> None:
        pass

    def on_event(self, etype: str, rtype: Any, obj: Obj, old: Obj | None) -> None:
        md = obj["metadata"]
        if rtype.key == self.cjt.key:
            self.ctl.enqueue(("cronjob", md["namespace"], md["name"]))
        elif rtype.key == self.jt.key:
            self.ctl.enqueue(("job", md["namespace"], md["name"]))
            ref = controller_of(obj)
            if ref and ref.get("kind") == "CronJob":
                self.ctl.enqueue(("cronjob", md["namespace"], ref["name"]))
        elif rtype.key == self.pt.key:
            ref = controller_of(obj)
            if ref and ref.get("kind") == "Job":
                self.ctl.enqueue(("job", md["namespace"], ref["name"]))

    # --- calendar ----------------------------------------------------------------------------
    def _anchor(self, cj: Obj) -> float:
        created = parse_rfc3339(cj["metadata"].get("creationTimestamp")) or self.ctl.now()
        return created - self._shifted.get(cj["metadata"]["uid"], 0.0)

    def _sim_time(self, cj: Obj, wall: float) -> float:
        a = self._anchor(cj)
        return a + (wall - a) * self.ctl.speed

    def _wall_time(self, cj: Obj, sim: float) -> float:
        a = self._anchor(cj)
        return a + (sim - a) / self.ctl.speed

    # --- CronJob -----------------------------------------------------------------------------
    def _jobs_of(self, cj: Obj) -> list[Obj]:
        uid = cj["metadata"]["uid"]
        return [j for j in self.store.select(self.jt, cj["metadata"]["namespace"])
                if any(r.get("uid") == uid for r in j["metadata"].get("ownerReferences") or [])]

    def reconcile_cronjob(self, key: tuple) -> None:
        _, ns, name = key
        cj = self.store.try_get(self.cjt, ns, name)
        if cj is None or cj["metadata"].get("deletionTimestamp"):
            return
        spec = cj.get("spec") or {}
        status = copy.deepcopy(cj.get("status") or {})
        jobs = self._jobs_of(cj)
        active = [j for j in jobs if not _finished(j) and not j["metadata"].get("deletionTimestamp")]
        self._history(spec, jobs)
        if (spec.get("timeZone") or "") not in UTC_ZONES:
            self.store.record_event(cj, "UnknownTimeZone", f"Unknown time zone {spec.get('timeZone')} "
                                    "(the emulator knows UTC zones only)", "Warning", component="cronjob-controller")
            return
        last = parse_rfc3339(status.get("lastScheduleTime")) or self._sim_time(cj, self._anchor(cj))
        try:
            nxt = next_fire(str(spec.get("schedule") or ""), last)
        except ValueError as e:
            self.store.record_event(cj, "UnparseableSchedule", f"unparseable schedule: {e}", "Warning",
                                    component="cronjob-controller")
            return
        sim_now = self._sim_time(cj, self.ctl.now())
        if nxt is not None and nxt <= sim_now + 1e-6 and not spec.get("suspend"):
            late = sim_now - nxt
            deadline = spec.get("startingDeadlineSeconds")
            policy = spec.get("concurrencyPolicy") or "Allow"
            if deadline is not None and late > float(deadline):
                self.store.record_event(cj, "MissedSchedule", f"Missed scheduled time to start a job: "
                                        f"{ts(nxt)}", "Warning", component="cronjob-controller")
            elif active and policy == "Forbid":
                self.ctl.wake_in(key, 10.0)
                return
            else:
                if active and policy == "Replace":
                    for j in active:
                        try:
                            self.store.delete(self.jt, ns, j["metadata"]["name"])
                        except ApiError:
                            pass
                job = self._create_job(cj, nxt)
                if job is not None:
                    active.append(job)
            status["lastScheduleTime"] = ts(nxt)
            nxt = next_fire(str(spec.get("schedule") or ""), nxt)
        done = [j for j in jobs if _finished(j) == "Complete"]
        if done:
            t = max(parse_rfc3339((j.get("status") or {}).get("completionTime")) or 0.0 for j in done)
            if t:
                status["lastSuccessfulTime"] = ts(t)
        refs = [{"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"],
                 "namespace": ns, "uid": j["metadata"]["uid"]} for j in active]
        if refs:
            status["active"] = refs
        else:
            status.pop("active", None)
        if status != (cj.get("status") or {}):
            try:
                self.store.mutate(self.cjt, ns, name, lambda o: o.__setitem__("status", status),
                                  subresource="status")
            except ApiError:
                pass
        if nxt is not None and not spec.get("suspend"):
            self.ctl.wake_at(key, self._wall_time(cj, nxt))

    def _history(self, spec: Obj, jobs: list[Obj]) -> None:
        for kind, default, field in (("Complete", 3, "successfulJobsHistoryLimit"),
                                     ("Failed", 1, "failedJobsHistoryLimit")):
            limit = spec.get(field)
            limit = default if limit is None else int(limit)
            finished = sorted((j for j in jobs if _finished(j) == kind and not j["metadata"].get("deletionTimestamp")),
                              key=lambda j: j["metadata"].get("creationTimestamp", ""))
            for j in finished[:max(0, len(finished) - limit)]:
                try:
                    self.store.delete(self.jt, j["metadata"]["namespace"], j["metadata"]["name"])
                except ApiError:
                    pass

    def _create_job(self, cj: Obj, scheduled: float) -> Obj | None:
        tmpl = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
        tmd = tmpl.get("metadata") or {}
        name = f"{cj['metadata']['name']}-{int(scheduled // 60)}"
        job = {
            "metadata": {"name": name, "namespace": cj["metadata"]["namespace"],
                         "labels": dict(tmd.get("labels") or {}),
                         "annotations": {**(tmd.get("annotations") or {}), SCHEDULED_AT: ts(scheduled)},
                         "ownerReferences": [owner_ref(cj)]},
            "spec": tmpl.get("spec") or {},
        }
        try:
            created = self.store.create(self.jt, job)
        except ApiError:
            return None
        self.store.record_event(cj, "SuccessfulCreate", f"Created job {name}", component="cronjob-controller")
        return created

    # --- Job ---------------------------------------------------------------------------------
    def _pods_of(self, job: Obj) -> list[Obj]:
        uid = job["metadata"]["uid"]
        return [p for p in self.store.select(self.pt, job["metadata"]["namespace"])
                if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]

    def reconcile_job(self, key: tuple) -> None:
        _, ns, name = key
        job = self.store.try_get(self.jt, ns, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec = job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        now = self.ctl.now()
        fin = _finished(job)
        if fin:
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None:
                t = parse_rfc3339(status.get("completionTime") or (get_condition(job, fin) or {})
                                  .get("lastTransitionTime")) or now
                due = t + float(ttl) / self.ctl.speed
                if now >= due:
                    try:
                        self.store.delete(self.jt, ns, name)
                    except ApiError:
                        pass
                else:
                    self.ctl.wake_at(key, due)
            return
        pods = self._pods_of(job)
        phase = lambda p: (p.get("status") or {}).get("phase")  # noqa: E731
        succeeded = [p for p in pods if phase(p) == "Succeeded"]
        failed = [p for p in pods if phase(p) == "Failed"]
        active = [p for p in pods if phase(p) not in ("Succeeded", "Failed")
                  and not p["metadata"].get("deletionTimestamp")]
        status.setdefault("startTime", ts(now))
        conds = list(status.get("conditions") or [])
        limit = spec.get("backoffLimit")
        limit = 6 if limit is None else int(limit)
        if succeeded:
            conds = set_condition(conds, "SuccessCriteriaMet", "True", "CompletionsReached",
                                  "Reached expected number of succeeded pods", now)
            conds = set_condition(conds, "Complete", "True", "CompletionsReached",
                                  "Reached expected number of succeeded pods", now)
            status["completionTime"] = ts(now)
            status["ready"] = 0
        elif len(failed) > limit:
            conds = set_condition(conds, "FailureTarget", "True", "BackoffLimitExceeded",
                                  "Job has reached the specified backoff limit", now)
            conds = set_condition(conds, "Failed", "True", "BackoffLimitExceeded",
                                  "Job has reached the specified backoff limit", now)
        elif not active:
            pod = self._create_pod(job)
            if pod is not None:
                active.append(pod)
        status["active"] = len(active) if not (succeeded or len(failed) > limit) else 0
        if not status["active"]:
            status.pop("active")
        if succeeded:
            status["succeeded"] = len(succeeded)
        if failed:
            status["failed"] = len(failed)
        if conds:
            status["conditions"] = conds
        if status != (job.get("status") or {}):
            try:
                self.store.mutate(self.jt, ns, name, lambda o: o.__setitem__("status", status), subresource="status")
            except ApiError:
                pass

    def _create_pod(self, job: Obj) -> Obj | None:
        tmpl = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        tmd = tmpl.get("metadata") or {}
        spec = copy.deepcopy(tmpl.get("spec") or {})
        md = job["metadata"]
        labels = {**(tmd.get("labels") or {}), "batch.kubernetes.io/job-name": md["name"], "job-name": md["name"],
                  "batch.kubernetes.io/controller-uid": md["uid"], "controller-uid": md["uid"]}
        annotations = dict(tmd.get("annotations") or {})
        self.ctl.kubelet.admit(labels, annotations, spec, md["namespace"])
        spec = default_pod_spec(spec)
        pod = {"metadata": {"generateName": md["name"] + "-", "namespace": md["namespace"], "labels": labels,
                            "ownerReferences": [owner_ref(job)]},
               "spec": spec, "status": {"phase": "Pending", "qosClass": qos_class(spec)}}
        if annotations:
            pod["metadata"]["annotations"] = annotations
        try:
            created = self.store.create(self.pt, pod)
        except ApiError:
            return None
        self.store.record_event(job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                                component="job-controller")
        return created


__all__ = ["JobControllers", "next_fire", "parse_cron", "cron_for", "SCHEDULED_AT"]
