"""Exactly what each function may do in the cluster: the source of its ServiceAccount's roles.

Read from the calls each function makes (and FUNCTIONS.md §8): verbs per HTTP method, a
subresource as `resource/subresource`. `CLUSTER` rules are bound cluster-wide (the objects live
in any namespace the alert names; the deny list is the function's own check, since RBAC cannot
deny), `OWN` rules only in AGENT_SRE_FUNCTIONS_NAMESPACE. tests/test_functions_rbac.py proves each
function works with exactly these and fails without any one of them.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Rule(NamedTuple):
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def as_manifest(self) -> dict[str, Any]:
        return {"apiGroups": [self.group], "resources": list(self.resources), "verbs": list(self.verbs)}


class Permissions(NamedTuple):
    cluster: tuple[Rule, ...] = ()
    own: tuple[Rule, ...] = ()  # in the functions' own namespace only


def _flux(group: str, plural: str) -> Permissions:
    return Permissions(cluster=(Rule(group, (plural,), ("get", "patch")),))


PERMISSIONS: dict[str, Permissions] = {
    "flux-reconcile-kustomization": _flux("kustomize.toolkit.fluxcd.io", "kustomizations"),
    "flux-reconcile-gitrepository": _flux("source.toolkit.fluxcd.io", "gitrepositories"),
    "flux-reconcile-helmrelease": _flux("helm.toolkit.fluxcd.io", "helmreleases"),
    "pod-restart": Permissions(cluster=(Rule("", ("pods",), ("get", "delete")),)),
    "pod-check-status": Permissions(cluster=(Rule("", ("pods", "events"), ("list",)),
                                             Rule("metrics.k8s.io", ("pods",), ("list",)))),
    # nodes/proxy: the kubelet's stats summary, the only API with a volume's usage. It opens the
    # whole kubelet API (docs/THREAT_MODEL.md); taken away, the report says usage is unavailable.
    "check-pvc-status": Permissions(cluster=(Rule("", ("persistentvolumeclaims",), ("get",)),
                                             Rule("", ("pods", "events"), ("list",)),
                                             Rule("", ("nodes/proxy",), ("get",)))),
    "deployment-rollout-restart": Permissions(cluster=(
        Rule("apps", ("deployments", "statefulsets", "daemonsets"), ("get", "patch")),)),
    "scale-pod": Permissions(cluster=(Rule("apps", ("deployments",), ("get",)),
                                      Rule("apps", ("deployments/scale",), ("get", "update")),
                                      Rule("autoscaling", ("horizontalpodautoscalers",), ("list", "patch")))),
    "certificate-renew": Permissions(cluster=(Rule("cert-manager.io", ("certificates",), ("get",)),
                                              Rule("cert-manager.io", ("certificates/status",), ("update",)))),
    "job-retry": Permissions(cluster=(Rule("batch", ("jobs",), ("get", "create")),)),
    "node-disk-cleanup": Permissions(cluster=(Rule("", ("nodes",), ("get",)),),
                                     own=(Rule("batch", ("jobs",), ("list", "create")),)),
    "escalate": Permissions(),  # no Kubernetes API at all: its pod gets no token
}
