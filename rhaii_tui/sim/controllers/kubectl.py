"""`kubectl patch` run inside the simulated cluster by a Pod (the scheduled scale-to-zero's Job).

A container whose command (command + args; or args alone in a kubectl image, whose entrypoint is
kubectl, e.g. registry.k8s.io/kubectl) is `kubectl patch RESOURCE NAME [-n NS] [--type merge|json]
-p PATCH` is recognised generically. When the container starts, the kubelet performs the patch as
the Pod's ServiceAccount would through the apiserver: authorised by the namespace's Roles and
RoleBindings (sim/rbac.py), applied to the stored object, and the container exits as kubectl does:

    allowed:   "llminferenceservice.serving.kserve.io/NAME patched", exit 0
    forbidden: 'Error from server (Forbidden): ... cannot patch resource ...', exit 1
    not found: 'Error from server (NotFound): ... "NAME" not found', exit 1
    rejected (a JSON patch whose test op fails...): 'Error from server (UnprocessableEntity): ...', exit 1
    no route (a NetworkPolicy drops the Pod's egress to the API server): 'dial tcp ...: i/o timeout', exit 1
"""

from __future__ import annotations

import copy
import json
import shlex
from dataclasses import dataclass
from typing import Any

from .. import rbac
from ..kube import patch as patches
from ..store import ApiError, ResourceType, Store
from .logscripts import Script


API_HOST = "kubernetes.default.svc"  # in-cluster kubectl: KUBERNETES_SERVICE_HOST, the `kubernetes` Service
API_IP = "34.118.224.1"              # that Service's ClusterIP on GKE (services range), as kubectl prints it


@dataclass(frozen=True)
class KubectlPatch:
    resource: str  # as typed: "llminferenceservice", "llminferenceservices.serving.kserve.io", "deploy"...
    name: str
    namespace: str | None
    patch_type: str  # "strategic" | "merge" | "json"
    patch: str


def _argv(container: dict[str, Any]) -> list[str]:
    cmd = [str(a) for a in (container.get("command") or [])]
    args = [str(a) for a in (container.get("args") or [])]
    if not cmd and "kubectl" in str(container.get("image", "")):
        cmd = ["kubectl"]  # the image's entrypoint
    argv = cmd + args
    if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash") and argv[1] == "-c":
        try:
            argv = shlex.split(argv[2])
        except ValueError:
            return []
    return argv


def parse(container: dict[str, Any]) -> KubectlPatch | None:
    """The `kubectl patch` a container runs, or None when it runs something else."""
    argv = _argv(container)
    if len(argv) < 2 or argv[0].rsplit("/", 1)[-1] != "kubectl" or argv[1] != "patch":
        return None
    pos: list[str] = []
    ns, ptype, body = None, "strategic", None
    i = 2
    while i < len(argv):
        a = argv[i]
        val = None
        if "=" in a and a.startswith("--"):
            a, val = a.split("=", 1)
        if a in ("-n", "--namespace", "--type", "-p", "--patch"):
            if val is None:
                if i + 1 >= len(argv):
                    return None
                i += 1
                val = argv[i]
            if a in ("-n", "--namespace"):
                ns = val
            elif a == "--type":
                ptype = val
            else:
                body = val
        elif not a.startswith("-"):
            pos.append(a)
        i += 1
    if body is None:
        return None
    if len(pos) == 1 and "/" in pos[0]:
        pos = pos[0].split("/", 1)
    if len(pos) != 2:
        return None
    return KubectlPatch(pos[0], pos[1], ns, ptype, body)


def resolve(store: Store, resource: str) -> ResourceType | None:
    """kubectl's resource argument: plural, singular, kind or short name, optionally .group."""
    word, _, group = resource.partition(".")
    word = word.lower()
    for rt in store.types():
        if group and rt.group != group:
            continue
        if word in (rt.plural, rt.singular, rt.kind.lower()) or word in rt.short_names:
            return rt
    return None


def run(store: Store, pod: dict[str, Any], cmd: KubectlPatch, reach: str = "open") -> Script:
    """Perform the patch as the Pod's ServiceAccount; the container's output and exit code.
    `reach`: what the Pod's connection to the API server does ("open", or "timeout" when a
    NetworkPolicy drops the egress: kubectl gives up after its 30 s dial timeout)."""
    s = Script()
    md = pod.get("metadata") or {}
    pod_ns = md.get("namespace") or "default"
    ns = cmd.namespace or pod_ns
    sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    done = _terminated(pod)
    if done is not None:  # already ran (the emulator restarted since): never patch twice
        s.exit_at, s.exit_code = 0.5, done
        return s
    if reach != "open":
        s.add(30.0, f"error: Get \"https://{API_IP}:443/api?timeout=32s\": dial tcp {API_IP}:443: i/o timeout")
        s.exit_at, s.exit_code = 30.1, 1
        return s
    code, line = _patch(store, ns, pod_ns, sa, cmd)
    s.add(0.4, line)
    s.exit_at, s.exit_code = 0.5, code
    return s


def _terminated(pod: dict[str, Any]) -> int | None:
    """The exit code of the Pod's (single) container when it has already finished, else None."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term is not None:
            return int(term.get("exitCode", 0) or 0)
    return None


def _patch(store: Store, ns: str, pod_ns: str, sa: str, cmd: KubectlPatch) -> tuple[int, str]:
    rt = resolve(store, cmd.resource)
    if rt is None:
        return 1, f'error: the server doesn\'t have a resource type "{cmd.resource}"'
    qual = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    # the token is the Pod's ServiceAccount's; the RBAC of the target namespace decides
    if not rbac.allowed(store, ns, sa, "patch", rt.group, rt.plural, cmd.name) or ns != pod_ns:
        return 1, rbac.forbidden_message(ns, sa, "patch", rt.group, rt.plural, cmd.name)
    cur = store.try_get(rt, ns, cmd.name)
    if cur is None:
        return 1, f'Error from server (NotFound): {qual} "{cmd.name}" not found'
    try:
        body = json.loads(cmd.patch)
    except ValueError as e:
        return 1, f"error: unable to parse \"{cmd.patch}\": {e}"
    try:
        if cmd.patch_type == "json":
            new = patches.json_patch(copy.deepcopy(cur), body)
        elif cmd.patch_type == "merge":
            if not isinstance(body, dict):
                return 1, "error: unable to parse the patch: a merge patch must be a JSON object"
            new = patches.merge_patch(copy.deepcopy(cur), body)
        else:
            if rt.custom:
                return 1, (f"error: application/strategic-merge-patch+json is not supported by {qual}: "
                           "use --type merge or --type json")
            new = patches.strategic_merge_patch(copy.deepcopy(cur), body)
        new.setdefault("metadata", {})["name"] = cmd.name
        stored = store.update(rt, new)
    except ApiError as e:
        return 1, f"Error from server ({e.reason if e.reason != 'Invalid' else 'UnprocessableEntity'}): {e.message}"
    changed = stored["metadata"].get("resourceVersion") != cur["metadata"].get("resourceVersion")
    what = f"{rt.kind.lower()}.{rt.group}/{cmd.name}" if rt.group else f"{rt.kind.lower()}/{cmd.name}"
    return 0, f"{what} {'patched' if changed else 'patched (no change)'}"


__all__ = ["KubectlPatch", "parse", "resolve", "run"]
