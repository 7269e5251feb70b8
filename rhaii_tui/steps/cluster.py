"""Step 2: the GKE cluster and the TPU v6e node pool (one ct6e-standard-4t node per replica).

- `plan(ctx)`: what will be created / reused / resized, node count, cost per day.
- `ensure_cluster(ctx, on_progress)`: reuses an existing cluster (checks zone, RUNNING, the TPU
  pool and its size; resizes only when allowed), reattaches to an operation already running (a
  restarted wizard never creates twice), or creates; then waits for N Ready TPU nodes. Failures
  are CloudError; a stockout names the other zones that offer v6e.
- `probe(ctx)`: done when the cluster is RUNNING and N TPU nodes are Ready (from the live cluster).
- `tpu_nodes(ctx)`: node rows for the pane.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..cloud import services
from ..cloud.gke import (
    CloudError,
    ClusterInfo,
    ErrorContext,
    OperationInfo,
    OpProgress,
    PoolInfo,
    classify_text,
    fix_for,
)
from ..config import (
    DEFAULT_POOL_MACHINE_TYPE,
    TPU_ACCELERATOR,
    TPU_MACHINE_TYPE,
    TPU_POOL_NAME,
    TPU_TOPOLOGY,
    V6E_ZONES,
    cost_per_day,
)
from ..guide import step as guide_step
from . import stockout
from .base import Status, StepState
from .context import StepContext

log = logging.getLogger(__name__)

ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
NODEPOOL_LABEL = "cloud.google.com/gke-nodepool"
TPU_SELECTOR = f"{ACCELERATOR_LABEL}={TPU_ACCELERATOR}"


# --- pane data ------------------------------------------------------------------------------------


@dataclass
class NodeRow:
    name: str
    pool: str
    ready: bool
    accelerator: str
    topology: str
    tpu_chips: int
    machine_type: str
    zone: str
    age_seconds: float
    status: str  # "Ready", "NotReady", "Ready,SchedulingDisabled"...

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _node_row(n: Any) -> NodeRow:
    labels = dict(n.metadata.labels or {})
    conds = {c.type: c.status for c in (n.status.conditions or [])} if n.status else {}
    ready = conds.get("Ready") == "True"
    status = "Ready" if ready else "NotReady"
    if n.spec is not None and getattr(n.spec, "unschedulable", False):
        status += ",SchedulingDisabled"
    cap = dict((n.status.capacity or {}) if n.status else {})
    try:
        chips = int(str(cap.get("google.com/tpu", "0")))
    except ValueError:
        chips = 0
    created = n.metadata.creation_timestamp
    age = max(0.0, time.time() - created.timestamp()) if created is not None else 0.0
    return NodeRow(
        name=n.metadata.name, pool=labels.get(NODEPOOL_LABEL, ""), ready=ready,
        accelerator=labels.get(ACCELERATOR_LABEL, ""), topology=labels.get(TOPOLOGY_LABEL, ""),
        tpu_chips=chips,
        machine_type=labels.get("node.kubernetes.io/instance-type", labels.get("beta.kubernetes.io/instance-type", "")),
        zone=labels.get("topology.kubernetes.io/zone", ""), age_seconds=age, status=status)


def tpu_nodes(ctx: StepContext) -> list[NodeRow]:
    """The cluster's TPU v6e nodes (label cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice)."""
    kube = ctx.kube()
    nodes = kube.call("list the TPU nodes", kube.core.list_node, label_selector=TPU_SELECTOR)
    rows = [_node_row(n) for n in nodes.items]
    rows.sort(key=lambda r: r.name)
    return rows


def _pool_rows(rows: list[NodeRow]) -> list[NodeRow]:
    """Rows of our TPU pool (nodes without a pool label count: some clusters omit it)."""
    return [r for r in rows if r.pool in ("", TPU_POOL_NAME)]


# --- plan ------------------------------------------------------------------------------------------


@dataclass
class ClusterPlan:
    project: str
    zone: str
    cluster: str
    replicas: int
    chips: int
    cost_per_day: float
    cost_scaled_to_zero: float
    exists: bool
    status: str | None
    pool_exists: bool
    pool_nodes: int | None  # current TPU nodes in the pool (None: unknown)
    resize: tuple[int, int] | None  # (current, wanted) when the pool has another size
    in_flight: OperationInfo | None  # an operation already running that step 2 will follow
    actions: list[str]
    creates_cluster: bool = False  # step 2 will send a cluster create
    creates_pool: bool = False  # step 2 will send a TPU node pool create
    warnings: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    @property
    def billable(self) -> bool:
        """Does carrying out the plan start or change billing (needs the cost confirmation)?"""
        return self.creates_cluster or self.creates_pool or self.resize is not None

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "zone": self.zone, "cluster": self.cluster, "replicas": self.replicas,
                "chips": self.chips, "cost_per_day": self.cost_per_day,
                "cost_scaled_to_zero": self.cost_scaled_to_zero, "exists": self.exists, "status": self.status,
                "pool_exists": self.pool_exists, "pool_nodes": self.pool_nodes,
                "resize": list(self.resize) if self.resize else None,
                "in_flight": self.in_flight.describe() if self.in_flight else None,
                "creates_cluster": self.creates_cluster, "creates_pool": self.creates_pool,
                "actions": self.actions, "warnings": self.warnings, "billable": self.billable}


def plan(ctx: StepContext) -> ClusterPlan:
    """What step 2 would do now, from the live state. Raises CloudError when it cannot be read."""
    cfg = ctx.cfg
    n = int(cfg.replicas)
    gke = ctx.gke
    info = ctx.cluster(refresh=True)
    actions: list[str] = []
    warnings: list[str] = []
    in_flight = None
    pool: PoolInfo | None = None
    pool_nodes: int | None = None
    resize = None
    creates_cluster = creates_pool = False
    if info is None:
        in_flight = gke.in_flight(cfg.cluster, {"CREATE_CLUSTER"})
        creates_pool = True
        if in_flight:
            actions.append(f"Reattach to the cluster creation already running ({in_flight.name}).")
        else:
            creates_cluster = True
            actions.append(f"Create cluster {cfg.cluster} in {cfg.zone}: default pool "
                           f"{getattr(cfg, 'default_machine_type', '') or DEFAULT_POOL_MACHINE_TYPE} "
                           "x2 (autoscaling 1-5), IP aliases, Dataplane V2 (enforces NetworkPolicies) (~5 min).")
        actions.append(f"Create node pool {TPU_POOL_NAME}: {n} x {TPU_MACHINE_TYPE} (TPU v6e, {TPU_TOPOLOGY}, 4 chips "
                       f"each, {4 * n} chips) (~15 min).")
    else:
        actions.append(f"Reuse cluster {info.name} ({info.status}).")
        if info.status in ("PROVISIONING", "RECONCILING"):
            in_flight = gke.in_flight(cfg.cluster)
            if in_flight:
                actions.append(f"Follow the operation already running ({in_flight.describe()}).")
        pool = info.pool(TPU_POOL_NAME)
        if pool is None:
            op = gke.in_flight(cfg.cluster, {"CREATE_NODE_POOL"}, pool=TPU_POOL_NAME)
            in_flight = in_flight or op
            if op:
                actions.append(f"Reattach to the TPU pool creation already running ({op.name}).")
            else:
                creates_pool = True
                actions.append(f"Create node pool {TPU_POOL_NAME}: {n} x {TPU_MACHINE_TYPE} ({4 * n} chips) (~15 min).")
        else:
            if pool.machine_type and pool.machine_type != TPU_MACHINE_TYPE:
                warnings.append(f"Node pool {TPU_POOL_NAME} exists with machine type {pool.machine_type}, not "
                                f"{TPU_MACHINE_TYPE}; the wizard will not change it.")
            pool_nodes = _current_pool_size(ctx, info, pool)
            if pool_nodes is not None and pool_nodes != n:
                resize = (pool_nodes, n)
                actions.append(f"Resize node pool {TPU_POOL_NAME} from {pool_nodes} to {n} node(s).")
            else:
                actions.append(f"Reuse node pool {TPU_POOL_NAME} ({pool.status}).")
    actions.append(f"Wait for {n} TPU v6e node(s) Ready and connect to the cluster's Kubernetes API.")
    return ClusterPlan(
        project=cfg.project, zone=cfg.zone, cluster=cfg.cluster, replicas=n, chips=4 * n,
        cost_per_day=cfg.cost_per_day(n), cost_scaled_to_zero=cost_per_day(0, cfg.price_per_node_hour),
        exists=info is not None, status=info.status if info else None, pool_exists=pool is not None,
        pool_nodes=pool_nodes, resize=resize, in_flight=in_flight, actions=actions,
        creates_cluster=creates_cluster, creates_pool=creates_pool, warnings=warnings,
        commands=guide_step(2).commands(cfg))


def _current_pool_size(ctx: StepContext, info: ClusterInfo, pool: PoolInfo) -> int | None:
    """Nodes in the TPU pool now: the Kubernetes nodes are the truth (initialNodeCount is only the
    size at creation)."""
    if not info.running:
        return pool.initial_node_count
    try:
        return len(_pool_rows(tpu_nodes(ctx)))
    except CloudError:
        return pool.initial_node_count


# --- ensure ----------------------------------------------------------------------------------------


@dataclass
class ClusterProgress:
    phase: str  # "check" | "create-cluster" | "create-pool" | "resize-pool" | "wait-nodes" | "kubeconfig" | "done"
    message: str
    op: OpProgress | None = None
    nodes_ready: int = 0
    nodes_wanted: int = 0
    nodes: list[NodeRow] = field(default_factory=list)
    reattached: bool = False
    stockout: dict[str, Any] | None = None  # the instance groups list capacity errors (steps.stockout)


@dataclass
class ClusterResult:
    cluster: ClusterInfo
    nodes: list[NodeRow]
    created_cluster: bool = False
    created_pool: bool = False
    resized: bool = False
    reattached: list[str] = field(default_factory=list)  # operation names followed, not started by us
    resize_needed: tuple[int, int] | None = None  # (current, wanted) when resize was not allowed
    kubeconfig: Path | None = None
    nodes_wanted: int = 0

    @property
    def nodes_ready(self) -> int:
        return sum(1 for r in _pool_rows(self.nodes) if r.ready)

    @property
    def ready(self) -> bool:
        """Step 2 done: no resize pending and one Ready TPU node per replica."""
        return self.resize_needed is None and self.nodes_ready >= self.nodes_wanted


def _alternatives(ctx: StepContext) -> tuple[str, ...]:
    try:
        disc = services.v6e_zones(ctx.profile, ctx.cfg.project)
        zones = disc.zones
    except Exception:  # noqa: BLE001
        zones = list(V6E_ZONES)
    return tuple(z for z in zones if z != ctx.cfg.zone)


def ensure_cluster(ctx: StepContext, on_progress: Callable[[ClusterProgress], None] | None = None, *,
                   resize: bool = False, spot: bool = False, write_kubeconfig: bool = False,
                   kubeconfig_path: str | Path | None = None, stop: threading.Event | None = None,
                   replace_failed_pool: bool = False,
                   op_timeout: float | None = None, node_timeout: float = 1800.0,
                   poll_min: float = 0.2, poll_max: float = 10.0, keep_waiting: bool = False,
                   pool: bool = True) -> ClusterResult:
    """Make the cluster and the TPU pool exist with one Ready node per replica. Idempotent: reuses,
    reattaches, or creates. `resize`: allowed to change an existing pool's size (billable: the
    caller confirmed it). `pool=False`: only the cluster, returned once RUNNING (express mode
    creates the pool as its own piece of work, steps/graph.py). While a TPU pool operation runs, its instance groups' errors are read:
    a stockout (or quota error) is named within minutes, as a CloudError carrying the diagnosis
    and the options (`details["stockout"]`), unless `keep_waiting`. Raises CloudError."""
    cfg = ctx.cfg
    gke = ctx.gke
    n = int(cfg.replicas)
    name = cfg.cluster
    reattached: list[str] = []
    created_cluster = created_pool = resized = False
    errors = cfg.errors()
    bad = {k: v for k, v in errors.items() if k in ("project", "zone", "cluster", "replicas")}
    if bad:
        raise CloudError("unknown", "The configuration is invalid: " + "; ".join(bad.values()),
                         "Fix the configuration, then run step 2 again.")

    def report(phase: str, message: str, op: OpProgress | None = None, **kw: Any) -> None:
        if on_progress is None:
            return
        try:
            on_progress(ClusterProgress(phase, message, op, **kw))
        except Exception:  # noqa: BLE001
            log.exception("on_progress callback failed")

    def follow(op: OperationInfo, phase: str, was_running: bool) -> OperationInfo:
        if was_running:
            reattached.append(op.name)

        def cb(p: OpProgress) -> None:
            verb = "Reattached to" if was_running else "Following"
            report(phase, f"{verb} {p.op.describe()}: {p.message}", p, reattached=was_running)

        watch = None
        if op.op_type in ("CREATE_NODE_POOL", "SET_NODE_POOL_SIZE") and op.targets(name, TPU_POOL_NAME):
            def found(reading: Any) -> None:
                if keep_waiting:
                    report(phase, f"The TPU pool's instance group reports {', '.join(reading.codes)} for "
                           f"{len(reading.instances)} instance(s); still waiting, as asked (GKE gives up after "
                           f"about {stockout.GKE_GIVES_UP_SECONDS // 60} min).", reattached=was_running,
                           stockout={"kind": reading.kind, "codes": reading.codes, "waiting": True})

            watch = stockout.CapacityWatch(ctx, op, stop=stop, keep_waiting=keep_waiting, on_found=found)
        try:
            if watch is None:
                return gke.wait(op, cb, timeout=op_timeout, stop=stop, poll_min=poll_min, poll_max=poll_max,
                                need_chips=4 * n)
            with watch:
                info = gke.wait(op, cb, timeout=op_timeout, stop=watch.stop_event, poll_min=poll_min,
                                poll_max=poll_max, need_chips=4 * n)
            if watch.found and not keep_waiting and not info.done and not stopped():
                reading = watch.reading
                report(phase, f"{'Quota exceeded' if reading.kind == 'quota' else 'Stockout'} in {cfg.zone}: the "
                       f"TPU pool's instance group reports {', '.join(reading.codes)} for "
                       f"{len(reading.instances)} instance(s) while GKE's operation still runs. Checking the "
                       "options (zones, quota, Spot, flex-start)...", reattached=was_running)
                diag = stockout.diagnose(ctx, reading, info, named_at=watch.named_at)
                report(phase, diag.headline, stockout=diag.to_dict(), reattached=was_running)
                raise _capacity_error(ctx, diag)
            return info
        except CloudError as e:
            if e.kind == "stockout" and "stockout" not in e.details:
                alts = _alternatives(ctx)
                details = {k: v for k, v in e.details.items() if k != "alternatives"}
                diag = None
                try:
                    diag = stockout.diagnose(ctx, watch.reading if watch is not None else None, None,
                                             error_text=e.message)
                except Exception:  # noqa: BLE001 - the diagnosis is a bonus; the stockout is named anyway
                    log.exception("stockout diagnosis failed")
                if diag is not None:
                    details["stockout"] = diag.to_dict()
                raise CloudError("stockout", e.message, _stockout_fix(cfg.zone, alts), alternatives=alts,
                                 **details) from None
            raise

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    # 1. the cluster -----------------------------------------------------------------------------
    report("check", f"Looking for cluster {name} in {cfg.zone}...")
    info = ctx.cluster(refresh=True)
    if info is None:
        elsewhere = gke.find_elsewhere(name)
        if elsewhere:
            raise CloudError("conflict", f"A cluster named {name} exists in {', '.join(elsewhere)}, not in {cfg.zone}.",
                             f"Set the zone to {elsewhere[0]} (--zone) to use it, or choose another cluster name.")
        op = gke.in_flight(name, {"CREATE_CLUSTER"})
        if op is not None:
            report("create-cluster", f"Cluster creation already running ({op.name}): reattaching.", reattached=True)
            op = follow(op, "create-cluster", True)
        else:
            report("check", "Checking the TPU v6e quota and your permissions (live)...")
            check_before_billable(ctx, n, f"create cluster {name} and its {n}-node TPU pool")
            report("create-cluster", f"Creating cluster {name} (~5 min)...")
            op, was_running = _send(lambda: gke.create_cluster(name, machine_type=cfg.default_machine_type),
                                    lambda: gke.in_flight(name, {"CREATE_CLUSTER"}), stop)
            created_cluster = not was_running
            op = follow(op, "create-cluster", was_running)
        if stopped():
            raise _detached(op)
        info = ctx.cluster(refresh=True)
    elif info.status in ("PROVISIONING", "RECONCILING") and (pool or not info.serving_api):
        op = gke.in_flight(name)
        if op is not None:
            report("create-cluster", f"Cluster is {info.status}: following {op.describe()}.", reattached=True)
            op = follow(op, "create-cluster" if op.op_type == "CREATE_CLUSTER" else
                        ("create-pool" if op.op_type == "CREATE_NODE_POOL" else "resize-pool"), True)
            if stopped():
                raise _detached(op)
        info = _wait_cluster_running(ctx, report, stop, poll_min, poll_max, op_timeout)
    if info is None:
        raise CloudError("not_found", f"Cluster {name} vanished while it was being created.",
                         "Check the operations in the console (Kubernetes Engine > Clusters), then run step 2 again.")
    if info.status == "STOPPING":
        raise CloudError("conflict", f"Cluster {name} is being deleted.",
                         "Wait until the deletion finishes, then run step 2 again to create it anew.")
    if info.status in ("ERROR", "DEGRADED"):
        kind = classify_text(info.status_message) or "unknown"
        raise CloudError(kind, f"Cluster {name} is {info.status}: {info.status_message or 'no reason given'}.",
                         "Look at the cluster in the console; if it cannot recover, delete it and run step 2 again.")
    if not info.running and (pool or not info.serving_api):  # RECONCILING: a node pool operation runs
        info = _wait_cluster_running(ctx, report, stop, poll_min, poll_max, op_timeout)
    if not pool:
        report("done", f"Cluster {name} {info.status}: its Kubernetes API answers.")
        return ClusterResult(cluster=info, nodes=[], created_cluster=created_cluster, reattached=reattached,
                             nodes_wanted=n)

    # 2. the TPU pool ----------------------------------------------------------------------------
    pool = info.pool(TPU_POOL_NAME)
    if pool is None:
        op = gke.in_flight(name, {"CREATE_NODE_POOL"}, pool=TPU_POOL_NAME)
        if op is not None:
            report("create-pool", f"TPU pool creation already running ({op.name}): reattaching.", reattached=True)
            follow(op, "create-pool", True)
        else:
            if not created_cluster:  # checked just before the cluster was created
                check_before_billable(ctx, n, f"create node pool {TPU_POOL_NAME} ({n} node(s))")
            report("create-pool", f"Creating node pool {TPU_POOL_NAME}: {n} x {TPU_MACHINE_TYPE} (~15 min)...")
            op, was_running = _send(lambda: gke.create_tpu_pool(name, n, spot=spot),
                                    lambda: gke.in_flight(name, {"CREATE_NODE_POOL"}, pool=TPU_POOL_NAME), stop,
                                    busy=lambda: gke.in_flight(name))
            created_pool = not was_running
            op = follow(op, "create-pool", was_running)
        if stopped():
            raise _detached(op)
        info = ctx.cluster(refresh=True) or info
        pool = info.pool(TPU_POOL_NAME)
    elif pool.status in ("PROVISIONING", "RECONCILING"):
        op = gke.in_flight(name, pool=TPU_POOL_NAME)
        if op is not None:
            report("create-pool", f"Node pool {TPU_POOL_NAME} is {pool.status}: following {op.describe()}.",
                   reattached=True)
            follow(op, "create-pool" if op.op_type == "CREATE_NODE_POOL" else "resize-pool", True)
            if stopped():
                raise _detached(op)
            info = ctx.cluster(refresh=True) or info
            pool = info.pool(TPU_POOL_NAME)
    if pool is None:
        raise CloudError("unknown", f"Node pool {TPU_POOL_NAME} is missing after its creation finished.",
                         "Run step 2 again; if it persists, check the node pools in the console.")
    if pool.status == "ERROR":
        if not replace_failed_pool:
            raise _pool_error(ctx, pool, options=True)
        report("create-pool", f"Deleting the failed node pool {TPU_POOL_NAME}...")
        op, was_running = _send(lambda: gke.delete_node_pool(name, TPU_POOL_NAME),
                                lambda: gke.in_flight(name, {"DELETE_NODE_POOL"}, pool=TPU_POOL_NAME), stop)
        follow(op, "create-pool", was_running)
        if stopped():
            raise CloudError("conflict", "Stopped while the failed pool was being deleted.", "Run step 2 again.",
                             detached=True)
        _wait_cluster_running(ctx, report, stop, poll_min, poll_max, op_timeout)
        report("create-pool", f"Creating node pool {TPU_POOL_NAME}: {n} x {TPU_MACHINE_TYPE} (~15 min)...")
        op, was_running = _send(lambda: gke.create_tpu_pool(name, n, spot=spot),
                                lambda: gke.in_flight(name, {"CREATE_NODE_POOL"}, pool=TPU_POOL_NAME), stop)
        op = follow(op, "create-pool", was_running)
        created_pool = True
        if stopped():
            raise _detached(op)
        info = ctx.cluster(refresh=True) or info
        pool = info.pool(TPU_POOL_NAME)
        if pool is None or pool.status == "ERROR":
            raise _pool_error(ctx, pool) if pool is not None else CloudError(
                "unknown", f"Node pool {TPU_POOL_NAME} is missing after its creation finished.", "Run step 2 again.")
    if pool.machine_type and pool.machine_type != TPU_MACHINE_TYPE:
        raise CloudError("conflict", f"Node pool {TPU_POOL_NAME} exists with machine type {pool.machine_type}, "
                         f"not {TPU_MACHINE_TYPE}.",
                         f"Delete that pool (or rename it) so the wizard can create {TPU_POOL_NAME} with "
                         f"{TPU_MACHINE_TYPE}, then run step 2 again.")

    # 3. size --------------------------------------------------------------------------------------
    want = n
    resize_needed = None
    current = _current_pool_size(ctx, info, pool)
    if current is not None and current != n and not created_pool:
        if resize:
            if n > current:
                check_before_billable(ctx, n, f"resize node pool {TPU_POOL_NAME} to {n} node(s)")
            report("resize-pool", f"Resizing node pool {TPU_POOL_NAME} from {current} to {n} node(s)...")
            op, was_running = _send(lambda: gke.set_pool_size(name, TPU_POOL_NAME, n),
                                    lambda: gke.in_flight(name, {"SET_NODE_POOL_SIZE"}, pool=TPU_POOL_NAME), stop,
                                    busy=lambda: gke.in_flight(name))
            resized = True
            follow(op, "resize-pool", was_running)
            if stopped():
                raise _detached(op)
        else:
            resize_needed = (current, n)
            want = min(current, n)
            report("check", f"Node pool {TPU_POOL_NAME} has {current} node(s); {n} wanted. Resize it to continue "
                   f"({'adds' if n > current else 'removes'} {abs(n - current)} TPU node(s)).")

    # 4. nodes Ready -------------------------------------------------------------------------------
    rows = _wait_nodes(ctx, want, report, stop, node_timeout, poll_min, poll_max)
    kubeconfig = None
    if write_kubeconfig:
        report("kubeconfig", "Writing the kubeconfig entry (gke-gcloud-auth-plugin; no token stored)...")
        kubeconfig = gke.write_kubeconfig(info, kubeconfig_path)
    ready = sum(1 for r in _pool_rows(rows) if r.ready)
    report("done", f"Cluster {name} RUNNING with {ready} TPU v6e node(s) Ready.", nodes_ready=ready,
           nodes_wanted=n, nodes=rows)
    ctx.record(cluster_ready_at=time.time(), tpu_nodes=ready)
    return ClusterResult(cluster=info, nodes=rows, created_cluster=created_cluster, created_pool=created_pool,
                         resized=resized, reattached=reattached, resize_needed=resize_needed, kubeconfig=kubeconfig,
                         nodes_wanted=n)


# the permissions a billable action needs (checked live before it, whatever step 1 remembered)
BILLABLE_PERMISSIONS = ("container.clusters.create", "container.clusters.update", "iam.serviceAccounts.actAs")


def check_before_billable(ctx: Any, replicas: int, what: str) -> None:
    """Live, right before a billable action (cluster or pool create, a resize up): the TPU v6e quota
    for `replicas` and the permissions it needs. Raises CloudError("quota"/"permission") naming
    what is missing; a check that cannot be read does not block (the action itself then says why)."""
    from ..cloud import projects, quotas

    cfg = ctx.cfg
    if replicas > 0:
        pane = quotas.tpu_quota(ctx.profile, cfg.project, cfg.region, replicas)
        if pane.enough is False:
            raise CloudError(
                "quota", f"Not enough TPU v6e quota to {what}: {pane.need} chips needed in {pane.region}, the "
                f"limit is {pane.on_demand.limit} (checked just now; nothing was created or changed).",
                f"Request {pane.request_text} ({pane.request_command}; {pane.console_url}), or lower the "
                "replicas.", quota=pane.to_dict())
    try:
        rep = projects.check_permissions(ctx.profile, cfg.project)
    except CloudError as e:
        log.info("permissions not checked before %s: %s", what, e.message)
        return
    missing = [m for m in rep.missing if m.name in BILLABLE_PERMISSIONS]
    if missing:
        roles = ", ".join(sorted({m.role for m in missing}))
        raise CloudError("permission", f"Missing permission(s) to {what}: "
                         + ", ".join(m.name for m in missing) + " (checked just now; nothing was created).",
                         f"Ask a project owner to grant you {roles} on {cfg.project}.")


def cluster_busy(message: str) -> bool:
    """GKE's 400 FAILED_PRECONDITION for a second operation while one runs on the cluster ("Operation
    operation-... is currently creating a node pool for cluster X. Please wait and try again once it is
    done."; older: "Cluster is running incompatible operation ...")."""
    text = message.lower()
    return "incompatible operation" in text or "please wait and try again" in text


def _send(send: Callable[[], OperationInfo], find: Callable[[], OperationInfo | None],
          stop: threading.Event | None, attempts: int = 4,
          busy: Callable[[], OperationInfo | None] | None = None, busy_timeout: float = 3600.0
          ) -> tuple[OperationInfo, bool]:
    """Send a create/resize/delete once, safely: when the answer is lost (5xx, rate limit, dropped
    connection) or says "already running", look for the operation before sending again, so a
    request that did go through is followed, never sent twice. When GKE refuses because another
    operation runs on the cluster (it runs one at a time) and `busy` names the running one, wait
    for it to finish (up to `busy_timeout` wall seconds), then send again. Returns (operation,
    reattached)."""
    delay = 0.5
    attempt = 0
    t0 = time.monotonic()
    while True:
        try:
            return send(), False
        except CloudError as e:
            waiting = (e.kind == "conflict" and cluster_busy(e.message) and busy is not None
                       and time.monotonic() - t0 < busy_timeout)
            if not waiting:
                attempt += 1
            if e.kind not in ("unavailable", "conflict") or attempt >= attempts:
                raise
            if stop is not None and stop.wait(delay):
                raise
            if stop is None:
                time.sleep(delay)
            delay = min(8.0, delay * 2)
            op = find()
            if op is not None:
                return op, True
            if e.kind == "conflict" and not cluster_busy(e.message) and "not ready" not in e.message:
                raise
            if waiting:
                log.info("GKE runs another operation on the cluster; waiting for it: %s", e.message)
                while busy() is not None and time.monotonic() - t0 < busy_timeout:
                    if stop is not None and stop.wait(delay):
                        raise
                    if stop is None:
                        time.sleep(delay)
                    delay = min(8.0, delay * 2)
                delay = 0.5
                continue
            log.info("retrying after a transient failure: %s", e.message)


def _pool_error(ctx: StepContext, pool: PoolInfo, *, options: bool = False) -> CloudError:
    """A TPU pool in ERROR: why (quota, stockout...) and what to do, including the wizard's own retry.
    `options`: for a stockout, check the ways out live (steps.stockout) and attach them."""
    cfg = ctx.cfg
    text = pool.status_message or "no reason given"
    kind = classify_text(text) or "unknown"
    retry = " Then run step 2 again and let it delete the failed pool and create it anew."
    if kind == "stockout" and options:
        try:
            diag = stockout.diagnose(ctx, None, None, error_text=text)
        except Exception:  # noqa: BLE001 - the options are a bonus; the stockout is named anyway
            log.exception("stockout diagnosis failed")
        else:
            return CloudError(kind, f"Node pool {TPU_POOL_NAME} is in ERROR: {text}",
                              _stockout_fix(cfg.zone, _alternatives(ctx)) + retry, failed_pool=True,
                              stockout=diag.to_dict())
    if kind == "stockout":
        fix = _stockout_fix(cfg.zone, _alternatives(ctx)) + retry
    elif kind == "quota":
        fix = fix_for("quota", ErrorContext(project=cfg.project, zone=cfg.zone, need_chips=cfg.chips_needed)) + retry
    else:
        fix = "Look at the node pool in the console." + retry
    return CloudError(kind, f"Node pool {TPU_POOL_NAME} is in ERROR: {text}", fix, failed_pool=True)


def _capacity_error(ctx: StepContext, diag: "stockout.Diagnosis") -> CloudError:
    """The instance groups named a stockout (or a quota error) while GKE's operation still runs."""
    cfg = ctx.cfg
    if diag.kind == "quota":
        fix = fix_for("quota", ErrorContext(project=cfg.project, zone=cfg.zone, need_chips=cfg.chips_needed))
        return CloudError("quota", diag.headline, fix, stockout=diag.to_dict(), operation=diag.operation)
    alts = tuple(z for z in _alternatives(ctx))
    return CloudError("stockout", diag.headline, _stockout_fix(cfg.zone, alts) + " " + stockout.fix_text(diag),
                      alternatives=alts, stockout=diag.to_dict(), operation=diag.operation)


def _detached(op: OperationInfo) -> CloudError:
    return CloudError("conflict", f"Stopped following {op.describe()}; it keeps running in Google Cloud.",
                      "Run step 2 again to reattach to it.", operation=op.name, detached=True)


def _stockout_fix(zone: str, alternatives: tuple[str, ...]) -> str:
    alts = ", ".join(alternatives) if alternatives else ", ".join(z for z in V6E_ZONES if z != zone)
    return (f"Zone {zone} has no free TPU v6e capacity right now (a stockout, not a quota problem). Retry later, "
            f"or choose another zone that offers v6e (--zone): {alts}.")


def _wait_cluster_running(ctx: StepContext, report: Callable[..., None], stop: threading.Event | None,
                          poll_min: float, poll_max: float, timeout: float | None) -> ClusterInfo:
    delay = poll_min
    t0 = time.monotonic()
    while True:
        info = ctx.cluster(refresh=True)
        if info is None:
            raise CloudError("not_found", f"Cluster {ctx.cfg.cluster} vanished.", "Run step 2 again to create it.")
        if info.status not in ("PROVISIONING", "RECONCILING"):
            return info
        report("create-cluster", f"Cluster is {info.status}...")
        if timeout is not None and time.monotonic() - t0 > timeout:
            raise CloudError("unavailable", f"Cluster {info.name} is still {info.status}.",
                             "It continues in Google Cloud; run step 2 again to follow it.")
        if stop is not None and stop.wait(delay):
            raise CloudError("conflict", "Stopped waiting for the cluster.", "Run step 2 again to continue.",
                             detached=True)
        if stop is None:
            time.sleep(delay)
        delay = min(poll_max, delay * 1.5)


def _wait_nodes(ctx: StepContext, want: int, report: Callable[..., None], stop: threading.Event | None,
                timeout: float, poll_min: float, poll_max: float) -> list[NodeRow]:
    delay = poll_min
    t0 = time.monotonic()
    rows: list[NodeRow] = []
    failures = 0
    while True:
        try:
            rows = tpu_nodes(ctx)
            failures = 0
        except CloudError as e:
            if e.kind in ("credentials", "permission"):
                raise
            failures += 1
            report("wait-nodes", f"Kubernetes API not reachable yet (attempt {failures}): {e.message}",
                   nodes_wanted=want)
            if failures == 3:
                ctx.invalidate()
        ready = sum(1 for r in _pool_rows(rows) if r.ready)
        report("wait-nodes", f"{ready} of {want} TPU v6e node(s) Ready.", nodes_ready=ready, nodes_wanted=want,
               nodes=rows)
        if ready >= want:
            return rows
        if time.monotonic() - t0 > timeout:
            raise CloudError("unavailable" if ready else "stockout",
                             f"Only {ready} of {want} TPU v6e node(s) became Ready in {int(timeout)} s.",
                             "The zone may be short of TPU capacity, or nodes are still booting: run step 2 again "
                             "to keep waiting, or look at the node pool in the console.",
                             nodes_ready=ready, nodes_wanted=want)
        if stop is not None:
            if stop.wait(delay):
                raise CloudError("conflict", "Stopped waiting for the TPU nodes.", "Run step 2 again to continue.",
                                 detached=True)
        else:
            time.sleep(delay)
        delay = min(poll_max, delay * 1.5)


# --- probe -----------------------------------------------------------------------------------------


def probe(ctx: StepContext) -> StepState:
    """Step 2's state from the live cluster."""
    cfg = ctx.cfg
    n = int(cfg.replicas)
    try:
        info = ctx.cluster(refresh=True)
        if info is None:
            op = ctx.gke.in_flight(cfg.cluster, {"CREATE_CLUSTER"})
            if op is not None:
                return StepState(Status.IN_PROGRESS, f"Cluster {cfg.cluster} is being created ({op.name}).",
                                 data={"operation": op.name})
            return StepState(Status.NOT_STARTED, f"Cluster {cfg.cluster} does not exist in {cfg.zone} yet.")
        data: dict[str, Any] = {"cluster_status": info.status, "endpoint": info.endpoint}
        if info.status in ("PROVISIONING", "RECONCILING"):
            pool = info.pool(TPU_POOL_NAME)
            named = _capacity_state(ctx, pool, data) if pool is not None and pool.status in (
                "PROVISIONING", "RECONCILING") else None
            return named or StepState(Status.IN_PROGRESS, f"Cluster {info.name} is {info.status}.", data=data)
        if info.status == "STOPPING":
            return StepState(Status.FAILED, f"Cluster {info.name} is being deleted.",
                             fix="Wait for the deletion to finish, then run step 2 to create it again.", data=data)
        if info.status in ("ERROR", "DEGRADED"):
            return StepState(Status.FAILED, f"Cluster {info.name} is {info.status}.", detail=info.status_message,
                             fix="Look at the cluster in the console; delete it and run step 2 again if it cannot recover.",
                             data=data)
        pool = info.pool(TPU_POOL_NAME)
        if pool is None:
            op = ctx.gke.in_flight(cfg.cluster, {"CREATE_NODE_POOL"}, pool=TPU_POOL_NAME)
            if op is not None:
                return StepState(Status.IN_PROGRESS, f"Creating node pool {TPU_POOL_NAME} ({op.name}).", data=data)
            return StepState(Status.IN_PROGRESS, f"Cluster {info.name} is RUNNING but has no {TPU_POOL_NAME} yet.",
                             fix="Run step 2 to create the TPU node pool.", data=data)
        data["pool_status"] = pool.status
        if pool.status == "ERROR":
            err = _pool_error(ctx, pool)
            return StepState(Status.FAILED, f"Node pool {TPU_POOL_NAME} is in ERROR ({err.kind}).",
                             detail=pool.status_message, fix=err.fix, data={**data, "error_kind": err.kind,
                                                                             "failed_pool": True})
        if pool.status in ("PROVISIONING", "RECONCILING"):
            return _capacity_state(ctx, pool, data) or StepState(
                Status.IN_PROGRESS, f"Node pool {TPU_POOL_NAME} is {pool.status}.", data=data)
        rows = tpu_nodes(ctx)
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    mine = _pool_rows(rows)
    ready = sum(1 for r in mine if r.ready)
    data.update(nodes=[r.to_dict() for r in rows], nodes_ready=ready, nodes_wanted=n)
    if ready >= n:
        extra = f" (the pool has {len(mine)}; {n} wanted)" if len(mine) > n else ""
        return StepState(Status.DONE, f"Cluster {info.name} RUNNING, {ready}/{n} TPU v6e nodes Ready{extra}.", data=data)
    fix = ""
    if len(mine) < n:
        fix = f"Run step 2 to resize {TPU_POOL_NAME} to {n} node(s) (or lower the replicas to {len(mine)})."
    return StepState(Status.IN_PROGRESS, f"{ready} of {n} TPU v6e nodes Ready.", fix=fix, data=data)


def _capacity_state(ctx: StepContext, pool: PoolInfo, data: dict[str, Any]) -> StepState | None:
    """Step 2 FAILED when the provisioning TPU pool's instance group already lists a stockout or a
    quota error (GKE's operation still runs), else None."""
    named = _capacity_probe(ctx)
    if named is None:
        return None
    fix = (f"Zone {ctx.cfg.zone} has no free TPU v6e capacity: run step 2 to see the options (another zone or "
           "region, Spot, flex-start, or keep waiting)." if named.kind == "stockout" else
           "The TPU quota is too low: run step 2 to see what to request.")
    return StepState(Status.FAILED, f"Node pool {TPU_POOL_NAME} is {pool.status}, but its instance group reports "
                     f"{', '.join(named.codes)} ({named.kind}).", fix=fix,
                     data={**data, "pool_status": pool.status, "error_kind": named.kind,
                           "codes": ", ".join(named.codes)})


def _capacity_probe(ctx: StepContext) -> Any:
    """Capacity errors the TPU pool's instance groups list since its running operation started (a
    stockout GKE would only report after ~35 min), or None. Two or three reads; never raises."""
    from ..cloud import compute

    op = compute.safe(lambda: ctx.gke.in_flight(ctx.cfg.cluster, {"CREATE_NODE_POOL", "SET_NODE_POOL_SIZE"},
                                                pool=TPU_POOL_NAME))
    if op is None:
        return None
    urls = compute.safe(lambda: compute.pool_instance_groups(ctx.gke, ctx.cfg.cluster, TPU_POOL_NAME), []) or []
    if not urls:
        return None
    reading = compute.safe(lambda: compute.capacity_errors(ctx.profile, urls, since=op.started_at))
    if reading is None or not reading.kind:
        return None
    # a MIG retries every minute: no error for 5 (guide) minutes means the capacity came back
    latest = max((e.at for e in reading.errors if e.at is not None), default=None)
    scale = float(getattr(ctx.profile, "time_scale", 1.0) or 1.0)
    if latest is not None and (time.time() - latest) * scale > 300:
        return None
    return reading


# --- an operation's progress, told by time against the guide ----------------------------------

TIME_CAP = 0.95
"""A bar that follows time stops here until the operation says DONE (never a false 100%)."""

_OP_WORK = {
    "CREATE_CLUSTER": "creating the control plane",
    "CREATE_NODE_POOL": "creating the TPU node pool",
    "SET_NODE_POOL_SIZE": "resizing the TPU node pool",
    "DELETE_CLUSTER": "deleting the cluster",
    "DELETE_NODE_POOL": "deleting the node pool",
}


def approx(seconds: float) -> str:
    """The guide's estimate as it says it: '~5 min', '~15 min', '~40s'."""
    s = int(seconds)
    return f"~{s}s" if s < 60 else f"~{round(s / 60)} min"


def op_fraction(elapsed: float | None, expected: float, reported: float | None = None,
                done: bool = False) -> float:
    """How full an operation's bar is: the guide seconds elapsed against the guide's estimate
    (GKE reports no progress while it creates a control plane), or what the operation reports
    when that is further; below `TIME_CAP` until the operation is DONE."""
    if done:
        return 1.0
    by_time = min(TIME_CAP, max(0.0, elapsed) / expected) if elapsed is not None and expected > 0 else 0.0
    if reported is None:
        return by_time
    return max(by_time, min(TIME_CAP, max(0.0, reported)))


def overdue_text(op_type: str, status: str, elapsed: float | None, expected: float) -> str:
    """When an operation runs past the guide's estimate: say so, and why nothing is wrong yet
    ('' while it is within the estimate, or when it is over)."""
    if elapsed is None or expected <= 0 or elapsed <= expected or status in ("DONE", ""):
        return ""
    work = _OP_WORK.get(op_type, "working on the operation")
    return (f"longer than the guide's {approx(expected)}: GKE is still {work} "
            f"(this happens; the operation is {status})")


def commands(ctx: StepContext) -> list[str]:
    return guide_step(2).commands(ctx.cfg)


__all__ = ["NodeRow", "ClusterPlan", "ClusterProgress", "ClusterResult", "plan", "ensure_cluster", "probe",
           "tpu_nodes", "commands", "TPU_SELECTOR", "op_fraction", "overdue_text", "TIME_CAP"]
