"""The discovery documents of the fake API (kube_api.py), so that the real `kubectl` can talk to it:
`/api`, `/apis`, and each group version's APIResourceList (legacy discovery, which kubectl falls
back to when the answer is not the aggregated kind)."""

from __future__ import annotations

from typing import Any

from tests.kube_api_resources import RESOURCES

_VERBS = ["get", "list", "create", "update", "patch", "delete"]


def _group_versions() -> dict[str, str]:
    return {group: version for group, version, *_ in RESOURCES.values() if group}


def _resource_list(group: str, version: str) -> dict[str, Any]:
    resources = []
    for plural, (g, v, kind, namespaced, subresources) in RESOURCES.items():
        if (g, v) != (group, version):
            continue
        resources.append({"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                          "verbs": _VERBS})
        for sub in subresources:
            scale = sub == "scale"
            resources.append({"name": f"{plural}/{sub}", "singularName": "", "namespaced": namespaced,
                              "kind": "Scale" if scale else kind, "verbs": ["get", "patch", "update"],
                              **({"group": "autoscaling", "version": "v1"} if scale else {})})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


def discovery(path: str) -> dict[str, Any] | None:
    """The document for `path`, or None when it is no discovery path."""
    parts = [p for p in path.split("/") if p]
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if parts == ["api", "v1"]:
        return _resource_list("", "v1")
    if parts == ["apis"]:
        groups = [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                   "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in _group_versions().items()]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    if len(parts) == 3 and parts[0] == "apis" and _group_versions().get(parts[1]) == parts[2]:
        return _resource_list(parts[1], parts[2])
    return None
