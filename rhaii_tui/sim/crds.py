"""The CustomResourceDefinitions the simulated operators install (step 4 of the guide).

Written for the emulator, not copied: each CRD carries the real group, versions (served/storage),
kind, plural, singular, shortNames, categories, scope, subresources and printer columns of the
upstream definition, and a permissive schema (`x-kubernetes-preserve-unknown-fields`). The
wizard validates its manifests against the upstream schemas in reference/crds; the emulator only
needs the types to exist (a kind is unknown, 404, until its CRD is created, as on a real cluster)
and `kubectl get` to print the right columns.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

_AGE = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}


def _col(name: str, path: str, type_: str = "string", priority: int | None = None) -> Obj:
    c: Obj = {"jsonPath": path, "name": name, "type": type_}
    if priority is not None:
        c["priority"] = priority
    return c


def _version(name: str, *, storage: bool, status: bool = True, scale: Obj | None = None,
             columns: list[Obj] | None = None, served: bool = True) -> Obj:
    v: Obj = {
        "name": name,
        "served": served,
        "storage": storage,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    subs: Obj = {}
    if status:
        subs["status"] = {}
    if scale:
        subs["scale"] = scale
    if subs:
        v["subresources"] = subs
    if columns:
        v["additionalPrinterColumns"] = columns
    return v


def crd(group: str, kind: str, plural: str, versions: list[Obj], *, scope: str = "Namespaced",
        short_names: tuple[str, ...] = (), categories: tuple[str, ...] = (),
        labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> Obj:
    names: Obj = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}
    if short_names:
        names["shortNames"] = list(short_names)
    if categories:
        names["categories"] = list(categories)
    md: Obj = {"name": f"{plural}.{group}"}
    if labels:
        md["labels"] = dict(labels)
    if annotations:
        md["annotations"] = dict(annotations)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": md,
        "spec": {"group": group, "names": names, "scope": scope, "versions": versions},
    }


# --- Gateway API (v1.4) ------------------------------------------------------------------------

_GW_BUNDLE = {"gateway.networking.k8s.io/bundle-version": "v1.4.0", "gateway.networking.k8s.io/channel": "standard"}


def _gateway_api() -> list[Obj]:
    gc_cols = [_col("Controller", ".spec.controllerName"),
               _col("Accepted", '.status.conditions[?(@.type=="Accepted")].status'), _AGE,
               _col("Description", ".spec.description", priority=1)]
    gw_cols = [_col("Class", ".spec.gatewayClassName"), _col("Address", ".status.addresses[*].value"),
               _col("Programmed", '.status.conditions[?(@.type=="Programmed")].status'), _AGE]
    rt_cols = [_col("Hostnames", ".spec.hostnames"), _AGE]
    out = []
    for kind, plural, short, scope, cols in (
        ("GatewayClass", "gatewayclasses", ("gc",), "Cluster", gc_cols),
        ("Gateway", "gateways", ("gtw",), "Namespaced", gw_cols),
        ("HTTPRoute", "httproutes", (), "Namespaced", rt_cols),
    ):
        out.append(crd("gateway.networking.k8s.io", kind, plural,
                       [_version("v1", storage=True, columns=cols),
                        _version("v1beta1", storage=False, columns=cols)],
                       scope=scope, short_names=short, categories=("gateway-api",), annotations=_GW_BUNDLE))
    out.append(crd("gateway.networking.k8s.io", "GRPCRoute", "grpcroutes",
                   [_version("v1", storage=True, columns=rt_cols)], categories=("gateway-api",),
                   annotations=_GW_BUNDLE))
    out.append(crd("gateway.networking.k8s.io", "ReferenceGrant", "referencegrants",
                   [_version("v1beta1", storage=True, status=False, columns=[_AGE])], short_names=("refgrant",),
                   categories=("gateway-api",), annotations=_GW_BUNDLE))
    return out


# --- Gateway API Inference Extension (InferencePool in both groups) ------------------------------


def _inference_extension() -> list[Obj]:
    return [
        crd("inference.networking.k8s.io", "InferencePool", "inferencepools",
            [_version("v1", storage=True)], short_names=("infpool",),
            annotations={"inference.networking.k8s.io/bundle-version": "v1.2.0"}),
        crd("inference.networking.x-k8s.io", "InferencePool", "inferencepools",
            [_version("v1alpha2", storage=True)], short_names=("xinfpool",),
            annotations={"inference.networking.x-k8s.io/bundle-version": "v1.2.0"}),
        crd("inference.networking.x-k8s.io", "InferenceObjective", "inferenceobjectives",
            [_version("v1alpha2", storage=True, columns=[
                _col("Inference Pool", ".spec.poolRef.name"), _col("Priority", ".spec.priority"), _AGE])]),
        crd("inference.networking.x-k8s.io", "InferenceModel", "inferencemodels",
            [_version("v1alpha2", storage=True, columns=[
                _col("Model Name", ".spec.modelName"), _col("Inference Pool", ".spec.poolRef.name"),
                _col("Criticality", ".spec.criticality"), _AGE])]),
    ]


# --- KServe ------------------------------------------------------------------------------------


def _kserve() -> list[Obj]:
    cols = [_col("URL", ".status.url"),
            _col("Ready", ".status.conditions[?(@.type=='Ready')].status"),
            _col("Reason", ".status.conditions[?(@.type=='Ready')].reason"), _AGE,
            _col("URLs", ".status.addresses[*].url", priority=1)]
    return [
        crd("serving.kserve.io", "LLMInferenceService", "llminferenceservices",
            [_version("v1alpha1", storage=False, columns=cols), _version("v1alpha2", storage=True, columns=cols)],
            short_names=("llmisvc",)),
        crd("serving.kserve.io", "LLMInferenceServiceConfig", "llminferenceserviceconfigs",
            [_version("v1alpha1", storage=False, status=False), _version("v1alpha2", storage=True, status=False)]),
    ]


# --- Istio -------------------------------------------------------------------------------------

_ISTIO_LABELS = {"app": "istio-pilot", "chart": "istio", "heritage": "Tiller", "release": "istio"}


def _istio() -> list[Obj]:
    cats = ("istio-io", "networking-istio-io")
    dr_cols = [_col("Host", ".spec.host", "string"), _AGE]
    vs_cols = [_col("Gateways", ".spec.gateways"), _col("Hosts", ".spec.hosts"), _AGE]
    return [
        crd("networking.istio.io", "EnvoyFilter", "envoyfilters",
            [_version("v1alpha3", storage=True)], categories=cats, labels=_ISTIO_LABELS),
        crd("networking.istio.io", "DestinationRule", "destinationrules",
            [_version("v1", storage=False, columns=dr_cols), _version("v1alpha3", storage=True, columns=dr_cols),
             _version("v1beta1", storage=False, columns=dr_cols)],
            short_names=("dr",), categories=cats, labels=_ISTIO_LABELS),
        crd("networking.istio.io", "VirtualService", "virtualservices",
            [_version("v1", storage=False, columns=vs_cols), _version("v1alpha3", storage=True, columns=vs_cols),
             _version("v1beta1", storage=False, columns=vs_cols)],
            short_names=("vs",), categories=cats, labels=_ISTIO_LABELS),
        crd("security.istio.io", "PeerAuthentication", "peerauthentications",
            [_version("v1", storage=False), _version("v1beta1", storage=True)],
            short_names=("pa",), categories=("istio-io", "security-istio-io"), labels=_ISTIO_LABELS),
        crd("sailoperator.io", "Istio", "istios",
            [_version("v1", storage=True, columns=[
                _col("Namespace", ".spec.namespace"), _col("Profile", ".spec.profile"),
                _col("Revisions", ".status.revisions.total", "integer"),
                _col("Ready", ".status.revisions.ready", "integer"),
                _col("In use", ".status.revisions.inUse", "integer"),
                _col("Active Revision", ".status.activeRevisionName"),
                _col("Status", '.status.conditions[?(@.type=="Ready")].reason'),
                _col("Version", ".spec.version"), _AGE])],
            scope="Cluster", categories=("istio-io",)),
    ]


# --- cert-manager ------------------------------------------------------------------------------


def _cert_manager() -> list[Obj]:
    ready = _col("Ready", '.status.conditions[?(@.type=="Ready")].status')
    return [
        crd("cert-manager.io", "Certificate", "certificates",
            [_version("v1", storage=True, columns=[ready, _col("Secret", ".spec.secretName"), _AGE])],
            short_names=("cert", "certs"), categories=("cert-manager",)),
        crd("cert-manager.io", "Issuer", "issuers",
            [_version("v1", storage=True, columns=[ready, _AGE])], categories=("cert-manager",)),
        crd("cert-manager.io", "ClusterIssuer", "clusterissuers",
            [_version("v1", storage=True, columns=[ready, _AGE])], scope="Cluster", categories=("cert-manager",)),
        crd("cert-manager.io", "CertificateRequest", "certificaterequests",
            [_version("v1", storage=True, columns=[_col("Approved", '.status.conditions[?(@.type=="Approved")].status'),
                                                   ready, _AGE])],
            short_names=("cr", "crs"), categories=("cert-manager",)),
    ]


# --- LeaderWorkerSet ---------------------------------------------------------------------------


def _lws() -> list[Obj]:
    return [crd("leaderworkerset.x-k8s.io", "LeaderWorkerSet", "leaderworkersets",
                [_version("v1", storage=True, scale={
                    "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.hpaPodSelector"}, columns=[
                    _col("Ready", ".status.readyReplicas", "integer"),
                    _col("Desired", ".spec.replicas", "integer"),
                    _col("Up-to-date", ".status.updatedReplicas", "integer"), _AGE])],
                short_names=("lws",))]


# --- bundles, in the order the installer applies them ------------------------------------------

BUNDLES: dict[str, Any] = {
    "cert-manager": _cert_manager,
    "gateway-api": _gateway_api,
    "istio": _istio,
    "lws": _lws,
    "inference-extension": _inference_extension,
    "kserve": _kserve,
}


def bundle(name: str) -> list[Obj]:
    """The CRDs of one operator (deep copies, ready for `store.create`)."""
    return [copy.deepcopy(c) for c in BUNDLES[name]()]


def all_crds() -> list[Obj]:
    return [c for name in BUNDLES for c in bundle(name)]


# The CRDs the guide's step 4 checks (GUIDE_FACTS: operator checks).
REQUIRED_CRD_NAMES: tuple[str, ...] = (
    "llminferenceservices.serving.kserve.io",
    "llminferenceserviceconfigs.serving.kserve.io",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "gatewayclasses.gateway.networking.k8s.io",
    "inferencepools.inference.networking.k8s.io",
    "inferencepools.inference.networking.x-k8s.io",
    "envoyfilters.networking.istio.io",
    "leaderworkersets.leaderworkerset.x-k8s.io",
)
