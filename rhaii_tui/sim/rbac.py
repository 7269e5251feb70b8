"""RBAC as the apiserver's authorizer decides it, for what runs inside the simulated cluster.

The emulator's API server does not authorise the wizard's own requests (its credentials are the
cluster admin's); what a Pod does with its ServiceAccount token (a CronJob's `kubectl patch`,
controllers/kubectl.py) is checked here against the Roles and RoleBindings in the store:
a RoleBinding in the namespace names the ServiceAccount among its subjects, its roleRef names a
Role of that namespace, and one of the Role's rules matches the API group, the resource (or
"resource/subresource"), the verb and, when the rule lists `resourceNames`, the object's name.
ClusterRoles are not modelled: what only a ClusterRole would allow is denied.
"""

from __future__ import annotations

from typing import Any

from .store import Store

Obj = dict[str, Any]


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name or 'default'}"


def _matches(values: list | None, wanted: str) -> bool:
    vals = [str(v) for v in (values or [])]
    return "*" in vals or wanted in vals


def rule_allows(rule: Obj, verb: str, group: str, resource: str, name: str | None,
                subresource: str = "") -> bool:
    res = f"{resource}/{subresource}" if subresource else resource
    if not _matches(rule.get("apiGroups"), group):
        return False
    if not _matches(rule.get("resources"), res):
        return False
    if not _matches(rule.get("verbs"), verb):
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


def allowed(store: Store, namespace: str, service_account: str, verb: str, group: str, resource: str,
            name: str | None = None, subresource: str = "") -> bool:
    """May the ServiceAccount `namespace/service_account` do `verb` on the (namespaced) resource?"""
    rb_t = store.resolve("rbac.authorization.k8s.io", "v1", "rolebindings")
    role_t = store.resolve("rbac.authorization.k8s.io", "v1", "roles")
    if rb_t is None or role_t is None:
        return False
    sa = service_account or "default"
    for rb in store.list(rb_t, namespace)[0]:
        subjects = rb.get("subjects") or []
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa
                   and (s.get("namespace") or namespace) == namespace for s in subjects):
            continue
        ref = rb.get("roleRef") or {}
        if ref.get("kind") != "Role":
            continue
        role = store.try_get(role_t, namespace, ref.get("name", ""))
        if role is None:
            continue
        if any(rule_allows(r, verb, group, resource, name, subresource) for r in role.get("rules") or []):
            return True
    return False


def forbidden_message(namespace: str, service_account: str, verb: str, group: str, resource: str,
                      name: str) -> str:
    """The apiserver's 403 text, as kubectl prints it."""
    qual = f"{resource}.{group}" if group else resource
    return (f'Error from server (Forbidden): {qual} "{name}" is forbidden: User '
            f'"{service_account_user(namespace, service_account)}" cannot {verb} resource "{resource}" in API '
            f'group "{group}" in the namespace "{namespace}"')


__all__ = ["allowed", "rule_allows", "forbidden_message", "service_account_user"]
