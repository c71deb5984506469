"""RBAC as the apiserver evaluates it, for the fake API (kube_api.py), from rendered manifests.

A ServiceAccount's grants are the rules of every Role bound to it by a RoleBinding (valid in that
binding's namespace) and every ClusterRole bound by a ClusterRoleBinding (valid everywhere) or a
RoleBinding (valid in its namespace). A rule allows a request when its apiGroups, resources
(`resource/subresource` for a subresource), verbs and, if given, resourceNames all match
(kubernetes plugin/pkg/auth/authorizer/rbac/rbac.go RuleAllows).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Grant:
    rules: tuple[dict[str, Any], ...]
    namespace: str | None  # None: every namespace, and cluster-scoped resources


def _matches(values: list[str] | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]


def rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    names = rule.get("resourceNames") or []
    return (_matches(rule.get("apiGroups"), group) and _matches(rule.get("resources"), resource)
            and _matches(rule.get("verbs"), verb) and (not names or name in names))


def allowed(grants: Iterable[Grant], verb: str, group: str, resource: str, namespace: str | None,
            name: str | None) -> bool:
    for grant in grants:
        if grant.namespace is not None and grant.namespace != namespace:
            continue
        if any(rule_allows(rule, verb, group, resource, name) for rule in grant.rules):
            return True
    return False


def grants_of(manifests: list[dict[str, Any]], service_account: str, namespace: str) -> list[Grant]:
    """What the rendered manifests grant `namespace/service_account`."""
    roles = {(m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"]): m
             for m in manifests if m["kind"] in ("Role", "ClusterRole")}
    grants = []
    for binding in manifests:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == service_account
                   and s.get("namespace") == namespace for s in subjects):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role = roles.get((ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"]))
        if role is None:
            raise AssertionError(f"{binding['kind']} {binding['metadata']['name']} binds a missing {ref['kind']} {ref['name']}")
        grants.append(Grant(tuple(copy.deepcopy(role.get("rules") or [])), scope))
    return grants


def without_one(grants: list[Grant]) -> Iterable[tuple[str, list[Grant]]]:
    """Every way to take away one verb on one resource: (what was taken, the remaining grants)."""
    for g, grant in enumerate(grants):
        for r, rule in enumerate(grant.rules):
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    fewer = [dict(x) for x in grant.rules]
                    resources = [x for x in rule["resources"] if x != resource]
                    verbs = [x for x in rule["verbs"] if x != verb]
                    fewer[r] = {**rule, "verbs": verbs} if len(rule["verbs"]) > 1 else {**rule, "resources": resources}
                    if len(rule["verbs"]) > 1 and len(rule["resources"]) > 1:
                        # split: the other resources keep every verb, this one loses `verb`
                        fewer[r] = {**rule, "resources": resources}
                        fewer.append({**rule, "resources": [resource], "verbs": verbs})
                    taken = f"{verb} {'/'.join(rule.get('apiGroups') or [])}:{resource}"
                    yield taken, [*grants[:g], Grant(tuple(fewer), grant.namespace), *grants[g + 1:]]
