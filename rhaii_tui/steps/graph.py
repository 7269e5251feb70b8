"""The pieces of work of a deployment and what each waits for, declared once.

A `Piece` is one unit of work (a step, or part of one: step 2 is the cluster and then the TPU node
pool). Its `needs` are ids of live facts (`Fact`), read from the cluster each time they are asked
("CRD llminferenceservices exists", "N TPU nodes Ready", "Deployment X exists"). The sequential
apply runs the pieces in step order; the express run (steps/express.py) starts each piece as soon
as its needs hold, several at once. No ordering logic lives in the screens.

No Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    id: str                   # e.g. "cluster", "tpu-pool", "operators", "namespace-secrets", ...
    title: str                # short, for a timeline row
    step: int                 # the guide step (page) it belongs to, 1..11
    needs: tuple[str, ...]    # ids of the live facts it waits for (see FACTS)
    billable: bool = False


PIECES: tuple[Piece, ...] = (
    Piece("preflight", "Preflight checks", 1, ()),
    Piece("cluster", "GKE cluster", 2, (), billable=True),
    Piece("tpu-pool", "TPU v6e node pool", 2, ("cluster-running",), billable=True),
    Piece("namespace-secrets", "Namespace and secrets", 3, ("cluster-running",)),
    Piece("operators", "Operators and gateway", 4, ("cluster-running",)),
    Piece("llmisvc", "LLMInferenceService", 5, ("namespace", "crd:llminferenceservices")),
    Piece("epp-sidecar", "EPP sidecar", 6, ("deployment:epp",)),
    Piece("envoyfilters", "EnvoyFilters", 7, ("crd:envoyfilters", "gateway-programmed")),
    Piece("netpol", "NetworkPolicies", 8, ("namespace",)),
    Piece("serving", "Replicas ready", 5, ("tpu-nodes-ready",)),
    Piece("verify", "Verify through the gateway", 9, ()),
)
