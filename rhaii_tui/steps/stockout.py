"""Step 2: name a TPU stockout within minutes instead of GKE's ~35, and say what the user can do.

A node-pool create in a zone without TPU v6e capacity stays RUNNING for about 35 minutes before
GKE fails it. The pool's managed instance groups (its `instanceGroupUrls`) list each failed
instance creation (`instanceGroupManagers.listErrors`) within a minute or two of the first attempt.
While step 2 follows the pool's operation, `CapacityWatch` reads those errors every ~30 simulated
seconds (a couple of GET requests; nothing is created) and stops the follow as soon as it sees
ZONE_RESOURCE_POOL_EXHAUSTED (or QUOTA_EXCEEDED). `diagnose()` then checks the ways out live
(zones offering v6e, TPU quota per region, Spot quota, flex-start support in the client library)
and what is already running and billing, with costs per day.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..cloud import compute, quotas, services
from ..cloud.gke import OperationInfo
from ..config import (
    CLUSTER_OVERHEAD_PER_DAY,
    DEFAULT_POOL_MACHINE_TYPE,
    TPU_MACHINE_TYPE,
    TPU_POOL_NAME,
    V6E_ZONES,
    region_of,
)

log = logging.getLogger(__name__)

CHECK_EVERY_SIM_SECONDS = 30.0  # how often the instance groups' errors are read (guide seconds)
GKE_GIVES_UP_SECONDS = 35 * 60  # when GKE fails a stocked-out node-pool operation by itself


def _fmt_minutes(seconds: float) -> str:
    seconds = max(0.0, seconds)
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def flex_start_supported() -> bool:
    """Does the installed google-cloud-container know NodeConfig.flex_start (2.67 and later)?"""
    try:
        from google.cloud import container_v1

        return "flex_start" in container_v1.NodeConfig.meta.fields
    except Exception:  # noqa: BLE001
        return False


# --- the watch ------------------------------------------------------------------------------------


class CapacityWatch:
    """Reads the pool's instance-group errors in the background while an operation is followed.

    `stop_event` is what the follow waits on: it is set when the outer `stop` is set, or when a
    capacity error is seen (unless `keep_waiting`). `reading` holds what was seen, `named_at`
    when (epoch seconds)."""

    def __init__(self, ctx: Any, op: OperationInfo, *, pool: str = TPU_POOL_NAME,
                 stop: threading.Event | None = None, keep_waiting: bool = False,
                 on_found: Callable[["compute.CapacityReading"], None] | None = None,
                 every_sim_seconds: float = CHECK_EVERY_SIM_SECONDS) -> None:
        self.ctx = ctx
        self.op = op
        self.pool = pool
        self.outer = stop
        self.keep_waiting = keep_waiting
        self.on_found = on_found
        scale = float(getattr(ctx.profile, "time_scale", 1.0) or 1.0)
        self.interval = max(0.02, every_sim_seconds / scale)  # wall seconds between reads
        self.since = op.started_at or time.time()
        self.stop_event = threading.Event()
        self.reading: compute.CapacityReading | None = None
        self.named_at: float | None = None
        self.checks = 0
        self._urls: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rhaii-capacity-watch", daemon=True)

    def __enter__(self) -> "CapacityWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5)

    @property
    def found(self) -> bool:
        return self.reading is not None

    def check_once(self) -> compute.CapacityReading | None:
        """One read of the pool's instance groups; the reading when they list a capacity error."""
        self.checks += 1
        if not self._urls:
            self._urls = compute.safe(lambda: compute.pool_instance_groups(self.ctx.gke, self.ctx.cfg.cluster,
                                                                           self.pool), []) or []
            if not self._urls:
                return None
        reading = compute.safe(lambda: compute.capacity_errors(self.ctx.profile, self._urls, since=self.since))
        if reading is not None and reading.kind:
            return reading
        return None

    def _run(self) -> None:
        next_check = time.monotonic()
        tick = min(self.interval, 0.1)
        while not self._closed.is_set():
            if self.outer is not None and self.outer.is_set():
                self.stop_event.set()
                return
            if time.monotonic() >= next_check and self.reading is None:
                reading = self.check_once()
                next_check = time.monotonic() + self.interval
                if reading is not None:
                    self.reading = reading
                    self.named_at = time.time()
                    if self.on_found is not None:
                        try:
                            self.on_found(reading)
                        except Exception:  # noqa: BLE001
                            log.exception("capacity watch callback failed")
                    if not self.keep_waiting:
                        self.stop_event.set()
                        return
            self._closed.wait(tick)


# --- the diagnosis --------------------------------------------------------------------------------


@dataclass
class Option:
    key: str  # "wait" | "zone" | "region" | "spot" | "flex-start" | "reservation"
    title: str
    detail: str
    commands: list[str] = field(default_factory=list)
    available: bool = True
    cost_per_day: float | None = None
    quota: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Diagnosis:
    kind: str  # "stockout" | "quota"
    zone: str
    region: str
    cluster: str
    pool: str
    operation: str
    headline: str
    codes: list[str]
    instances: list[str]
    first_error_at: float | None
    named_at: float | None
    op_started_at: float | None
    billing: dict[str, Any]
    options: list[Option]
    groups: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds_to_name(self) -> float | None:
        """Wall seconds from the first failed instance creation to the wizard naming it."""
        if self.first_error_at is None or self.named_at is None:
            return None
        return max(0.0, self.named_at - self.first_error_at)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "zone": self.zone, "region": self.region, "cluster": self.cluster,
                "pool": self.pool, "operation": self.operation, "headline": self.headline, "codes": self.codes,
                "instances": self.instances, "first_error_at": self.first_error_at, "named_at": self.named_at,
                "op_started_at": self.op_started_at, "billing": self.billing, "groups": self.groups,
                "options": [o.to_dict() for o in self.options], "lines": self.lines()}

    def lines(self) -> list[str]:
        """The diagnosis as plain lines (headless output, the TUI's panel)."""
        out = [self.headline, f"Already running and billing: {self.billing['text']}", "Options:"]
        for i, o in enumerate(self.options, 1):
            cost = f" [~${o.cost_per_day:,.2f}/day]" if o.cost_per_day is not None else ""
            mark = "" if o.available else " (not available)"
            out.append(f"  {i}. {o.title}{mark}{cost}: {o.detail}")
            out.extend(f"       $ {c}" for c in o.commands)
        return out


def _quota_dict(reading: quotas.QuotaReading, need: int) -> dict[str, Any]:
    return {"quota_id": reading.quota_id, "region": reading.region, "limit": reading.limit,
            "unlimited": reading.unlimited, "need": need, "enough": reading.covers(need),
            "warning": reading.warning}


def _quota_text(q: dict[str, Any]) -> str:
    if q["unlimited"]:
        return f"quota in {q['region']}: unlimited"
    if q["limit"] is None:
        return f"quota in {q['region']}: unknown ({q['warning']})"
    verdict = "enough" if q["enough"] else "NOT enough"
    return f"quota in {q['region']}: {q['limit']} chips, {q['need']} needed ({verdict})"


def billing_summary(cfg: Any, tpu_running: int) -> dict[str, Any]:
    """What still runs and bills after a failure (the cluster with its default pool, `tpu_running`
    TPU nodes), what it costs per day, and how to stop it: `text` says all three, `stop` only how."""
    zone = cfg.zone
    default_day = CLUSTER_OVERHEAD_PER_DAY
    tpu_day = round(tpu_running * float(cfg.price_per_node_hour) * 24, 2)
    billing = {"cluster": cfg.cluster, "zone": zone, "default_pool_per_day": default_day, "tpu_nodes": tpu_running,
               "tpu_per_day": tpu_day, "per_day": round(default_day + tpu_day, 2)}
    billing["stop"] = ("To stop paying: rhaii-tui ops scale-to-zero --yes (TPU nodes to 0, the cluster stays: "
                       f"~${default_day:,.2f}/day) or rhaii-tui ops teardown --cluster --yes (deletes the "
                       "cluster: $0/day).")
    billing["text"] = (f"cluster {cfg.cluster} with its default pool ({DEFAULT_POOL_MACHINE_TYPE}) "
                       f"~${default_day:,.2f}/day"
                       + (f" + {tpu_running} TPU v6e node(s) ~${tpu_day:,.2f}/day" if tpu_running else
                          "; no TPU node is running (failed creations are not billed)")
                       + f" = ~${billing['per_day']:,.2f}/day until you delete it "
                       f"(gcloud container clusters delete {cfg.cluster} --zone {zone} --project {cfg.project}). "
                       + billing["stop"])
    return billing


def diagnose(ctx: Any, reading: compute.CapacityReading | None, op: OperationInfo | None, *,
             named_at: float | None = None, error_text: str = "") -> Diagnosis:
    """Name the stockout (or quota error) and check the ways out live. Reads only; never raises for
    a read that fails (that option then says it could not be checked)."""
    cfg = ctx.cfg
    profile = ctx.profile
    n = int(cfg.replicas)
    need = 4 * n
    zone = cfg.zone
    region = region_of(zone)
    kind = (reading.kind if reading is not None else None) or "stockout"
    price_day = float(cfg.price_per_node_hour) * 24
    new_pool_cost = round(n * price_day, 2)
    time_scale = float(getattr(profile, "time_scale", 1.0) or 1.0)

    # what the instance groups say now
    groups: list[compute.MigStatus] = []
    for url in (reading.groups if reading is not None else []):
        g = compute.safe(lambda url=url: compute.get_group(profile, url))
        if g is not None:
            groups.append(g)
    tpu_running = sum(g.running for g in groups)
    wanted = sum(g.target_size for g in groups) or n
    failing = reading.instances if reading is not None else []

    # headline
    codes = reading.codes if reading is not None else []
    started = op.started_at if op is not None else None
    first = reading.first_at if reading is not None else None
    when = ""
    if first is not None:
        when = f", first at {time.strftime('%H:%M:%S', time.gmtime(first))} UTC"
        if started is not None:
            when += f" ({_fmt_minutes((first - started) * time_scale)} after the pool create started)"
    if kind == "quota":
        headline = (f"Quota exceeded in {region}: the TPU pool's instance group could not create "
                    f"{len(failing) or wanted - tpu_running} instance(s) ({', '.join(codes) or 'QUOTA_EXCEEDED'}{when}).")
    elif reading is not None:
        headline = (f"Stockout: zone {zone} has no free TPU v6e capacity ({', '.join(codes)}). The pool's "
                    f"instance group failed to create {len(failing)} of {wanted} instance(s){when}; "
                    f"{tpu_running} running.")
        if op is not None and not op.done:
            headline += (f" GKE's operation {op.name} is still RUNNING and would only fail after about "
                         f"{GKE_GIVES_UP_SECONDS // 60} min.")
    else:
        headline = (f"Stockout: zone {zone} has no free TPU v6e capacity"
                    + (f" ({' '.join(error_text.split())[:200]})" if error_text else "") + ".")

    # what is running and billing now
    billing = billing_summary(cfg, tpu_running)
    default_day = billing["default_pool_per_day"]
    tpu_day = billing["tpu_per_day"]

    # live facts for the options
    disc = services.v6e_zones(profile, cfg.project)
    zones = [z for z in (disc.zones or list(V6E_ZONES)) if z != zone]
    same_region = [z for z in zones if region_of(z) == region]
    other_regions: dict[str, list[str]] = {}
    for z in zones:
        if region_of(z) != region:
            other_regions.setdefault(region_of(z), []).append(z)
    pane = quotas.tpu_quota(profile, cfg.project, region, n)
    here_q = _quota_dict(pane.on_demand, need)
    spot_q = _quota_dict(pane.spot, need)
    region_q: dict[str, dict[str, Any]] = {}
    for r in list(other_regions)[:8]:
        region_q[r] = _quota_dict(quotas.read_quota(profile, cfg.project, quotas.TPU_QUOTA_ID, r,
                                                    {"tpu_family": quotas.TPU_FAMILY}), need)

    base = f"--cluster {cfg.cluster} --zone {zone} --project {cfg.project}"
    delete_pool = f"gcloud container node-pools delete {TPU_POOL_NAME} {base} --quiet"
    pool_create = (f"gcloud container node-pools create {TPU_POOL_NAME} {base} --machine-type {TPU_MACHINE_TYPE} "
                   f"--num-nodes {n}")
    options: list[Option] = []

    # 1. wait
    if op is not None and not op.done and started is not None:
        left = max(0.0, GKE_GIVES_UP_SECONDS - (time.time() - started) * time_scale)
        wait_detail = (f"GKE keeps retrying; capacity may free up. Its operation fails by itself in about "
                       f"{_fmt_minutes(left)} if not. Costs nothing more than what runs now.")
        wait_cmd = "rhaii-tui apply --yes --keep-waiting"
    else:
        wait_detail = ("Capacity may free up later: run step 2 again then (it deletes the failed pool and creates "
                       "it again). Costs nothing more than what runs now.")
        wait_cmd = "rhaii-tui apply --yes --replace-failed-pool"
    options.append(Option("wait", "Keep waiting in " + zone, wait_detail, [wait_cmd],
                          cost_per_day=billing["per_day"], quota=here_q))
    # 2. another zone of this region (node-pool locations)
    if same_region:
        z2 = same_region[0]
        options.append(Option(
            "zone", f"Another zone of {region}: {', '.join(same_region)}",
            f"Put the TPU pool's nodes in {z2} (node-pool locations); the cluster stays. Delete the stuck pool "
            f"first. Same regional quota: {_quota_text(here_q)}.",
            [delete_pool, f"{pool_create} --node-locations {z2}"], available=bool(here_q["enough"] is not False),
            cost_per_day=round(billing["per_day"] - tpu_day + new_pool_cost, 2), quota=here_q))
    else:
        options.append(Option("zone", f"Another zone of {region}",
                              f"No other zone of {region} offers TPU v6e"
                              + (" (live list)." if disc.live else " (known list)."), available=False))
    # 3. another region: a new cluster
    if other_regions:
        ranked = sorted(other_regions, key=lambda r: (region_q.get(r, {}).get("enough") is False, r))
        picks = []
        for r in ranked:
            q = region_q.get(r)
            picks.append(f"{other_regions[r][0]} ({_quota_text(q) if q else 'quota not checked'})")
        best = other_regions[ranked[0]][0]
        options.append(Option(
            "region", "Another region (a new cluster)",
            "Create the cluster and the TPU pool in another zone that offers v6e: " + "; ".join(picks)
            + f". Delete {cfg.cluster} here first (the wizard keeps one cluster of that name; it stops its "
            f"~${default_day:,.2f}/day), then run the wizard with the new zone.",
            [f"gcloud container clusters delete {cfg.cluster} --zone {zone} --project {cfg.project} --quiet",
             f"rhaii-tui --zone {best} apply --yes"],
            available=any(q.get("enough") is not False for q in region_q.values()) or not region_q,
            cost_per_day=round(CLUSTER_OVERHEAD_PER_DAY + new_pool_cost, 2),
            quota=region_q.get(ranked[0])))
    # 4. Spot
    options.append(Option(
        "spot", f"Spot TPU v6e in {zone}",
        f"Spot capacity is a separate pool and is billed at the lower Spot price (at most the on-demand "
        f"~${new_pool_cost:,.2f}/day for {n} node(s)); Spot nodes can be preempted at any time. "
        f"Spot {_quota_text(spot_q)}.",
        [delete_pool, f"{pool_create} --spot"], available=spot_q["enough"] is not False,
        cost_per_day=round(billing["per_day"] - tpu_day + new_pool_cost, 2), quota=spot_q))
    # 5. flex-start
    if flex_start_supported():
        options.append(Option(
            "flex-start", f"Flex-start in {zone}",
            "GKE queues the request and creates the nodes when capacity frees up (Dynamic Workload Scheduler; "
            "nodes live up to 7 days; billed at the flex-start price while they run).",
            [delete_pool, f"gcloud container node-pools create {TPU_POOL_NAME} {base} --machine-type "
             f"{TPU_MACHINE_TYPE} --flex-start --enable-autoscaling --num-nodes 0 --total-min-nodes 0 "
             f"--total-max-nodes {n} --location-policy ANY --reservation-affinity none --no-enable-autorepair"],
            cost_per_day=round(billing["per_day"] - tpu_day + new_pool_cost, 2), quota=here_q))
    else:
        options.append(Option("flex-start", "Flex-start",
                              "The installed google-cloud-container has no NodeConfig.flex_start (needs 2.67 or "
                              "later); gcloud can still create a flex-start pool.", available=False))
    # 6. a reservation
    options.append(Option(
        "reservation", "A TPU v6e reservation",
        "If your project has a reservation for ct6e-standard-4t, create the pool on it.",
        [f"{pool_create} --reservation-affinity specific --reservation RESERVATION_NAME"]))

    return Diagnosis(kind=kind, zone=zone, region=region, cluster=cfg.cluster, pool=TPU_POOL_NAME,
                     operation=op.name if op is not None else "", headline=headline, codes=codes,
                     instances=failing, first_error_at=first, named_at=named_at, op_started_at=started,
                     billing=billing, options=options, groups=[g.to_dict() for g in groups])


def fix_text(d: Diagnosis) -> str:
    """A one-paragraph fix naming the options (CloudError.fix)."""
    avail = [o for o in d.options if o.available]
    names = "; ".join(f"{o.title}" + (f" (~${o.cost_per_day:,.2f}/day)" if o.cost_per_day is not None else "")
                      for o in avail)
    return (f"Options: {names}. Running now: ~${d.billing['per_day']:,.2f}/day. The commands for each option "
            "are listed with the diagnosis. " + (d.billing.get("stop") or ""))


__all__ = ["CapacityWatch", "Diagnosis", "Option", "billing_summary", "diagnose", "fix_text", "flex_start_supported",
           "CHECK_EVERY_SIM_SECONDS", "GKE_GIVES_UP_SECONDS"]
