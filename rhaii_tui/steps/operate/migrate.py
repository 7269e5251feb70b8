"""Operate: the scale-out guide's migration from a single-model deployment, and its rollback."""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ... import manifests as m
from ...cloud.gke import CloudError
from ...config import cost_per_day
from ..base import Status
from ..operators import time_scale_of
from ..podlife import fmt_duration
from .common import (
    K_MIGRATION, K_SINGLE, LLMISVC_KIND, OpEvent, OpResult, READY_TIMEOUT, Runner, _View, _cond, _md, _name,
    _pool_nodes, _remember_config, _run, has_prefix_caching, spec_replicas,
)
from .scale import check_quota

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# migration from the single-model deployment (scale-out guide)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistItem:
    number: int
    key: str
    title: str
    kind: str     # action: the wizard does it | check: probed only | manual: the user's decision


CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem(1, "validate", "Validate single-model deployment working", "check"),
    ChecklistItem(2, "quota", "Request additional TPU quota (4 chips per replica)", "check"),
    ChecklistItem(3, "budget", "Budget approval for increased cost", "manual"),
    ChecklistItem(4, "delete-single", "Delete single-model deployment", "action"),
    ChecklistItem(5, "scale-pool", "Scale node pool to N", "action"),
    ChecklistItem(6, "deploy", "Deploy scale-out configuration", "action"),
    ChecklistItem(7, "cache-routing", "Verify cache routing", "check"),
    ChecklistItem(8, "benchmark", "Performance benchmark", "check"),
    ChecklistItem(9, "monitor", "Monitor for 24-48 hours", "check"),
)
ROLLBACK_CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem(1, "delete-scaleout", "Delete scale-out deployment", "action"),
    ChecklistItem(2, "pool-to-single", "Scale node pool to 1", "action"),
    ChecklistItem(3, "redeploy-single", "Redeploy single-model configuration", "action"),
)
MONITOR_SECONDS = 24 * 3600.0


@dataclass
class ItemState:
    item: ChecklistItem
    state: str        # done | todo | failed | manual | waiting
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.item.number, "key": self.item.key, "title": self.item.title,
                "kind": self.item.kind, "state": self.state, "evidence": self.evidence}


def is_single_model(isvc: Mapping | None) -> bool:
    return isvc is not None and (spec_replicas(isvc) or 1) <= 1 and not has_prefix_caching(isvc)


def find_single_model(ctx: Any, name: str | None = None) -> dict | None:
    """The single-model LLMInferenceService: `name`, else one in the namespace with one replica and
    no prefix caching (the configured service included: an in-place migration)."""
    cfg = ctx.cfg
    kube = ctx.kube()
    if name:
        obj = kube.get(m.LLMISVC_API_VERSION, LLMISVC_KIND, name, cfg.namespace)
        return obj if is_single_model(obj) else None
    try:
        items = kube.list(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.namespace)
    except CloudError:
        return None
    cands = [o for o in items if is_single_model(o)]
    cands.sort(key=lambda o: (_name(o) == cfg.service, _name(o)))
    return cands[0] if cands else None


def _saved_single(ctx: Any) -> dict:
    v = (ctx.saved() or {}).get(K_SINGLE)
    return v if isinstance(v, dict) else {}


def migration_status(ctx: Any, *, single: str | None = None, replicas: int | None = None) -> list[ItemState]:
    """Each checklist item probed live (never raises)."""
    from .. import envoyfilters, epp, performance

    cfg = ctx.cfg
    n = int(replicas or cfg.replicas)
    out: list[ItemState] = []
    saved = ctx.saved() or {}
    mig = saved.get(K_MIGRATION) or {}
    kept = _saved_single(ctx)
    try:
        found = find_single_model(ctx, single)
        scaleout = ctx.kube().get(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace)
        nodes = _pool_nodes(ctx)
    except CloudError as e:
        return [ItemState(i, "failed", e.message) for i in CHECKLIST]
    if scaleout is not None and is_single_model(scaleout):
        scaleout = None
    so_ready = bool(scaleout) and str((_cond(scaleout, "Ready") or {}).get("status")) == "True"

    def add(key: str, state: str, evidence: str) -> None:
        out.append(ItemState(next(i for i in CHECKLIST if i.key == key), state, evidence))

    if found is not None:
        ok = str((_cond(found, "Ready") or {}).get("status")) == "True"
        add("validate", "done" if ok else "failed",
            f"{_name(found)}: 1 replica, no prefix caching, " + ("Ready" if ok else "not Ready"))
    elif kept:
        add("validate", "done", f"{kept.get('name')} was validated and saved before its deletion")
    else:
        add("validate", "todo" if scaleout is None else "done",
            "no single-model deployment found" + (" (already migrated)" if scaleout is not None else ""))
    q = check_quota(ctx, n)
    add("quota", {True: "done", False: "todo", None: "waiting"}[q.ok], q.message + (f" {q.fix}" if q.fix else ""))
    if mig.get("budget_confirmed_at"):
        add("budget", "done", f"confirmed at {time.strftime('%Y-%m-%d %H:%M', time.localtime(mig['budget_confirmed_at']))}"
            f" for ≈ ${cost_per_day(n, cfg.price_per_node_hour):,.2f}/day")
    else:
        add("budget", "manual", f"≈ ${cost_per_day(n, cfg.price_per_node_hour):,.2f}/day for {n} replicas vs "
            f"≈ ${cost_per_day(1, cfg.price_per_node_hour):,.2f}/day single-model: approve before migrating")
    single_name = (found and _name(found)) or kept.get("name") or single
    if found is None:
        add("delete-single", "done", f"{single_name} is gone (its manifest is saved for a rollback)" if kept
            else "no single-model deployment left")
    else:
        add("delete-single", "todo", f"{_name(found)} still deployed")
    ready_nodes = sum(1 for r in nodes if r.ready)
    add("scale-pool", "done" if ready_nodes >= n else "todo", f"{ready_nodes} of {n} TPU nodes Ready")
    if scaleout is not None:
        so_n = spec_replicas(scaleout) or 1
        add("deploy", "done" if so_ready and so_n >= n else "waiting",
            f"{cfg.service}: {so_n} replicas, prefix caching on, " + ("Ready" if so_ready else "not Ready"))
    else:
        add("deploy", "todo", f"{cfg.service} (scale-out) not deployed")
    if scaleout is None:
        add("cache-routing", "todo", "needs the scale-out deployment")
        add("benchmark", "todo", "needs the scale-out deployment")
        add("monitor", "todo", "needs the scale-out deployment")
        return out
    routing = [s for s in (epp.probe(ctx), envoyfilters.probe(ctx))]
    perf = performance.probe(ctx)
    if all(s.status is Status.DONE for s in routing) and perf.status is Status.DONE:
        add("cache-routing", "done", perf.summary)
    elif all(s.status is Status.DONE for s in routing):
        add("cache-routing", "todo", "EPP sidecar and EnvoyFilters in place; run the cache proof (step 10)")
    else:
        bad = next(s for s in routing if s.status is not Status.DONE)
        add("cache-routing", "todo", f"{bad.summary} (steps 6-7)")
    stored = (perf.data or {}).get("stored") or {}
    if stored.get("throughput"):
        add("benchmark", "done", f"throughput measured at {stored.get('at')}")
    else:
        add("benchmark", "todo", "run the throughput test (step 10, or rhaii-tui bench)")
    since = None
    c = _cond(scaleout, "Ready")
    if so_ready and c is not None:
        from ..podlife import to_epoch

        since = to_epoch(c.get("lastTransitionTime"))
    if since is None:
        add("monitor", "todo", "the scale-out deployment is not Ready")
    else:
        age = max(0.0, (time.time() - since) * time_scale_of(ctx))
        add("monitor", "done" if age >= MONITOR_SECONDS else "waiting",
            f"Ready for {fmt_duration(age)} of 24 h")
    return out


def _clean_manifest(obj: Mapping) -> dict:
    """A live object as a manifest to re-apply (no status, no server fields)."""
    md = _md(obj)
    keep = {k: v for k, v in md.items() if k in ("name", "namespace", "labels", "annotations")}
    ann = dict(keep.get("annotations") or {})
    ann.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if ann:
        keep["annotations"] = ann
    else:
        keep.pop("annotations", None)
    return {"apiVersion": obj.get("apiVersion") or m.LLMISVC_API_VERSION, "kind": LLMISVC_KIND,
            "metadata": keep, "spec": copy.deepcopy(obj.get("spec") or {})}


def migrate(ctx: Any, *, single: str | None = None, replicas: int | None = None,
            on_event: Callable[[OpEvent], None] | None = None, stop: threading.Event | None = None,
            poll: float | None = None, budget_confirmed: bool = False,
            ready_timeout: float = READY_TIMEOUT) -> OpResult:
    """The scale-out guide's migration: quota check, (budget confirmed by the caller), save and
    delete the single-model deployment, node pool to N, deploy the scale-out configuration (step 5)
    with the EPP sidecar (6) and EnvoyFilters (7). Items 7-9 are checks that follow."""
    from .. import deploy, envoyfilters, epp

    run = Runner(ctx, on_event, stop, poll)
    n = int(replicas or ctx.cfg.replicas)

    def body() -> OpResult:
        if not budget_confirmed:
            return OpResult("migrate", False, "The budget is not confirmed.",
                            f"Confirm ≈ ${cost_per_day(n, ctx.cfg.price_per_node_hour):,.2f}/day (--yes).",
                            changed=False)
        q = check_quota(ctx, n)
        run.say("check", f"[2] {q.message}")
        if q.ok is False:
            return OpResult("migrate", False, f"Refused, nothing changed: {q.message}", q.fix, changed=False)
        ctx.record(**{K_MIGRATION: {**((ctx.saved() or {}).get(K_MIGRATION) or {}),
                                    "budget_confirmed_at": time.time()}})
        found = find_single_model(ctx, single)
        kept = _saved_single(ctx)
        if found is not None:
            if str((_cond(found, "Ready") or {}).get("status")) != "True":
                return OpResult("migrate", False, f"[1] The single-model deployment {_name(found)} is not Ready.",
                                "Validate it first (the guide's item 1), or delete it yourself.", changed=False)
            run.say("check", f"[1] {_name(found)} is Ready (1 replica, no prefix caching).")
            ctx.record(**{K_SINGLE: {"name": _name(found), "replicas": spec_replicas(found) or 1,
                                     "manifest": _clean_manifest(found), "saved_at": time.time()}})
            run.say("delete", f"[4] Saved {_name(found)}'s manifest for a rollback; deleting it...")
            ctx.kube().delete(m.LLMISVC_API_VERSION, LLMISVC_KIND, _name(found), ctx.cfg.namespace)
            run.wait_pods_gone(_name(found))
        else:
            run.say("check", "[1,4] No single-model deployment left" + (f" ({kept.get('name')} saved)." if kept else "."))
        nodes = _pool_nodes(ctx)
        if len(nodes) != n:
            run.resize_pool(n)
        run.wait_nodes(n)
        cfg = ctx.cfg.replace(replicas=n)
        view = _View(ctx, cfg)
        run.say("replicas", f"[6] Deploying the scale-out configuration: {n} replicas with prefix caching...")
        for what in deploy.apply(view):
            run.say("replicas", f"applied {what}")
        ctx.cfg = cfg
        run.wait_replicas(n, timeout=ready_timeout)
        st6 = epp.run(view, lambda line: run.say("replicas", f"[6] {line}"), stop=run.stop)
        st7 = envoyfilters.run(view, lambda line: run.say("replicas", f"[6] {line}"))
        cfg = _remember_config(ctx, replicas=n)
        ctx.record(**{K_MIGRATION: {**((ctx.saved() or {}).get(K_MIGRATION) or {}), "migrated_at": time.time()}})
        ok = st6.status is Status.DONE and st7.status is Status.DONE
        after = cost_per_day(n, cfg.price_per_node_hour)
        if not ok:
            bad = st6 if st6.status is not Status.DONE else st7
            return OpResult("migrate", False, f"Scale-out deployed ({n} Ready) but cache-aware routing is not in "
                            f"place: {bad.summary}", bad.fix, config=cfg, cost_per_day=after)
        return OpResult("migrate", True, f"Migrated: {n} replicas with prefix caching and cache-aware routing; "
                        f"≈ ${after:,.2f}/day. Next: verify cache routing and benchmark (step 10), monitor 24-48 h.",
                        config=cfg, cost_per_day=after)
    return _run("migrate", run, body)


def rollback_migration(ctx: Any, *, on_event: Callable[[OpEvent], None] | None = None,
                       stop: threading.Event | None = None, poll: float | None = None,
                       ready_timeout: float = READY_TIMEOUT) -> OpResult:
    """The guide's rollback: delete the scale-out deployment, node pool to 1 (the single-model's
    replicas), redeploy the saved single-model configuration."""
    run = Runner(ctx, on_event, stop, poll)

    def body() -> OpResult:
        kept = _saved_single(ctx)
        manifest = kept.get("manifest")
        if not isinstance(manifest, dict):
            return OpResult("rollback-migration", False, "No saved single-model configuration to go back to.",
                            "The migration saves it before deleting the single-model deployment; apply your "
                            "single-model manifest yourself.", changed=False)
        cfg = ctx.cfg
        single_n = int(kept.get("replicas") or 1)
        if run.isvc() is not None and not is_single_model(run.isvc()):
            run.say("delete", f"[1] Deleting the scale-out deployment {cfg.service}...")
            ctx.kube().delete(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace)
        run.wait_pods_gone(cfg.service)
        run.say("nodes", f"[2] Node pool to {single_n} node(s)...")
        if len(_pool_nodes(ctx)) != single_n:
            run.resize_pool(single_n)
        run.wait_nodes(single_n)
        name = str(_md(manifest).get("name") or "")
        run.say("replicas", f"[3] Redeploying {name}...")
        ctx.kube().apply(manifest, cfg.namespace)
        single_view = Runner(_View(ctx, cfg.replace(service=name)), run.on_event, run.stop, run.poll)
        single_view.wait_replicas(single_n, timeout=ready_timeout)
        ctx.record(**{K_MIGRATION: {**((ctx.saved() or {}).get(K_MIGRATION) or {}), "rolled_back_at": time.time()}})
        after = cost_per_day(single_n, cfg.price_per_node_hour)
        return OpResult("rollback-migration", True, f"Rolled back: {name} serving on {single_n} TPU node(s); "
                        f"≈ ${after:,.2f}/day.", cost_per_day=after)
    return _run("rollback-migration", run, body)
