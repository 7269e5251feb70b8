"""Step 7: the three EnvoyFilters for cache-aware routing, in the gateway namespace.

- `rendered(cfg)`: the three objects (mTLS to the EPP, the ext_proc cluster, body forwarding).
- `apply(ctx)`: server-side apply into `opendatahub` (idempotent).
- `filter_rows(filters, cfg, live_epp_services, live_routes)`: every EnvoyFilter present with its
  target (the Envoy cluster name, or the route names, in its config) and whether that target is
  this deployment's live EPP service `<svc>-epp-service` in the namespace. A filter that points at
  another name is the most common silent failure after a service is renamed: routing silently stops
  being cache-aware. Pure, so the screen can feed it from a watch.
- `probe(ctx)`: done when our three filters are present and all match the live EPP service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from .. import manifests as m
from ..cloud.gke import CloudError
from ..config import GATEWAY_NAMESPACE, DeployConfig
from ..guide import step as guide_step
from .base import Status, StepState
from .podlife import as_dict

API_VERSION = m.ENVOYFILTER_API_VERSION
KIND_LABELS = {"mtls": "mTLS to the EPP", "ext_proc": "ext_proc cluster", "body": "body forwarding",
               "other": "other"}
_CLUSTER_RE = re.compile(r"^outbound\|(\d+)\|[^|]*\|([^.]+)\.([^.]+)\.svc(?:\.cluster\.local)?$")
OK, MISMATCH, MISSING, FOREIGN = "ok", "mismatch", "missing", "other"


def rendered(cfg: DeployConfig) -> list[dict[str, Any]]:
    return m.envoyfilters(cfg)


def expected_cluster(cfg: DeployConfig) -> str:
    return m.epp_cluster_name(cfg.service, cfg.namespace)


def parse_cluster(name: str) -> tuple[int, str, str] | None:
    """'outbound|9002||svc.ns.svc.cluster.local' -> (9002, 'svc', 'ns')."""
    mt = _CLUSTER_RE.match(name or "")
    if not mt:
        return None
    return int(mt.group(1)), mt.group(2), mt.group(3)


def _walk(obj: Any, key: str) -> list[Any]:
    out = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if k == key:
                out.append(v)
            out.extend(_walk(v, key))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_walk(v, key))
    return out


def targets_of(ef: Mapping) -> tuple[str, list[str], list[str]]:
    """(kind, cluster names, route names) an EnvoyFilter's config refers to."""
    patches = ((ef.get("spec") or {}).get("configPatches") or [])
    applies = {p.get("applyTo") for p in patches}
    clusters: list[str] = []
    routes: list[str] = []
    for p in patches:
        match = p.get("match") or {}
        name = (match.get("cluster") or {}).get("name")
        if name:
            clusters.append(str(name))
        rname = (((match.get("routeConfiguration") or {}).get("vhost") or {}).get("route") or {}).get("name")
        if rname:
            routes.append(str(rname))
        clusters.extend(str(c) for c in _walk(p.get("patch") or {}, "cluster_name") if isinstance(c, str)
                        and c.startswith("outbound|"))
    text = str(patches)
    if "HTTP_FILTER" in applies and "ext_proc" in text:
        kind = "ext_proc"
    elif "CLUSTER" in applies and "transport_socket" in text:
        kind = "mtls"
    elif "HTTP_ROUTE" in applies and "ext_proc" in text:
        kind = "body"
    else:
        kind = "other"
    return kind, list(dict.fromkeys(clusters)), list(dict.fromkeys(routes))


@dataclass
class FilterRow:
    name: str
    kind: str  # mtls | ext_proc | body | other
    ours: bool  # one of the three this deployment applies
    present: bool
    targets: list[str] = field(default_factory=list)  # cluster names (mtls, ext_proc) or route names (body)
    expected: list[str] = field(default_factory=list)
    state: str = OK  # ok | mismatch | missing | other
    detail: str = ""

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "ours": self.ours, "present": self.present,
                "targets": list(self.targets), "expected": list(self.expected), "state": self.state,
                "detail": self.detail}


def filter_rows(filters: Iterable[Any], cfg: DeployConfig, *, live_epp_services: Sequence[str] | None = None,
                live_routes: Sequence[str] | None = None) -> list[FilterRow]:
    """Rows for our three filters (present or missing) and any other EnvoyFilter in the gateway
    namespace that patches the EPP path.

    `live_epp_services`: names of the EPP Services that exist in cfg.namespace (None: unknown, then
    only the name derived from the config is checked). `live_routes`: names of HTTPRoutes in the
    namespace (None: unknown)."""
    want_names = m.envoyfilter_names(cfg.service)
    kind_of_name = {v: k for k, v in want_names.items()}
    exp_cluster = expected_cluster(cfg)
    exp_routes = m.route_rule_names(cfg.service, cfg.namespace)
    our_service = m.epp_service_name(cfg.service)
    live_ok = live_epp_services is None or our_service in live_epp_services
    route_ok = live_routes is None or m.route_name(cfg.service) in live_routes
    by_name = {}
    for f in filters:
        f = as_dict(f)
        name = (f.get("metadata") or {}).get("name")
        if name:
            by_name[name] = f
    rows: list[FilterRow] = []
    for key, name in want_names.items():
        f = by_name.get(name)
        expected = exp_routes if key == "body" else [exp_cluster]
        if f is None:
            rows.append(FilterRow(name, key, True, False, [], expected, MISSING, "not applied"))
            continue
        kind, clusters, routes = targets_of(f)
        rows.append(_judge(FilterRow(name, key, True, True, routes if key == "body" else clusters, expected),
                           cfg, live_epp_services, live_ok, route_ok))
    for name, f in sorted(by_name.items()):
        if name in kind_of_name:
            continue
        kind, clusters, routes = targets_of(f)
        if kind == "other" and not clusters:
            continue  # not about the EPP path
        expected = exp_routes if kind == "body" else [exp_cluster]
        row = _judge(FilterRow(name, kind, False, True, routes if kind == "body" else clusters, expected),
                     cfg, live_epp_services, live_ok, route_ok)
        rows.append(row)
    return rows


def _judge(row: FilterRow, cfg: DeployConfig, live_services: Sequence[str] | None, live_ok: bool,
           route_ok: bool) -> FilterRow:
    if row.kind == "body":
        hits = [r for r in row.targets if r in row.expected]
        if not row.targets:
            row.state, row.detail = MISMATCH, "targets no route"
        elif not hits:
            row.state = MISMATCH if row.ours else FOREIGN
            row.detail = (f"targets routes {', '.join(row.targets)}; this deployment's are "
                          f"{', '.join(row.expected)}")
        elif not route_ok:
            row.state = MISMATCH
            row.detail = f"HTTPRoute {m.route_name(cfg.service)} does not exist in {cfg.namespace} (step 5)"
        else:
            row.state, row.detail = OK, f"targets {', '.join(hits)}"
        return row
    if not row.targets:
        if row.kind == "ext_proc":
            row.state, row.detail = MISMATCH, "sets no ext_proc cluster"
        else:
            row.state, row.detail = MISMATCH, "targets no cluster"
        return row
    exp = row.expected[0]
    wrong = [t for t in row.targets if t != exp]
    if wrong:
        parsed = parse_cluster(wrong[0])
        live_txt = ""
        if live_services:
            live_txt = f"; live EPP service(s) in {cfg.namespace}: {', '.join(live_services)}"
        if parsed:
            _, svc_name, ns = parsed
            row.detail = (f"targets {svc_name}.{ns} but the EPP service of {cfg.service} is "
                          f"{m.epp_service_name(cfg.service)}.{cfg.namespace}{live_txt}")
        else:
            row.detail = f"targets {wrong[0]}, expected {exp}{live_txt}"
        # a foreign ext_proc filter overrides the ext_proc cluster for every route: it breaks ours
        row.state = MISMATCH if (row.ours or row.kind == "ext_proc") else FOREIGN
        return row
    if not live_ok:
        row.state = MISMATCH
        row.detail = (f"targets {m.epp_service_name(cfg.service)}.{cfg.namespace}, which does not exist"
                      + (f" (live EPP service(s): {', '.join(live_services)})" if live_services else ""))
        return row
    row.state, row.detail = OK, f"targets {m.epp_service_name(cfg.service)}.{cfg.namespace}:{m.EPP_GRPC_PORT}"
    return row


def assess(cfg: DeployConfig, rows: list[FilterRow]) -> StepState:
    ours = [r for r in rows if r.ours]
    data = {"filters": [r.to_dict() for r in rows], "namespace": GATEWAY_NAMESPACE}
    present = [r for r in ours if r.present]
    bad = [r for r in rows if r.state == MISMATCH]
    if bad:
        r = bad[0]
        return StepState(
            Status.FAILED, f"EnvoyFilter {r.name} ({r.kind_label}) {r.detail}",
            detail="\n".join(f"{x.name}: {x.detail}" for x in bad),
            fix=("An EnvoyFilter that points at another EPP service makes routing silently lose cache "
                 "awareness. Re-apply step 7 (the filters rendered for this service), and delete filters "
                 f"left over from another service name: kubectl delete envoyfilter NAME -n {GATEWAY_NAMESPACE}."),
            data=data)
    if len(present) == len(ours):
        return StepState(Status.DONE, f"All {len(ours)} EnvoyFilters present in {GATEWAY_NAMESPACE}, targeting "
                                      f"{m.epp_service_name(cfg.service)}.", data=data)
    if not present:
        return StepState(Status.NOT_STARTED, f"No EnvoyFilters of {cfg.service} in {GATEWAY_NAMESPACE} yet.",
                         fix="Apply step 7.", data=data)
    missing = [r.name for r in ours if not r.present]
    return StepState(Status.IN_PROGRESS, f"{len(present)}/{len(ours)} EnvoyFilters present; missing "
                                         f"{', '.join(missing)}.", fix="Apply step 7.", data=data)


def _live_epp_services(session: Any, ns: str) -> list[str]:
    try:
        svcs = session.list("v1", "Service", ns)
    except CloudError as e:
        if e.kind == "not_found":
            return []
        raise
    return sorted((s.get("metadata") or {}).get("name", "") for s in svcs
                  if (s.get("metadata") or {}).get("name", "").endswith("-epp-service"))


def _live_routes(session: Any, ns: str) -> list[str] | None:
    try:
        return [(r.get("metadata") or {}).get("name", "") for r in
                session.list(m.HTTPROUTE_API_VERSION, "HTTPRoute", ns)]
    except CloudError:
        return None


def live_rows(ctx: Any) -> list[FilterRow]:
    """Rows from the live cluster. Raises CloudError."""
    cfg = ctx.cfg
    session = ctx.kube()
    try:
        filters = session.list(API_VERSION, "EnvoyFilter", GATEWAY_NAMESPACE)
    except CloudError as e:
        if e.kind != "not_found":
            raise
        filters = []
    return filter_rows(filters, cfg, live_epp_services=_live_epp_services(session, cfg.namespace),
                       live_routes=_live_routes(session, cfg.namespace))


def probe(ctx: Any) -> StepState:
    try:
        if ctx.kube_or_none() is None:
            return StepState(Status.NOT_STARTED, "The cluster is not ready yet (step 2).")
        rows = live_rows(ctx)
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    return assess(ctx.cfg, rows)


def apply(ctx: Any) -> list[str]:
    """Server-side apply of the three EnvoyFilters into the gateway namespace. Raises CloudError."""
    cfg = ctx.cfg
    session = ctx.kube()
    try:
        objs = rendered(cfg)
    except ValueError as e:
        raise CloudError("unknown", str(e), "Fix the configuration, then apply again.") from None
    out = []
    for obj in objs:
        session.apply(obj, GATEWAY_NAMESPACE)
        out.append(f"EnvoyFilter/{obj['metadata']['name']}")
    return out


def commands(ctx: Any) -> list[str]:
    return guide_step(7).commands(ctx.cfg)


def run(ctx: Any, on_line: Any = None, **_: Any) -> StepState:
    """Headless step 7: apply the three filters, then check them against the live EPP service."""
    say = on_line or (lambda _l: None)
    try:
        for what in apply(ctx):
            say(f"applied {what} in {GATEWAY_NAMESPACE} (server-side)")
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    st = probe(ctx)
    for r in st.data.get("filters", []):
        say(f"{r['name']}: {r['state']} - {r['detail']}")
    say(st.summary)
    return st


__all__ = ["run", "rendered", "apply", "probe", "assess", "filter_rows", "live_rows", "targets_of", "parse_cluster",
           "expected_cluster", "FilterRow", "commands"]
