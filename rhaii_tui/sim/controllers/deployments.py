"""Deployment and ReplicaSet controllers (apps/v1), as kube-controller-manager runs them.

A Deployment owns one ReplicaSet per pod template (named `<deploy>-<pod-template-hash>`); the
ReplicaSet owns the pods. Rolling updates follow maxSurge/maxUnavailable (defaults 25%/25%:
surge rounds up, unavailable rounds down, both 0 -> 1 unavailable), old ReplicaSets scale down as
new pods become available; Recreate scales old ones to 0 first. Status rollups: replicas,
updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas, observedGeneration, and
the Available / Progressing conditions (with ProgressDeadlineExceeded after
progressDeadlineSeconds), so `kubectl rollout status` works.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from ..store import ApiError
from .common import (
    Obj,
    controller_of,
    get_condition,
    owner_ref,
    pod_ready,
    qos_class,
    set_condition,
    template_hash,
    ts,
)

REVISION = "deployment.kubernetes.io/revision"


def _int_or_percent(v: Any, total: int, round_up: bool) -> int:
    if v is None:
        return 0
    if isinstance(v, str) and v.endswith("%"):
        try:
            frac = float(v[:-1]) / 100.0 * total
        except ValueError:
            return 0
        return int(math.ceil(frac)) if round_up else int(math.floor(frac))
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def surge_unavailable(dep: Obj) -> tuple[int, int]:
    spec = dep.get("spec", {})
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    strat = spec.get("strategy") or {}
    ru = strat.get("rollingUpdate") or {}
    surge = _int_or_percent(ru.get("maxSurge", "25%"), desired, True)
    unavail = _int_or_percent(ru.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavail == 0:
        unavail = 1
    return surge, unavail


def default_pod_spec(spec: Obj) -> Obj:
    """The apiserver's defaulting of a PodSpec (the fields kubectl -o yaml shows)."""
    s = copy.deepcopy(spec)
    s.setdefault("restartPolicy", "Always")
    s.setdefault("terminationGracePeriodSeconds", 30)
    s.setdefault("dnsPolicy", "ClusterFirst")
    s.setdefault("schedulerName", "default-scheduler")
    s.setdefault("securityContext", {})
    s.setdefault("serviceAccountName", s.get("serviceAccount") or "default")
    s["serviceAccount"] = s["serviceAccountName"]
    s.setdefault("enableServiceLinks", True)
    s.setdefault("preemptionPolicy", "PreemptLowerPriority")
    s.setdefault("priority", 0)
    tols = s.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tols):
            tols.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    for group in ("initContainers", "containers"):
        for c in s.get(group) or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1]
            latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
            c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            c.setdefault("resources", {})
            for p in c.get("ports") or []:
                p.setdefault("protocol", "TCP")
            for probe_key in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(probe_key)
                if isinstance(probe, dict):
                    probe.setdefault("timeoutSeconds", 1)
                    probe.setdefault("periodSeconds", 10)
                    probe.setdefault("successThreshold", 1)
                    probe.setdefault("failureThreshold", 3)
                    if isinstance(probe.get("httpGet"), dict):
                        probe["httpGet"].setdefault("scheme", "HTTP")
    return s


class DeploymentController:
    def __init__(self, ctl: Any):
        self.ctl = ctl
        self.store = ctl.store
        self.dt = self.store.type_for("deployments", "apps")
        self.rst = self.store.type_for("replicasets", "apps")
        self.pt = self.store.type_for("pods")
        self._progress: dict[tuple[str, str], tuple[float, tuple]] = {}
        ctl.register("deploy", self.reconcile_deployment)
        ctl.register("rs", self.reconcile_rs)

    # --- plumbing ----------------------------------------------------------------------------
    def resync(self) -> None:
        for d in self.store.list(self.dt)[0]:
            self.ctl.enqueue(("deploy", d["metadata"]["namespace"], d["metadata"]["name"]))
        for r in self.store.list(self.rst)[0]:
            self.ctl.enqueue(("rs", r["metadata"]["namespace"], r["metadata"]["name"]))

    def shift(self, dt: float) -> None:
        self._progress = {k: (t - dt, snap) for k, (t, snap) in self._progress.items()}

    def flush(self) -> None:
        pass

    def on_event(self, etype: str, rtype: Any, obj: Obj, old: Obj | None) -> None:
        md = obj["metadata"]
        if rtype.key == self.dt.key:
            self.ctl.enqueue(("deploy", md["namespace"], md["name"]))
        elif rtype.key == self.rst.key:
            self.ctl.enqueue(("rs", md["namespace"], md["name"]))
            ref = controller_of(obj)
            if ref and ref.get("kind") == "Deployment":
                self.ctl.enqueue(("deploy", md["namespace"], ref["name"]))
        elif rtype.key == self.pt.key:
            ref = controller_of(obj)
            if ref and ref.get("kind") == "ReplicaSet":
                if etype == "MODIFIED" and old is not None and not self._pod_changed(obj, old):
                    return
                self.ctl.enqueue(("rs", md["namespace"], ref["name"]))

    @staticmethod
    def _pod_changed(new: Obj, old: Obj) -> bool:
        return (pod_ready(new) != pod_ready(old)
                or bool(new["metadata"].get("deletionTimestamp")) != bool(old["metadata"].get("deletionTimestamp")))

    # --- ReplicaSet --------------------------------------------------------------------------
    def _owned_pods(self, rs: Obj) -> list[Obj]:
        uid = rs["metadata"]["uid"]
        pods = self.store.select(self.pt, rs["metadata"]["namespace"])
        return [p for p in pods if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]

    def reconcile_rs(self, key: tuple) -> None:
        _, ns, name = key
        rs = self.store.try_get(self.rst, ns, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        want = int(rs["spec"].get("replicas", 1) if rs["spec"].get("replicas") is not None else 1)
        pods = self._owned_pods(rs)
        active = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if len(active) < want:
            for _ in range(want - len(active)):
                pod = self._create_pod(rs)
                if pod is None:
                    break
                active.append(pod)
        elif len(active) > want:
            for p in self._deletion_order(active)[: len(active) - want]:
                try:
                    self.store.delete(self.pt, ns, p["metadata"]["name"])
                    self.store.record_event(rs, "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}",
                                            component="replicaset-controller")
                except ApiError:
                    pass
            active = [p for p in self._owned_pods(rs) if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in active if pod_ready(p))
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if not ready:
            status.pop("readyReplicas")
            status.pop("availableReplicas")
        if status != rs.get("status"):
            try:
                self.store.mutate(self.rst, ns, name, lambda o: o.__setitem__("status", status), subresource="status")
            except ApiError:
                pass

    @staticmethod
    def _deletion_order(pods: list[Obj]) -> list[Obj]:
        """Unscheduled < pending < not ready < ready; newer before older (the RS controller's rank)."""
        def rank(p: Obj) -> tuple:
            scheduled = bool(p.get("spec", {}).get("nodeName"))
            phase = (p.get("status") or {}).get("phase", "Pending")
            return (scheduled, phase == "Running", pod_ready(p),
                    # newer first: negate by sorting on the timestamp descending
                    "".join(chr(0x10FFFF - ord(ch)) for ch in p["metadata"].get("creationTimestamp", "")))
        return sorted(pods, key=rank)

    def _create_pod(self, rs: Obj) -> Obj | None:
        tmpl = copy.deepcopy(rs["spec"].get("template") or {})
        tmd = tmpl.get("metadata") or {}
        spec = copy.deepcopy(tmpl.get("spec") or {})
        labels = dict(tmd.get("labels") or {})
        annotations = dict(tmd.get("annotations") or {})
        self.ctl.kubelet.admit(labels, annotations, spec, rs["metadata"]["namespace"])
        spec = default_pod_spec(spec)
        pod = {
            "metadata": {
                "generateName": rs["metadata"]["name"] + "-",
                "namespace": rs["metadata"]["namespace"],
                "labels": labels,
                "ownerReferences": [owner_ref(rs)],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": qos_class(spec)},
        }
        if annotations:
            pod["metadata"]["annotations"] = annotations
        try:
            created = self.store.create(self.pt, pod)
        except ApiError:
            return None
        self.store.record_event(rs, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                                component="replicaset-controller")
        return created

    # --- Deployment --------------------------------------------------------------------------
    def _owned_rs(self, dep: Obj) -> list[Obj]:
        uid = dep["metadata"]["uid"]
        return [r for r in self.store.select(self.rst, dep["metadata"]["namespace"])
                if any(ref.get("uid") == uid for ref in r["metadata"].get("ownerReferences") or [])]

    def _rs_counts(self, rs: Obj) -> tuple[int, int, int]:
        """(active pods, ready pods, spec replicas) of a ReplicaSet from its pods (fresher than status)."""
        pods = [p for p in self._owned_pods(rs) if not p["metadata"].get("deletionTimestamp")]
        spec_n = int(rs["spec"].get("replicas") or 0)
        return len(pods), sum(1 for p in pods if pod_ready(p)), spec_n

    def _scale_rs(self, dep: Obj, rs: Obj, n: int) -> Obj:
        cur = int(rs["spec"].get("replicas") or 0)
        if cur == n:
            return rs
        ns, name = rs["metadata"]["namespace"], rs["metadata"]["name"]

        def set_n(o: Obj) -> None:
            o["spec"]["replicas"] = n
            o["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = \
                str(dep["spec"].get("replicas", 1))
        rs = self.store.mutate(self.rst, ns, name, set_n)
        verb = "up" if n > cur else "down"
        self.store.record_event(dep, "ScalingReplicaSet", f"Scaled {verb} replica set {name} from {cur} to {n}",
                                component="deployment-controller")
        return rs

    def reconcile_deployment(self, key: tuple) -> None:
        _, ns, name = key
        dep = self.store.try_get(self.dt, ns, name)
        if dep is None:
            self._progress.pop((ns, name), None)
            return
        if dep["metadata"].get("deletionTimestamp"):
            return
        spec = dep.get("spec", {})
        desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        template = spec.get("template") or {}
        h = template_hash(template)
        all_rs = self._owned_rs(dep)
        new_rs = next((r for r in all_rs if (r["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        old_rs = [r for r in all_rs if r is not new_rs]
        revisions = [int((r["metadata"].get("annotations") or {}).get(REVISION, "0") or 0) for r in all_rs]
        max_rev = max(revisions, default=0)
        created_new = False
        if new_rs is None:
            new_rs = self._create_rs(dep, h, max_rev + 1, 0)
            if new_rs is None:
                return
            created_new = True
        elif int((new_rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0) < max_rev:
            # rolled back to an older template: it becomes the newest revision again
            def bump(o: Obj) -> None:
                o["metadata"].setdefault("annotations", {})[REVISION] = str(max_rev + 1)
            new_rs = self.store.mutate(self.rst, ns, new_rs["metadata"]["name"], bump)

        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        paused = bool(spec.get("paused"))
        if not paused:
            if strategy == "Recreate":
                self._recreate(dep, new_rs, old_rs, desired)
            else:
                self._rolling(dep, new_rs, old_rs, desired)
            # old ReplicaSets at 0 beyond the history limit go away
            limit = int(spec.get("revisionHistoryLimit", 10))
            dead = [r for r in self._owned_rs(dep) if r["metadata"]["name"] != new_rs["metadata"]["name"]
                    and int(r["spec"].get("replicas") or 0) == 0 and not self._rs_counts(r)[0]]
            dead.sort(key=lambda r: int((r["metadata"].get("annotations") or {}).get(REVISION, "0") or 0))
            for r in dead[: max(0, len(dead) - limit)]:
                try:
                    self.store.delete(self.rst, ns, r["metadata"]["name"])
                except ApiError:
                    pass
        self._update_status(dep, new_rs, desired, created_new)

    def _create_rs(self, dep: Obj, h: str, revision: int, replicas: int) -> Obj | None:
        template = copy.deepcopy(dep["spec"].get("template") or {})
        tmd = template.setdefault("metadata", {})
        tmd.setdefault("labels", {})["pod-template-hash"] = h
        selector = copy.deepcopy(dep["spec"].get("selector") or {"matchLabels": {}})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = h
        labels = dict(tmd["labels"])
        rs = {
            "metadata": {
                "name": f"{dep['metadata']['name']}-{h}",
                "namespace": dep["metadata"]["namespace"],
                "labels": labels,
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(dep["spec"].get("replicas", 1)),
                    "deployment.kubernetes.io/max-replicas": str(
                        int(dep["spec"].get("replicas", 1) or 0) + surge_unavailable(dep)[0]),
                    REVISION: str(revision),
                },
                "ownerReferences": [owner_ref(dep)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template,
                     "minReadySeconds": dep["spec"].get("minReadySeconds", 0)},
            "status": {"replicas": 0, "observedGeneration": 1},
        }
        try:
            return self.store.create(self.rst, rs)
        except ApiError as e:
            if e.code == 409:
                return self.store.try_get(self.rst, dep["metadata"]["namespace"], rs["metadata"]["name"])
            return None

    def _recreate(self, dep: Obj, new_rs: Obj, old_rs: list[Obj], desired: int) -> None:
        alive = False
        for r in old_rs:
            if int(r["spec"].get("replicas") or 0) > 0:
                self._scale_rs(dep, r, 0)
            if self._rs_counts(r)[0] > 0:
                alive = True
        if not alive:
            self._scale_rs(dep, new_rs, desired)

    def _rolling(self, dep: Obj, new_rs: Obj, old_rs: list[Obj], desired: int) -> None:
        surge, max_unavail = surge_unavailable(dep)
        old_rs = [r for r in old_rs if int(r["spec"].get("replicas") or 0) > 0 or self._rs_counts(r)[0] > 0]
        if not old_rs:
            self._scale_rs(dep, new_rs, desired)
            return
        # scale up the new ReplicaSet within maxSurge
        new_n = int(new_rs["spec"].get("replicas") or 0)
        total = new_n + sum(int(r["spec"].get("replicas") or 0) for r in old_rs)
        max_total = desired + surge
        if new_n > desired:
            new_rs = self._scale_rs(dep, new_rs, desired)
        elif total < max_total and new_n < desired:
            new_rs = self._scale_rs(dep, new_rs, min(desired, new_n + (max_total - total)))
        new_n = int(new_rs["spec"].get("replicas") or 0)
        # scale down old ReplicaSets within maxUnavailable
        min_available = desired - max_unavail
        new_active, new_ready, _ = self._rs_counts(new_rs)
        new_unavailable = max(0, new_n - new_ready)
        all_n = new_n + sum(int(r["spec"].get("replicas") or 0) for r in old_rs)
        budget = all_n - min_available - new_unavailable
        if budget <= 0:
            return
        # first the old pods that are not ready (cleanup of unhealthy replicas)
        for r in sorted(old_rs, key=lambda x: x["metadata"].get("creationTimestamp", "")):
            if budget <= 0:
                break
            n = int(r["spec"].get("replicas") or 0)
            active, ready, _ = self._rs_counts(r)
            unhealthy = max(0, min(n, active) - ready)
            if unhealthy and n > 0:
                cut = min(unhealthy, n, budget)
                self._scale_rs(dep, r, n - cut)
                all_n -= cut
                budget -= cut
        # then available old pods, oldest ReplicaSet first, keeping minAvailable available
        available = new_ready + sum(self._rs_counts(r)[1] for r in old_rs)
        budget = available - min_available
        for r in sorted(old_rs, key=lambda x: x["metadata"].get("creationTimestamp", "")):
            if budget <= 0:
                break
            r = self.store.try_get(self.rst, r["metadata"]["namespace"], r["metadata"]["name"]) or r
            n = int(r["spec"].get("replicas") or 0)
            if n <= 0:
                continue
            cut = min(n, budget)
            self._scale_rs(dep, r, n - cut)
            budget -= cut

    def _update_status(self, dep: Obj, new_rs: Obj, desired: int, created_new: bool) -> None:
        ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        all_rs = self._owned_rs(dep)
        total = ready = updated = new_ready = 0
        for r in all_rs:
            active, rdy, _ = self._rs_counts(r)
            total += active
            ready += rdy
            if r["metadata"]["uid"] == new_rs["metadata"]["uid"]:
                updated = active
                new_ready = rdy
        _, max_unavail = surge_unavailable(dep)
        available = ready
        now = self.ctl.now()
        old_status = dep.get("status") or {}
        conds = copy.deepcopy(old_status.get("conditions") or [])
        new_name = new_rs["metadata"]["name"]
        complete = updated == desired and total == desired and available >= desired \
            and new_ready >= desired
        snap = (new_name, updated, ready, total, desired)
        prev = self._progress.get((ns, name))
        if prev is None:
            c = get_condition(dep, "Progressing")
            from ..store import parse_rfc3339
            t0 = parse_rfc3339(c.get("lastUpdateTime")) if c else None
            prev = (t0 or now, snap if c else ())
        if prev[1] != snap:
            prev = (now, snap)
        self._progress[(ns, name)] = prev
        if available >= desired - max_unavail:
            set_condition(conds, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.",
                          at=now, update_time=True)
        else:
            set_condition(conds, "Available", "False", "MinimumReplicasUnavailable",
                          "Deployment does not have minimum availability.", at=now, update_time=True)
        deadline = int(dep["spec"].get("progressDeadlineSeconds", 600))
        if complete:
            set_condition(conds, "Progressing", "True", "NewReplicaSetAvailable",
                          f'ReplicaSet "{new_name}" has successfully progressed.', at=now, update_time=True)
        elif (now - prev[0]) * self.ctl.speed >= deadline:
            set_condition(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                          f'ReplicaSet "{new_name}" has timed out progressing.', at=now, update_time=True)
        else:
            c = next((x for x in conds if x["type"] == "Progressing"), None)
            if created_new:
                set_condition(conds, "Progressing", "True", "NewReplicaSetCreated",
                              f'Created new replica set "{new_name}"', at=now, update_time=True)
            elif c is None or c.get("reason") not in ("NewReplicaSetCreated", "ReplicaSetUpdated") \
                    or prev[0] == now:
                set_condition(conds, "Progressing", "True", "ReplicaSetUpdated",
                              f'ReplicaSet "{new_name}" is progressing.', at=now, update_time=True)
            # wake at the deadline to flip to ProgressDeadlineExceeded
            self.ctl.wake_at(("deploy", ns, name), prev[0] + deadline / self.ctl.speed + 1e-3)
        # Available first, Progressing second (the controller's order)
        conds.sort(key=lambda c: {"Available": 0, "Progressing": 1}.get(c["type"], 2))
        status: Obj = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, max(total, desired) - available),
            "conditions": conds,
        }
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
            if not status[k]:
                status.pop(k)
        if status != old_status:
            # keep lastUpdateTime stable when nothing but the timestamp would change
            if old_status.get("conditions") and self._same_but_times(old_status, status):
                return
            try:
                self.store.mutate(self.dt, ns, name, lambda o: o.__setitem__("status", status), subresource="status")
            except ApiError:
                pass

    @staticmethod
    def _same_but_times(a: Obj, b: Obj) -> bool:
        def strip(s: Obj) -> Obj:
            s = copy.deepcopy(s)
            for c in s.get("conditions") or []:
                c.pop("lastUpdateTime", None)
                c.pop("lastTransitionTime", None)
            return s
        return strip(a) == strip(b)


__all__ = ["DeploymentController", "default_pod_spec", "surge_unavailable", "ts"]
