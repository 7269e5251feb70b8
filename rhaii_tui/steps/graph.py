"""The pieces of work of a deployment and what each waits for, declared once.

A `Piece` is one unit of work (a step, or part of one: step 2 is the cluster, then the TPU node
pool; step 5 is applying the LLMInferenceService, then its replicas becoming Ready). Its `needs`
are ids of live facts (`Fact`), read from the cloud each time they are asked: "the cluster's API
answers", "CRD llminferenceservices exists", "N TPU nodes Ready", "Deployment X exists".

The sequential apply (headless.run_apply) runs the steps in order and, before each, checks that its
pieces' needs hold (waiting a little for a fact the previous step just made true); the express run
(steps/express.py) starts each piece as soon as its needs hold, several at once. No ordering logic
lives in the screens: a timeline reads `PIECES`, `FACTS` and the run's events.

No Textual here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..cloud.gke import CloudError


@dataclass(frozen=True)
class Piece:
    id: str                   # e.g. "cluster", "tpu-pool", "operators", "namespace-secrets", ...
    title: str                # short, for a timeline row
    step: int                 # the guide step (page) it belongs to, 1..11
    needs: tuple[str, ...]    # ids of the live facts it waits for (see FACTS)
    billable: bool = False


@dataclass(frozen=True)
class Fact:
    id: str
    title: str                # "the cluster's Kubernetes API answers"
    by: str                   # the piece whose work makes it true (for the critical path)


PIECES: tuple[Piece, ...] = (
    Piece("preflight", "Preflight checks", 1, ()),
    Piece("cluster", "GKE cluster", 2, (), billable=True),
    Piece("tpu-pool", "TPU v6e node pool", 2, ("cluster-api",), billable=True),
    Piece("namespace-secrets", "Namespace and secrets", 3, ("cluster-api",)),
    Piece("operators", "Operators and gateway", 4, ("cluster-api", "step:3")),
    Piece("llmisvc", "LLMInferenceService", 5, ("namespace", "crd:llminferenceservices", "step:4")),
    Piece("replicas", "Replicas Ready", 5, ("llmisvc", "tpu-nodes-ready")),
    Piece("epp-sidecar", "EPP sidecar", 6, ("deployment:epp",)),
    Piece("envoyfilters", "EnvoyFilters", 7, ("crd:envoyfilters", "step:6")),
    Piece("netpol", "NetworkPolicies", 8, ("namespace", "step:5")),
    Piece("first-serve", "First completion via gateway", 9, ("replica-ready", "step:4", "step:6", "step:7")),
    Piece("verify", "Verify through the gateway", 9, ("step:5", "step:6", "step:7", "step:8")),
    Piece("performance", "Performance", 10, ("step:9",)),
    Piece("identity", "Model identity", 11, ("step:10",)),
)
BY_ID: dict[str, Piece] = {p.id: p for p in PIECES}

_STEP_LAST = {1: "preflight", 2: "tpu-pool", 3: "namespace-secrets", 4: "operators", 5: "replicas",
              6: "epp-sidecar", 7: "envoyfilters", 8: "netpol", 9: "verify", 10: "performance", 11: "identity"}

FACTS: dict[str, Fact] = {f.id: f for f in (
    Fact("cluster-api", "the cluster's Kubernetes API answers", "cluster"),
    Fact("namespace", "the namespace exists", "namespace-secrets"),
    Fact("crd:llminferenceservices", "CRD llminferenceservices exists", "operators"),
    Fact("crd:envoyfilters", "CRD envoyfilters exists", "operators"),
    Fact("tpu-nodes-ready", "one Ready TPU node per replica", "tpu-pool"),
    Fact("llmisvc", "the LLMInferenceService exists", "llmisvc"),
    Fact("replica-ready", "a vLLM replica is Ready", "tpu-pool"),
    Fact("health-route", "the health HTTPRoute exists", "replicas"),
    Fact("deployment:epp", "the EPP Deployment exists", "llmisvc"),
    *(Fact(f"step:{n}", f"step {n} is done", _STEP_LAST[n]) for n in range(1, 12)),
)}


def pieces_of(step: int) -> list[Piece]:
    return [p for p in PIECES if p.step == step]


def last_piece(step: int) -> str:
    """The piece that finishes a step (its end is the step's end)."""
    return _STEP_LAST[step]


def producers(piece: Piece) -> list[str]:
    """The pieces whose work makes this piece's needs true."""
    out = []
    for f in piece.needs:
        by = FACTS[f].by
        if by != piece.id and by not in out:
            out.append(by)
    return out


# --- reading the facts -----------------------------------------------------------------------------


def _crd(session: Any, name: str) -> bool:
    return session.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) is not None


def _step_done(ctx: Any, n: int) -> bool:
    from .registry import probe_step

    return probe_step(ctx, n).done


def holds(ctx: Any, fact: str) -> bool:
    """Whether a fact holds now, read live. A fact that cannot be read does not hold."""
    from .. import manifests as m
    from ..cloud.gke import CloudError as _CloudError

    if fact not in FACTS:
        raise KeyError(f"unknown fact {fact!r}")
    try:
        if fact.startswith("step:"):
            return _step_done(ctx, int(fact.split(":", 1)[1]))
        info = ctx.cluster(refresh=fact == "cluster-api")
        if info is None or not info.serving_api:
            return False
        if fact == "cluster-api":
            return True
        session = ctx.kube()
        cfg = ctx.cfg
        if fact == "namespace":
            return session.get("v1", "Namespace", cfg.namespace) is not None
        if fact == "crd:llminferenceservices":
            return _crd(session, "llminferenceservices.serving.kserve.io")
        if fact == "crd:envoyfilters":
            return _crd(session, "envoyfilters.networking.istio.io")
        if fact == "llmisvc":
            return session.get(m.LLMISVC_API_VERSION, "LLMInferenceService", cfg.service, cfg.namespace) is not None
        if fact == "deployment:epp":
            return session.get("apps/v1", "Deployment", m.epp_deployment_name(cfg.service), cfg.namespace) is not None
        if fact == "health-route":
            return session.get(m.HTTPROUTE_API_VERSION, "HTTPRoute", m.health_route_name(cfg.service),
                               cfg.namespace) is not None
        if fact == "replica-ready":
            from .verify import pod_ready

            pods = session.list("v1", "Pod", cfg.namespace,
                                label_selector=m.label_selector(m.workload_labels(cfg.service)))
            return any(pod_ready(p) for p in pods)
        if fact == "tpu-nodes-ready":
            from .cluster import tpu_nodes

            return sum(1 for r in tpu_nodes(ctx) if r.ready) >= int(cfg.replicas)
    except (_CloudError, OSError):
        return False
    raise KeyError(f"no reader for fact {fact!r}")  # pragma: no cover - every FACTS id is read above


def missing(ctx: Any, piece: Piece, cache: dict[str, bool] | None = None) -> list[str]:
    """The needs of `piece` that do not hold now (each fact read once per `cache`)."""
    out = []
    for f in piece.needs:
        if cache is not None and f in cache:
            ok = cache[f]
        else:
            ok = holds(ctx, f)
            if cache is not None:
                cache[f] = ok
        if not ok:
            out.append(f)
    return out


def wait_for_needs(ctx: Any, pieces: list[Piece], *, timeout: float, poll: float = 1.0,
                   stop: threading.Event | None = None,
                   on_wait: Callable[[str], None] | None = None) -> list[str]:
    """Wait (up to `timeout` wall seconds) until every need of `pieces` holds. Returns the facts that
    still do not hold (empty: go)."""
    deadline = time.monotonic() + timeout
    said = False
    while True:
        cache: dict[str, bool] = {}
        left = [f for p in pieces for f in missing(ctx, p, cache)]
        left = list(dict.fromkeys(left))
        if not left or time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            return left
        if on_wait is not None and not said:
            said = True
            on_wait("waiting for " + ", ".join(FACTS[f].title for f in left))
        if stop is not None:
            stop.wait(poll)
        else:
            time.sleep(poll)


__all__ = ["Piece", "Fact", "PIECES", "BY_ID", "FACTS", "pieces_of", "last_piece", "producers", "holds", "missing",
           "wait_for_needs", "CloudError"]
