"""Step 3: the workload namespace and the two secrets.

- `ensure_namespace(ctx)`: idempotent.
- The secrets come from files (`rhaii_tui.secrets.load_secret_files`) or the form
  (`pull_secret_from_form`, `hf_secret_from_form`) into `ctx.secrets` (memory only).
- `preview(ctx)`: what will be created, without values.
- `apply_secrets(ctx)`: server-side apply, idempotent; a secret of the wrong type is replaced
  (the type of a Secret cannot be changed in place).
- `probe(ctx)`: done when both secrets exist with the right type and key.
Values never reach logs, state files or error messages.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..cloud.gke import CloudError
from ..cloud.kube import scrub
from ..config import HF_SECRET_NAME, PULL_SECRET_NAME
from ..guide import step as guide_step
from ..secrets import DOCKERCONFIG_TYPE, SecretsInput, SecretSpec
from .base import Status, StepState
from .context import StepContext

log = logging.getLogger(__name__)

EXPECTED: dict[str, tuple[str, str]] = {
    PULL_SECRET_NAME: (DOCKERCONFIG_TYPE, ".dockerconfigjson"),
    HF_SECRET_NAME: ("Opaque", "token"),
}


@dataclass
class SecretStatus:
    """What the cluster holds for one secret: metadata only (type, key names), never values."""

    name: str
    present: bool
    type: str = ""
    keys: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.present and not self.problem

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "present": self.present, "type": self.type, "keys": self.keys,
                "problem": self.problem, "ok": self.ok}


def secret_statuses(ctx: StepContext) -> list[SecretStatus]:
    """Both secrets as they are in the namespace (CloudError when the cluster cannot be read)."""
    kube = ctx.kube()
    ns = ctx.cfg.namespace
    out = []
    for name, (stype, key) in EXPECTED.items():
        obj = kube.get("v1", "Secret", name, ns)
        if obj is None:
            out.append(SecretStatus(name, False))
            continue
        got_type = obj.get("type") or "Opaque"
        keys = sorted((obj.get("data") or {}).keys())
        del obj  # the values go no further
        problem = ""
        if got_type != stype:
            problem = f"has type {got_type}, expected {stype}"
        elif key not in keys:
            problem = f"has no key {key} (keys: {', '.join(keys) or 'none'})"
        out.append(SecretStatus(name, True, got_type, keys, problem))
    return out


def ensure_namespace(ctx: StepContext) -> bool:
    """Create the workload namespace when absent (the same Namespace object render-manifests
    writes). True when it was created now."""
    from .. import manifests

    try:
        labels = (manifests.namespace(ctx.cfg).get("metadata") or {}).get("labels") or {}
    except ValueError:  # a config that cannot render: the namespace name itself is checked below
        labels = manifests.MANAGED_BY_LABELS
    return ctx.kube().ensure_namespace(ctx.cfg.namespace, labels=dict(labels))


def preview(ctx: StepContext, secrets: SecretsInput | None = None) -> dict[str, Any]:
    """What step 3 will create, with no value in it."""
    inp = secrets or ctx.secrets
    ns = ctx.cfg.namespace
    items = [s.preview(ns) for s in inp.specs]
    lines = [f"Namespace {ns} (created if absent)"] + [i["text"] for i in items]
    missing = inp.missing()
    if missing:
        lines.append("Still to enter: " + ", ".join(missing))
    return {"namespace": ns, "secrets": items, "missing": missing, "text": "\n".join(lines)}


@dataclass
class ApplyResult:
    namespace_created: bool
    applied: list[str]
    replaced: list[str] = field(default_factory=list)  # had the wrong type: deleted and created


def apply_secrets(ctx: StepContext, secrets: SecretsInput | None = None,
                  on_progress: Callable[[str], None] | None = None, *, require_both: bool = False) -> ApplyResult:
    """Ensure the namespace and apply the given secrets (server-side apply). Raises CloudError with a
    message free of secret values."""
    inp = secrets or ctx.secrets
    ns = ctx.cfg.namespace
    if not inp.specs:
        raise CloudError("unknown", "No secret to create yet.",
                         "Fill in the form (registry user + password/token, Hugging Face token) or load the files.")
    if require_both and not inp.complete:
        raise CloudError("unknown", f"Missing: {', '.join(inp.missing())}.",
                         "Enter both secrets (form or files) before applying.")
    hidden = inp.values()

    def say(msg: str) -> None:
        if on_progress is not None:
            try:
                on_progress(msg)
            except Exception:  # noqa: BLE001
                log.exception("on_progress callback failed")

    try:
        kube = ctx.kube()
        created = kube.ensure_namespace(ns, labels={"app.kubernetes.io/managed-by": "rhaii-tui"})
        say(f"Namespace {ns} {'created' if created else 'exists'}.")
        applied, replaced = [], []
        for spec in inp.specs:
            existing = kube.get("v1", "Secret", spec.name, ns)
            if existing is not None and (existing.get("type") or "Opaque") != spec.type:
                old_type = existing.get("type") or "Opaque"
                del existing
                say(f"Secret {spec.name} has type {old_type}; replacing it with {spec.type}.")
                kube.delete("v1", "Secret", spec.name, ns)
                _wait_gone(kube, spec.name, ns)
                replaced.append(spec.name)
            existing = None
            kube.apply(spec.manifest(ns), ns, secrets=spec.values())
            applied.append(spec.name)
            say(f"Secret {spec.name} applied ({spec.type}).")
    except CloudError as e:
        raise CloudError(e.kind, scrub(e.message, hidden), scrub(e.fix, hidden)) from None
    ctx.record(step3_applied_at=time.time(), step3_applied=applied)
    return ApplyResult(created, applied, replaced)


def _wait_gone(kube: Any, name: str, ns: str, timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    delay = 0.05
    while kube.get("v1", "Secret", name, ns) is not None:
        if time.monotonic() - t0 > timeout:
            raise CloudError("conflict", f"Secret {name} is still being deleted.", "Retry in a moment.")
        time.sleep(delay)
        delay = min(1.0, delay * 2)


def probe(ctx: StepContext) -> StepState:
    """Step 3's state from the live namespace."""
    ns = ctx.cfg.namespace
    try:
        info = ctx.cluster()
        if info is None or not info.serving_api:
            return StepState(Status.NOT_STARTED, "Waiting for the cluster (step 2).")
        kube = ctx.kube()
        if kube.get("v1", "Namespace", ns) is None:
            return StepState(Status.NOT_STARTED, f"Namespace {ns} does not exist yet.")
        statuses = secret_statuses(ctx)
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    data = {"namespace": ns, "secrets": [s.to_dict() for s in statuses]}
    wrong = [s for s in statuses if s.present and s.problem]
    if wrong:
        return StepState(Status.FAILED, "; ".join(f"Secret {s.name} {s.problem}" for s in wrong) + ".",
                         fix="Enter it again in step 3: the wizard replaces it with the right type.", data=data)
    present = [s.name for s in statuses if s.ok]
    if len(present) == len(statuses):
        return StepState(Status.DONE, f"Namespace {ns} with both secrets ({', '.join(present)}).", data=data)
    missing = [s.name for s in statuses if not s.present]
    if present:
        return StepState(Status.IN_PROGRESS, f"{len(present)} of {len(statuses)} secrets present; missing "
                         f"{', '.join(missing)}.", fix="Enter the missing secret in step 3.", data=data)
    return StepState(Status.NOT_STARTED, f"Namespace {ns} exists; the secrets are not created yet.", data=data)


def commands(ctx: StepContext) -> list[str]:
    return guide_step(3).commands(ctx.cfg)


__all__ = ["SecretStatus", "ApplyResult", "secret_statuses", "ensure_namespace", "preview", "apply_secrets",
           "probe", "commands", "SecretSpec"]
