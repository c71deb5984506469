"""Exactly what each function may do in the cluster: the source of its ServiceAccount's roles.

Read from the calls each function makes (and FUNCTIONS.md §8): verbs per HTTP method, a
subresource as `resource/subresource`. `CLUSTER` rules are bound cluster-wide (the objects live
in any namespace the alert names; the deny list is the function's own check, since RBAC cannot
deny), `OWN` rules only in AGENT_SRE_FUNCTIONS_NAMESPACE. A rule with `opt_in` is needed only when
that setting is on, and granted only by its kustomize Component. tests/test_functions_rbac.py proves
each function works with exactly these and fails without any one of them, with the opt-ins off and on.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Rule(NamedTuple):
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    # Opt-in: the setting (a Settings field) that turns on the call needing it. Such a rule is left
    # out of the default manifests; the kustomize Component `component_of(opt_in)` adds it and sets
    # the setting to true (manifests.py).
    opt_in: str | None = None

    def as_manifest(self) -> dict[str, Any]:
        return {"apiGroups": [self.group], "resources": list(self.resources), "verbs": list(self.verbs)}

    def words(self) -> str:
        """`get nodes/proxy`, as a report or a comment names it."""
        return f"{'/'.join(self.verbs)} {'/'.join(self.resources)}"


class Permissions(NamedTuple):
    cluster: tuple[Rule, ...] = ()
    own: tuple[Rule, ...] = ()  # in the functions' own namespace only

    def opted(self, opt_in: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.cluster + self.own if rule.opt_in == opt_in)


KUBELET_STATS = "functions_kubelet_stats"  # AGENT_SRE_FUNCTIONS_KUBELET_STATS
FLUX_WITH_SOURCE = "functions_flux_with_source"  # AGENT_SRE_FUNCTIONS_FLUX_WITH_SOURCE
# Every opt-in setting a rule names, and what turning it on costs.
OPT_INS = {KUBELET_STATS: "get nodes/proxy opens the whole kubelet API of every node, exec into any container "
                          "included, and list pods reads every pod's spec (docs/THREAT_MODEL.md, threat 14)",
           FLUX_WITH_SOURCE: "patch on every Flux source cluster-wide is not limited to the annotation: a stolen "
                             "token could point a source at another repository, whose manifests Flux then applies "
                             "(docs/THREAT_MODEL.md, threat 15)"}


def env_of(opt_in: str) -> str:
    return f"AGENT_SRE_{opt_in.upper()}"


def component_of(opt_in: str) -> str:
    """The Component's folder under deploy/kubernetes/components: `kubelet-stats`."""
    return opt_in.removeprefix("functions_").replace("_", "-")


def _flux(group: str, plural: str, *sources: str) -> Permissions:
    """get/patch of the object, and (opt-in, `--with-source`) of the source kinds flux reconciles first."""
    opted = (Rule("source.toolkit.fluxcd.io", sources, ("get", "patch"), FLUX_WITH_SOURCE),) if sources else ()
    return Permissions(cluster=(Rule(group, (plural,), ("get", "patch")), *opted))


PERMISSIONS: dict[str, Permissions] = {
    # The sources as flux.py's SOURCE_KINDS: a Kustomization's sourceRef; a HelmRelease's HelmChart
    # (and the chart's own source) or its chartRef.
    "flux-reconcile-kustomization": _flux("kustomize.toolkit.fluxcd.io", "kustomizations",
                                          "gitrepositories", "ocirepositories", "buckets"),
    "flux-reconcile-gitrepository": _flux("source.toolkit.fluxcd.io", "gitrepositories"),
    "flux-reconcile-helmrelease": _flux("helm.toolkit.fluxcd.io", "helmreleases", "helmcharts", "helmrepositories",
                                        "gitrepositories", "buckets", "ocirepositories"),
    "pod-restart": Permissions(cluster=(Rule("", ("pods",), ("get", "delete")),)),
    "pod-check-status": Permissions(cluster=(Rule("", ("pods", "events"), ("list",)),
                                             Rule("metrics.k8s.io", ("pods",), ("list",)))),
    # The claim's StorageClass: whether its volume can be expanded (allowVolumeExpansion).
    # Usage, opt-in: the pods that mount the claim, then the kubelet's stats summary of their node
    # (nodes/proxy, the only API with a volume's usage). nodes/proxy opens the whole kubelet API
    # (docs/THREAT_MODEL.md, threat 14): without AGENT_SRE_FUNCTIONS_KUBELET_STATS the report says
    # usage is off, and neither rule is granted.
    "check-pvc-status": Permissions(cluster=(Rule("", ("persistentvolumeclaims",), ("get",)),
                                             Rule("", ("events",), ("list",)),
                                             Rule("storage.k8s.io", ("storageclasses",), ("get",)),
                                             Rule("", ("pods",), ("list",), KUBELET_STATS),
                                             Rule("", ("nodes/proxy",), ("get",), KUBELET_STATS))),
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
