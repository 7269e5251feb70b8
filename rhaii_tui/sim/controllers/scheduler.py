"""kube-scheduler, reduced to what the guide exercises.

Filters, in the scheduler's plugin order (each node reports the first one that rejects it):
NodeUnschedulable, TaintToleration (NoSchedule/NoExecute taints, incl. not-ready nodes),
NodeAffinity (nodeSelector + required node affinity), NodeResourcesFit (cpu, memory, pods and
extended resources such as google.com/tpu, against allocatable minus the requests of the pods
bound to the node). Among the nodes that fit, the least allocated wins (ties by name).

When nothing fits: PodScheduled=False/Unschedulable and a FailedScheduling event with the real
message shape, e.g. "0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector,
3 Insufficient google.com/tpu. preemption: 0/5 nodes are available: 2 Preemption is not helpful
for scheduling, 3 No preemption victims found for incoming pod." Pending pods are retried when
nodes change or pods go away.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from ..store import ApiError
from .common import Obj, node_ready, pod_requests, quantity, set_condition

AFFINITY = "node(s) didn't match Pod's node affinity/selector"
UNSCHEDULABLE = "node(s) were unschedulable"


def _tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations or []:
        effect = t.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key = t.get("key")
        op = t.get("operator", "Equal")
        if not key:
            if op == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if op == "Exists":
            return True
        if (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _node_selector_term_matches(term: Obj, labels: dict[str, str], fields: dict[str, str]) -> bool:
    for expr in term.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        val = labels.get(key)
        if op == "In" and val not in values:
            return False
        if op == "NotIn" and val in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op in ("Gt", "Lt"):
            try:
                a, b = int(val), int(values[0])
            except (TypeError, ValueError, IndexError):
                return False
            if (op == "Gt" and not a > b) or (op == "Lt" and not a < b):
                return False
    for expr in term.get("matchFields") or []:
        if expr.get("key") == "metadata.name":
            v = fields.get("metadata.name")
            if expr.get("operator") == "In" and v not in (expr.get("values") or []):
                return False
            if expr.get("operator") == "NotIn" and v in (expr.get("values") or []):
                return False
    return True


def affinity_matches(spec: Obj, node: Obj) -> bool:
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = req.get("nodeSelectorTerms") or []
    if terms:
        fields = {"metadata.name": node["metadata"]["name"]}
        if not any(_node_selector_term_matches(t, labels, fields) for t in terms):
            return False
    return True


def _fmt_taint(t: Obj) -> str:
    return f"{{{t.get('key')}: {t.get('value', '')}}}"


class Scheduler:
    def __init__(self, ctl: Any):
        self.ctl = ctl
        self.store = ctl.store
        self.pt = self.store.type_for("pods")
        self.nt = self.store.type_for("nodes")
        self._pending: set[tuple[str, str]] = set()
        self._last_msg: dict[str, str] = {}
        ctl.register("schedule", self.reconcile)

    def resync(self) -> None:
        for p in self.store.list(self.pt)[0]:
            if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp"):
                self._want(p)

    def shift(self, dt: float) -> None:
        pass

    def flush(self) -> None:
        pass

    def _want(self, pod: Obj) -> None:
        md = pod["metadata"]
        if pod["spec"].get("schedulerName", "default-scheduler") != "default-scheduler":
            return
        self._pending.add((md["namespace"], md["name"]))
        self.ctl.enqueue(("schedule", md["namespace"], md["name"]))

    def _retry_all(self) -> None:
        for ns, name in list(self._pending):
            self.ctl.enqueue(("schedule", ns, name))

    def on_event(self, etype: str, rtype: Any, obj: Obj, old: Obj | None) -> None:
        if rtype.key == self.pt.key:
            md = obj["metadata"]
            if etype == "DELETED":
                self._pending.discard((md["namespace"], md["name"]))
                self._last_msg.pop(md.get("uid", ""), None)
                if obj["spec"].get("nodeName"):
                    self._retry_all()  # resources freed
            elif not obj["spec"].get("nodeName") and not md.get("deletionTimestamp"):
                if etype == "ADDED" or (old is not None and old["spec"] != obj["spec"]):
                    self._want(obj)
                elif (md["namespace"], md["name"]) not in self._pending:
                    self._want(obj)
        elif rtype.key == self.nt.key:
            if etype == "MODIFIED" and old is not None and old.get("spec") == obj.get("spec") \
                    and node_ready(old) == node_ready(obj) \
                    and (old.get("status") or {}).get("allocatable") == (obj.get("status") or {}).get("allocatable") \
                    and (old["metadata"].get("labels") == obj["metadata"].get("labels")):
                return
            self._retry_all()

    # --- scheduling --------------------------------------------------------------------------
    def _used(self, nodes: list[Obj]) -> dict[str, dict[str, Decimal]]:
        used: dict[str, dict[str, Decimal]] = {n["metadata"]["name"]: {"pods": Decimal(0)} for n in nodes}
        for p in self.store.list(self.pt)[0]:
            node = p["spec"].get("nodeName")
            if not node or node not in used:
                continue
            if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            u = used[node]
            u["pods"] += 1
            for k, v in pod_requests(p["spec"]).items():
                u[k] = u.get(k, Decimal(0)) + v
        return used

    def _fit(self, pod: Obj, nodes: list[Obj]) -> tuple[list[tuple[Obj, float]], Counter, Counter]:
        spec = pod["spec"]
        req = pod_requests(spec)
        req["pods"] = Decimal(1)
        used = self._used(nodes)
        fits: list[tuple[Obj, float]] = []
        reasons: Counter = Counter()
        preempt: Counter = Counter()
        for node in nodes:
            nspec = node.get("spec") or {}
            if nspec.get("unschedulable"):
                reasons[UNSCHEDULABLE] += 1
                preempt["Preemption is not helpful for scheduling"] += 1
                continue
            taints = list(nspec.get("taints") or [])
            if not node_ready(node):
                taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
            bad = [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute")
                   and not _tolerates(spec.get("tolerations") or [], t)]
            if bad:
                reasons[f"node(s) had untolerated taint {_fmt_taint(bad[0])}"] += 1
                preempt["Preemption is not helpful for scheduling"] += 1
                continue
            if not affinity_matches(spec, node):
                reasons[AFFINITY] += 1
                preempt["Preemption is not helpful for scheduling"] += 1
                continue
            alloc = (node.get("status") or {}).get("allocatable") or (node.get("status") or {}).get("capacity") or {}
            u = used[node["metadata"]["name"]]
            short = []
            score = 0.0
            for res, amount in req.items():
                if amount <= 0:
                    continue
                cap = quantity(alloc.get(res)) if res in alloc else (Decimal(110) if res == "pods" else Decimal(0))
                have = cap - u.get(res, Decimal(0))
                if amount > have:
                    short.append(res)
                elif cap > 0 and res in ("cpu", "memory"):
                    score += float((u.get(res, Decimal(0)) + amount) / cap)
            if short:
                for res in sorted(short):
                    reasons["Too many pods" if res == "pods" else f"Insufficient {res}"] += 1
                preempt["No preemption victims found for incoming pod"] += 1
                continue
            fits.append((node, score))
        return fits, reasons, preempt

    def reconcile(self, key: tuple) -> None:
        _, ns, name = key
        pod = self.store.try_get(self.pt, ns, name)
        if pod is None or pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            self._pending.discard((ns, name))
            return
        nodes = self.store.list(self.nt)[0]
        fits, reasons, preempt = self._fit(pod, nodes)
        now = self.ctl.now()
        if fits:
            fits.sort(key=lambda x: (x[1], x[0]["metadata"]["name"]))
            node = fits[0][0]["metadata"]["name"]
            self._bind(pod, node, now)
            return
        total = len(nodes)
        if total == 0:
            msg = "no nodes available to schedule pods"
        else:
            parts = sorted(f"{n} {r}" for r, n in reasons.items())
            pparts = sorted(f"{n} {r}" for r, n in preempt.items())
            msg = (f"0/{total} nodes are available: {', '.join(parts)}. "
                   f"preemption: 0/{total} nodes are available: {', '.join(pparts)}.")
        uid = pod["metadata"]["uid"]
        cond = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if self._last_msg.get(uid) != msg or cond is None or cond.get("message") != msg:
            self._last_msg[uid] = msg

            def mark(o: Obj) -> None:
                st = o.setdefault("status", {})
                st["phase"] = "Pending"
                conds = st.setdefault("conditions", [])
                set_condition(conds, "PodScheduled", "False", "Unschedulable", msg, at=now, probe_times=True)
            try:
                self.store.mutate(self.pt, ns, name, mark, subresource="status")
            except ApiError:
                return
            self.store.record_event(pod, "FailedScheduling", msg, "Warning", component="default-scheduler")

    def _bind(self, pod: Obj, node: str, now: float) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self._pending.discard((ns, name))
        self._last_msg.pop(pod["metadata"]["uid"], None)

        def bind(o: Obj) -> None:
            o["spec"]["nodeName"] = node
        try:
            pod = self.store.mutate(self.pt, ns, name, bind)
        except ApiError:
            return

        def scheduled(o: Obj) -> None:
            st = o.setdefault("status", {})
            st.setdefault("phase", "Pending")
            conds = st.setdefault("conditions", [])
            set_condition(conds, "PodScheduled", "True", None, None, at=now, probe_times=True)
        try:
            pod = self.store.mutate(self.pt, ns, name, scheduled, subresource="status")
        except ApiError:
            return
        self.store.record_event(pod, "Scheduled", f"Successfully assigned {ns}/{name} to {node}",
                                component="default-scheduler")
        self.ctl.kubelet.bound(pod)


__all__ = ["Scheduler", "affinity_matches"]
