"""Why is this pod stuck? The guide's stuck-pod causes, decided from live evidence.

`diagnose_pod(pod, events, logs, nodes, cfg)` looks at one workload pod (as the API returns it), the
events about it, the last lines of its containers' logs and the cluster's nodes, and returns a
`Diagnosis` (title, evidence, fix, commands) or None when nothing is wrong yet:

- Pending + FailedScheduling/Unschedulable: no TPU node, too few TPU nodes for the replicas, a taint
  the pod does not tolerate, nodes not ready, all chips taken, a node selector nothing matches; with
  the node count and the exact resize command.
- Init:CrashLoopBackOff / Init:Error: 401/403 in the storage-initializer log -> the Hugging Face
  token (how to fix the secret); network errors -> egress; 404 -> the model URI.
- ErrImagePull / ImagePullBackOff -> the registry pull secret (or a wrong image reference).
- Running 0/1 past the guide's 3-5 min -> still compiling (with the last log lines), or vLLM errors.
- CrashLoopBackOff of vLLM, pods stuck Terminating.

Pure functions: no I/O. Secrets never appear in the texts (commands use $HF_TOKEN-style variables).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..config import DEFAULT_PRICE_PER_NODE_HOUR
from .podlife import (INIT_CONTAINER, MAIN_CONTAINER, EXPECTED, MilestoneTracker, PodLife, Stage,
                      classify, fmt_duration, to_epoch)

TPU_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_VALUE = "tpu-v6e-slice"
POOL_LABEL = "cloud.google.com/gke-nodepool"
TPU_RESOURCE = "google.com/tpu"
WORKLOAD_SELECTOR = "kserve.io/component=workload"


@dataclass(frozen=True)
class Diagnosis:
    """A cause, the evidence that shows it, what to do and the exact commands."""

    cause: str  # stable key: no-tpu-node, too-few-nodes, taint, nodes-not-ready, tpu-in-use,
    #             node-selector, unschedulable, pending-slow, hf-token, egress, model-not-found,
    #             init-failed, pull-secret, image-not-found, compiling, vllm-error, liveness-kill,
    #             vllm-crash, stuck-terminating, pod-failed
    title: str
    evidence: tuple[str, ...] = ()
    fix: str = ""
    commands: tuple[str, ...] = ()
    severity: str = "error"  # error | warning | info
    pod: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"cause": self.cause, "title": self.title, "evidence": list(self.evidence),
                "fix": self.fix, "commands": list(self.commands), "severity": self.severity,
                "pod": self.pod}

    def text(self) -> str:
        """Plain text for reports and headless output."""
        out = [self.title]
        out += [f"  - {e}" for e in self.evidence]
        if self.fix:
            out.append(f"Fix: {self.fix}")
        out += [f"  $ {c}" for c in self.commands]
        return "\n".join(out)


# --- helpers -------------------------------------------------------------------------------------


@dataclass
class _Target:
    project: str = "PROJECT_ID"
    zone: str = "ZONE"
    cluster: str = "CLUSTER_NAME"
    namespace: str = "rhaii-inference"
    service: str = "qwen-3b-tpu-svc"
    replicas: int = 3
    model: str = "hf://Qwen/Qwen2.5-3B-Instruct"
    image: str = ""
    price_per_node_hour: float = DEFAULT_PRICE_PER_NODE_HOUR


def _target(cfg: Any, pod: Mapping | None = None) -> _Target:
    t = _Target()
    if cfg is not None:
        for k in ("project", "zone", "cluster", "namespace", "service", "replicas", "model", "image",
                  "price_per_node_hour"):
            v = getattr(cfg, k, None)
            if v not in (None, ""):
                setattr(t, k, v)
    if pod is not None and (cfg is None or not getattr(cfg, "namespace", None)):
        ns = (pod.get("metadata") or {}).get("namespace")
        if ns:
            t.namespace = ns
    return t


def _event_message(ev: Mapping) -> str:
    return str(ev.get("message") or ev.get("note") or "")


def _event_time(ev: Mapping) -> float:
    for k in ("lastTimestamp", "eventTime", "firstTimestamp", "deprecatedLastTimestamp"):
        t = to_epoch(ev.get(k))
        if t is not None:
            return t
    series = ev.get("series") or {}
    t = to_epoch(series.get("lastObservedTime"))
    if t is not None:
        return t
    return to_epoch((ev.get("metadata") or {}).get("creationTimestamp")) or 0.0


def events_for(pod: Mapping, events: Iterable[Mapping]) -> list[Mapping]:
    """The events about this pod (by uid when both have it, else by name), oldest first."""
    meta = pod.get("metadata") or {}
    name, uid = meta.get("name"), meta.get("uid")
    out = []
    for ev in events or ():
        inv = ev.get("involvedObject") or ev.get("regarding") or {}
        if inv.get("kind") not in (None, "Pod"):
            continue
        if inv.get("name") != name:
            continue
        if uid and inv.get("uid") and inv.get("uid") != uid:
            continue
        out.append(ev)
    return sorted(out, key=_event_time)


def _latest(events: Sequence[Mapping], *reasons: str) -> Mapping | None:
    for ev in reversed(events):
        if ev.get("reason") in reasons:
            return ev
    return None


def _lines(logs: Any, container: str) -> list[str]:
    if logs is None:
        return []
    if isinstance(logs, Mapping):
        v = logs.get(container) or []
        return [str(x) for x in v]
    return [str(x) for x in logs]


def _tail(lines: Sequence[str], n: int = 10) -> list[str]:
    return [ln.rstrip() for ln in list(lines)[-n:] if ln.strip()]


def _is_tpu_node(node: Mapping) -> bool:
    return ((node.get("metadata") or {}).get("labels") or {}).get(TPU_LABEL) == TPU_VALUE


def _node_ready(node: Mapping) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status")) == "True"
    return False


def _pool_of(nodes: Sequence[Mapping]) -> str | None:
    for n in nodes:
        pool = ((n.get("metadata") or {}).get("labels") or {}).get(POOL_LABEL)
        if pool:
            return pool
    return None


def resize_command(t: _Target, pool: str, nodes: int) -> str:
    return (f"gcloud container clusters resize {t.cluster} --node-pool {pool} --num-nodes {nodes} "
            f"--zone {t.zone} --project {t.project}")


def create_pool_command(t: _Target, pool: str, nodes: int) -> str:
    return (f"gcloud container node-pools create {pool} --cluster {t.cluster} --zone {t.zone} "
            f"--project {t.project} --machine-type ct6e-standard-4t --num-nodes {nodes}")


def _billing(t: _Target, tpu_nodes: int) -> str:
    """What runs and bills now and how to stop it (step 2's stockout summary, the same words)."""
    from .stockout import billing_summary

    return billing_summary(t, tpu_nodes)["text"]


def _describe(t: _Target, pod_name: str) -> str:
    return f"kubectl describe pod {pod_name} -n {t.namespace} | tail -20"


def _restart_pods(t: _Target) -> str:
    return f"kubectl delete pod -n {t.namespace} -l {WORKLOAD_SELECTOR}"


# --- the diagnosis -------------------------------------------------------------------------------


_RE_AUTH = re.compile(r"\b(401|403)\b|Unauthorized|Forbidden|Invalid (user )?token|invalid credentials|"
                      r"GatedRepoError|gated repo|Access to model .* is restricted|"
                      r"authentication (is )?required", re.I)
_RE_NET = re.compile(r"Name or service not known|Temporary failure in name resolution|"
                     r"Connection (refused|timed out|reset)|Max retries exceeded|Network is unreachable|"
                     r"Read timed out|ConnectTimeout|No route to host|getaddrinfo failed", re.I)
_RE_404 = re.compile(r"\b404\b|Repository Not Found|RepositoryNotFoundError|EntryNotFoundError", re.I)
_RE_DISK = re.compile(r"No space left on device", re.I)
_RE_PULL_AUTH = re.compile(r"\b401\b|\b403\b|unauthorized|authentication required|denied|"
                           r"no basic auth credentials|invalid username/password", re.I)
_RE_PULL_404 = re.compile(r"manifest unknown|not found|does not exist|\b404\b|name unknown", re.I)
_RE_VLLM_ERR = re.compile(r"Traceback \(most recent call last\)|RESOURCE_EXHAUSTED|out of memory|"
                          r"\bOOM\b|RuntimeError|ValueError:|Engine core initialization failed|"
                          r"Failed to get (global )?TPU|No TPU devices|TPU .*in use|\bERROR\b", re.I)
_RE_HBM = re.compile(r"RESOURCE_EXHAUSTED|out of memory|\bOOM\b|Attempting to allocate", re.I)
_RE_TPU_BUSY = re.compile(r"Failed to get (global )?TPU|No TPU devices|TPU .*in use|TPU initialization failed", re.I)


def diagnose_pod(pod: Mapping, events: Iterable[Mapping] = (), logs: Any = None,
                 nodes: Sequence[Mapping] | None = None, cfg: Any = None, *,
                 now: float | None = None, time_scale: float = 1.0,
                 milestones: MilestoneTracker | None = None,
                 life: PodLife | None = None) -> Diagnosis | None:
    """The guide's diagnosis for one workload pod, or None while it looks healthy.

    `events`: Event dicts (all of the namespace is fine: they are filtered to this pod).
    `logs`: {"storage-initializer": [...], "main": [...]} (last lines; a crashed container's
    previous instance is best) or a plain list of lines of the container that matters.
    `nodes`: the cluster's Node dicts (for node counts and the resize command).
    `cfg`: the DeployConfig (names, replicas, zone for the commands).
    """
    life = life or classify(pod, now=now, time_scale=time_scale)
    t = _target(cfg, pod)
    evs = events_for(pod, events)
    name = life.name
    st = life.stage

    if st is Stage.PENDING:
        return _pending(pod, life, evs, nodes, t)
    if st in (Stage.INIT_CRASHLOOP, Stage.INIT_ERROR):
        return _init_failed(life, _lines(logs, INIT_CONTAINER), t)
    if st in (Stage.ERR_IMAGE_PULL, Stage.IMAGE_PULL_BACKOFF):
        return _pull(pod, life, evs, t)
    if st is Stage.STARTING:
        return _starting(life, evs, _lines(logs, MAIN_CONTAINER), t, milestones)
    if st is Stage.CRASHLOOP:
        return _crash(life, evs, _lines(logs, MAIN_CONTAINER), t)
    if st is Stage.TERMINATING and life.severity != "ok":
        return Diagnosis(
            "stuck-terminating", f"{name} has been terminating for {life.in_stage_text}",
            (f"node: {life.node or '-'}",),
            "The node may be gone or unreachable, or a finalizer holds the pod. If the node is gone, "
            "remove the pod record; the controller creates a replacement.",
            (f"kubectl get pod {name} -n {t.namespace} -o jsonpath='{{.metadata.finalizers}}'",
             f"kubectl delete pod {name} -n {t.namespace} --grace-period=0 --force"),
            "warning", name)
    if st is Stage.FAILED:
        return Diagnosis(
            "pod-failed", f"{name} failed: {life.reason or 'Failed'}",
            tuple(x for x in (life.message,) if x),
            "Delete the pod; the LLMInferenceService's deployment creates a new one.",
            (_describe(t, name), f"kubectl delete pod {name} -n {t.namespace}"), "error", name)
    return None


def diagnose_pods(pods: Iterable[Mapping], events: Iterable[Mapping] = (),
                  logs_by_pod: Mapping[str, Any] | None = None,
                  nodes: Sequence[Mapping] | None = None, cfg: Any = None, *,
                  now: float | None = None, time_scale: float = 1.0,
                  milestones_by_pod: Mapping[str, MilestoneTracker] | None = None) -> list[Diagnosis]:
    """Diagnoses for every pod that has one; logs/milestones keyed by pod name."""
    events = list(events or ())
    out = []
    for p in pods:
        n = (p.get("metadata") or {}).get("name", "")
        d = diagnose_pod(p, events, (logs_by_pod or {}).get(n), nodes, cfg, now=now,
                         time_scale=time_scale, milestones=(milestones_by_pod or {}).get(n))
        if d:
            out.append(d)
    return out


def _pending(pod: Mapping, life: PodLife, evs: list[Mapping], nodes: Sequence[Mapping] | None,
             t: _Target) -> Diagnosis | None:
    name = life.name
    ev = _latest(evs, "FailedScheduling")
    msg = _event_message(ev) if ev else ""
    if not msg and life.reason == "Unschedulable":
        msg = life.message
    nodes = list(nodes or [])
    tpu = [n for n in nodes if _is_tpu_node(n)]
    ready_tpu = [n for n in tpu if _node_ready(n)]
    pool = _pool_of(tpu) or "tpu-pool"
    need = max(int(t.replicas or 1), 1)
    count = f"TPU v6e nodes: {len(ready_tpu)} Ready of {len(tpu)} (the service needs {need}, one per replica)"
    if not msg:
        if life.severity == "ok":
            return None
        return Diagnosis(
            "pending-slow", f"{name} has waited for a node for {life.in_stage_text} (expected 1-5 min)",
            (count, "no scheduling failure reported yet"),
            "The scheduler has not said why yet. Check the pod's events and that the TPU nodes are Ready.",
            (_describe(t, name), f"kubectl get nodes -l {TPU_LABEL}={TPU_VALUE}"), "warning", name)
    evidence = [f"scheduler: {msg.strip()}", count]
    quota_note = (f"Each node is a ct6e-standard-4t with 4 chips: {need} nodes need {4 * need} TPU v6e chips "
                  f"of quota in the region.")
    low = msg.lower()
    if not tpu:
        return Diagnosis(
            "no-tpu-node", f"{name} is Pending: the cluster has no TPU v6e node",
            tuple(evidence),
            f"Scale the TPU node pool to {need} node(s) (or create it if it does not exist). {quota_note}",
            (resize_command(t, pool, need), create_pool_command(t, pool, need),
             f"kubectl get nodes -l {TPU_LABEL}={TPU_VALUE} -w"), "error", name)
    if "untolerated taint" in low or "had taint" in low:
        if "not-ready" in low or "unreachable" in low or "network-unavailable" in low:
            return Diagnosis(
                "nodes-not-ready", f"{name} is Pending: the TPU nodes are not Ready yet",
                tuple(evidence),
                "The nodes are still starting (or unhealthy). Wait for them to become Ready; if they stay "
                "NotReady, check the node pool in the console.",
                (f"kubectl get nodes -l {TPU_LABEL}={TPU_VALUE} -w",), "warning", name)
        if TPU_RESOURCE in msg and len(ready_tpu) >= 1 and "insufficient" not in low:
            return Diagnosis(
                "taint", f"{name} is Pending: it does not tolerate the TPU nodes' taint {TPU_RESOURCE}",
                tuple(evidence),
                "The pod template needs the toleration google.com/tpu (Exists, NoSchedule). Re-apply the "
                "LLMInferenceService rendered by the wizard (it carries the toleration).",
                (f"kubectl get llminferenceservice {t.service} -n {t.namespace} -o jsonpath='{{.spec.template.tolerations}}'",
                 "kubectl apply --server-side -f manifests-out/llminferenceservice.yaml"), "error", name)
    if len(ready_tpu) < need:
        missing = need - len(ready_tpu)
        return Diagnosis(
            "too-few-nodes",
            f"{name} is Pending: {len(ready_tpu)} TPU node(s) for {need} replicas ({missing} missing)",
            tuple(evidence),
            f"Each replica needs a whole TPU node. Resize the pool to {need} nodes. {quota_note} If the zone "
            f"has no capacity for more (stockout), lower the replicas to {len(ready_tpu)} instead "
            f"(--replicas {max(len(ready_tpu), 1)}). Meanwhile still running: {_billing(t, len(tpu))}",
            (resize_command(t, pool, need),
             f"kubectl patch llminferenceservice {t.service} -n {t.namespace} --type merge "
             f"-p '{{\"spec\":{{\"replicas\":{max(len(ready_tpu), 1)}}}}}'",
             f"kubectl get nodes -l {TPU_LABEL}={TPU_VALUE} -w"), "error", name)
    if f"insufficient {TPU_RESOURCE}" in low:
        return Diagnosis(
            "tpu-in-use", f"{name} is Pending: all TPU chips are taken by other pods",
            tuple(evidence),
            "Every TPU node's 4 chips are already requested (an old replica still terminating, or another "
            "workload). Wait for terminating pods to go, or free a node; else add a node.",
            (f"kubectl get pods -A -o wide --field-selector spec.nodeName!='' | grep -E '{pool}'",
             f"kubectl describe nodes -l {TPU_LABEL}={TPU_VALUE} | grep -A8 'Allocated resources'",
             resize_command(t, pool, len(tpu) + 1)), "error", name)
    if "node affinity" in low or "node selector" in low or "nodeselector" in low:
        sel = (pod.get("spec") or {}).get("nodeSelector") or {}
        mism = []
        for k, v in sel.items():
            have = sorted({((n.get("metadata") or {}).get("labels") or {}).get(k, "<none>") for n in tpu})
            if have != [v]:
                mism.append(f"pod wants {k}={v}; TPU nodes have {', '.join(have)}")
        return Diagnosis(
            "node-selector", f"{name} is Pending: no node matches its node selector",
            tuple(evidence + mism),
            "The pod's nodeSelector (accelerator and topology) must match the TPU pool's labels: a "
            "ct6e-standard-4t pool has topology 2x2. Fix the pool or the service's node selector.",
            (f"kubectl get nodes -l {TPU_LABEL}={TPU_VALUE} --show-labels",), "error", name)
    return Diagnosis(
        "unschedulable", f"{name} is Pending: the scheduler cannot place it",
        tuple(evidence), "Read the scheduler's message above; the pod's events have the detail.",
        (_describe(t, name),), "error", name)


def _init_failed(life: PodLife, lines: list[str], t: _Target) -> Diagnosis:
    name = life.name
    text = "\n".join(lines)
    last = _tail(lines, 8)
    ev = [f"{name}: {life.status_text} (restarts: {life.restarts})"]
    ev += [f"storage-initializer: {ln}" for ln in last] or ["storage-initializer log: (empty)"]
    logs_cmd = f"kubectl logs {name} -n {t.namespace} -c {INIT_CONTAINER} --previous"
    repo = t.model.split("://", 1)[-1]
    if _RE_AUTH.search(text):
        gated = re.search(r"\b403\b|Forbidden|gated|restricted", text, re.I)
        fix = ("Hugging Face refused the download: the token in secret 'huggingface-token' (key 'token') is "
               "invalid, expired or lacks read access. Create a read token at "
               "https://huggingface.co/settings/tokens, put it in the secret, then restart the pods.")
        if gated:
            fix += (f" For a gated model, also accept its licence at https://huggingface.co/{repo} "
                    "with the account that owns the token.")
        return Diagnosis(
            "hf-token", "Model download refused: Hugging Face rejected the token (HTTP 401/403)",
            tuple(ev), fix,
            (f"kubectl create secret generic huggingface-token -n {t.namespace} "
             "--from-literal=token=\"$HF_TOKEN\" --dry-run=client -o yaml | kubectl apply -f -",
             _restart_pods(t), logs_cmd), "error", name)
    if _RE_NET.search(text):
        return Diagnosis(
            "egress", "Model download failed: huggingface.co is unreachable from the pod",
            tuple(ev),
            "The pod cannot reach Hugging Face (DNS or HTTPS egress blocked). Private nodes need Cloud NAT; "
            "a NetworkPolicy must allow egress to DNS (53) and HTTPS (443).",
            (f"kubectl get networkpolicy -n {t.namespace}",
             f"kubectl run nettest -n {t.namespace} --rm -it --image=curlimages/curl --restart=Never -- "
             "curl -sI https://huggingface.co", logs_cmd), "error", name)
    if _RE_404.search(text):
        return Diagnosis(
            "model-not-found", f"Model download failed: {t.model} was not found on Hugging Face",
            tuple(ev), "Check the model URI (hf://ORG/NAME) in the configuration and re-deploy.",
            (logs_cmd,), "error", name)
    if _RE_DISK.search(text):
        return Diagnosis(
            "init-failed", "Model download failed: the node ran out of disk space", tuple(ev),
            "The model does not fit in the pod's ephemeral storage; use a larger boot disk for the TPU pool.",
            (logs_cmd,), "error", name)
    return Diagnosis(
        "init-failed", f"The model download (storage-initializer) fails: {life.status_text}",
        tuple(ev), "Read the storage-initializer log; the last lines are above.",
        (logs_cmd, _describe(t, name)), "error", name)


def _pull(pod: Mapping, life: PodLife, evs: list[Mapping], t: _Target) -> Diagnosis:
    name = life.name
    failed = _latest(evs, "Failed", "ErrImagePull", "BackOff")
    msgs = [m for m in (life.message, _event_message(failed) if failed else "") if m]
    text = "\n".join(msgs)
    image = ""
    m = re.search(r'image "([^"]+)"', text)
    if m:
        image = m.group(1)
    else:
        for c in ((pod.get("spec") or {}).get("containers") or []):
            if c.get("name") == MAIN_CONTAINER:
                image = c.get("image") or ""
    evidence = [f"{name}: {life.status_text}"] + [f"kubelet: {x}" for x in msgs]
    secret_names = [s.get("name") for s in ((pod.get("spec") or {}).get("imagePullSecrets") or [])]
    if not secret_names:
        evidence.append("the pod has no imagePullSecrets")
    else:
        evidence.append(f"pull secret(s) used: {', '.join(secret_names)}")
    if _RE_PULL_404.search(text) and not _RE_PULL_AUTH.search(text):
        return Diagnosis(
            "image-not-found", f"The image {image or '(unknown)'} does not exist", tuple(evidence),
            "Check the image reference (registry, path, tag) in the configuration and re-deploy.",
            (_describe(t, name),), "error", name)
    return Diagnosis(
        "pull-secret", f"The vLLM image cannot be pulled from {image.split('/')[0] if image else 'the registry'}: "
        "the pull secret is missing or rejected",
        tuple(evidence),
        "registry.redhat.io needs a valid registry service account in secret 'rhaiis-pull-secret' "
        "(type kubernetes.io/dockerconfigjson) in the workload namespace. Create a token at "
        "https://access.redhat.com/terms-based-registry/, recreate the secret, then restart the pods.",
        (f"kubectl create secret docker-registry rhaiis-pull-secret -n {t.namespace} "
         "--docker-server=registry.redhat.io --docker-username=\"$RH_REGISTRY_USER\" "
         "--docker-password=\"$RH_REGISTRY_TOKEN\" --dry-run=client -o yaml | kubectl apply -f -",
         _restart_pods(t), _describe(t, name)), "error", name)


def _starting(life: PodLife, evs: list[Mapping], lines: list[str], t: _Target,
              mt: MilestoneTracker | None) -> Diagnosis | None:
    name = life.name
    if mt is None and lines:
        mt = MilestoneTracker()
        mt.feed_many(lines, ts=0.0)
    last_lines = _tail(lines or (mt.last_lines if mt else []), 10)
    text = "\n".join(last_lines)
    killed = [e for e in evs if e.get("reason") in ("Unhealthy", "Killing")
              and "liveness" in _event_message(e).lower()]
    if life.restarts > 0 and killed:
        return Diagnosis(
            "liveness-kill", f"{name}: the liveness probe restarted vLLM before it finished starting",
            (f"restarts: {life.restarts}", f"event: {_event_message(killed[-1])}"),
            "Compilation took longer than the liveness probe allows. Raise livenessProbe.initialDelaySeconds "
            "(or failureThreshold) in the service's template and re-apply.",
            (f"kubectl get pod {name} -n {t.namespace} -o jsonpath='{{.spec.containers[0].livenessProbe}}'",),
            "error", name)
    if _RE_VLLM_ERR.search(text):
        return _vllm_error(life, last_lines, t, running=True)
    if life.severity == "ok":
        return None
    hi = EXPECTED[Stage.STARTING][1]
    where = mt.summary() if mt and mt.last else "no start-up milestone in the log yet"
    evidence = [f"Running 0/1 for {life.in_stage_text} (the guide expects 3-5 min; a cold XLA compile "
                f"cache can take far longer)", f"last milestone: {where}"]
    if mt and mt.last and mt.last.line not in last_lines:  # the line that shows where it stands
        evidence.append(f"log ({mt.last.label}): {mt.last.line}")
    evidence += [f"log: {ln}" for ln in last_lines]
    sev = "warning" if (life.seconds_in_stage or 0) <= hi * 4 else "error"
    return Diagnosis(
        "compiling", f"{name} is still starting: vLLM is {'compiling for the TPU' if mt and mt.compiling else 'loading'} "
        f"({fmt_duration(life.seconds_in_stage)})",
        tuple(evidence),
        "Nothing is wrong yet: vLLM loads the weights, then XLA compiles one graph per input shape. The "
        "readiness probe (/v1/models) passes when compilation ends. Keep watching the log for "
        "'Compiled the model with different input shapes'.",
        (f"kubectl logs {name} -n {t.namespace} -c {MAIN_CONTAINER} --tail=10 -f",), sev, name)


def _vllm_error(life: PodLife, last_lines: list[str], t: _Target, running: bool) -> Diagnosis:
    name = life.name
    text = "\n".join(last_lines)
    evidence = [f"{name}: {life.status_text} (restarts: {life.restarts})"] + [f"log: {ln}" for ln in last_lines]
    if _RE_HBM.search(text):
        fix = ("The model or its KV cache does not fit in the TPU memory (4 chips x 32 GB HBM). Lower "
               "--max-model-len or --gpu-memory-utilization, or use a larger slice.")
    elif _RE_TPU_BUSY.search(text):
        fix = ("vLLM could not get the TPU: another process holds the chips, or the pod does not request "
               "all 4 google.com/tpu. Check the pods on that node and the resource requests.")
    else:
        fix = "vLLM reported an error while starting; the last log lines are above."
    return Diagnosis(
        "vllm-error", f"{name}: vLLM reported an error while starting", tuple(evidence), fix,
        (f"kubectl logs {name} -n {t.namespace} -c {MAIN_CONTAINER} {'--tail=50' if running else '--previous'}",),
        "error", name)


def _crash(life: PodLife, evs: list[Mapping], lines: list[str], t: _Target) -> Diagnosis:
    name = life.name
    last_lines = _tail(lines, 10)
    if life.reason == "OOMKilled" or "OOMKilled" in life.message:
        return Diagnosis(
            "vllm-crash", f"{name}: vLLM was killed for using too much host memory (OOMKilled)",
            (f"restarts: {life.restarts}",) + tuple(f"log: {ln}" for ln in last_lines),
            "Raise the container's memory limit (or remove it) in the service's template.",
            (f"kubectl logs {name} -n {t.namespace} -c {MAIN_CONTAINER} --previous",), "error", name)
    d = _vllm_error(life, last_lines, t, running=False)
    return Diagnosis("vllm-crash", f"{name}: vLLM keeps crashing ({life.status_text}, restarts {life.restarts})",
                     d.evidence, d.fix, d.commands, "error", name)
