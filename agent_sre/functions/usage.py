"""Usage figures for the read-only reports, best effort: a figure the cluster cannot give is
`{"unavailable": why}`, and the report still succeeds.

- A pod's containers: CPU and memory from metrics.k8s.io (metrics-server), as `kubectl top pod`
  reads them: a read-only API, no access to the kubelet.
- A PersistentVolumeClaim: the kubelet's stats summary (`GET /stats/summary`, the entry of
  `pods[].volume[]` whose `pvcRef` names the claim), read through the API server's node proxy on
  the node of a running pod that mounts the claim: the kubelet measures a volume only while it is
  mounted, and metrics.k8s.io has no volume figures. The proxy needs `get nodes/proxy`, which
  opens the whole kubelet API to the function (docs/THREAT_MODEL.md), so this is opt-in:
  without AGENT_SRE_FUNCTIONS_KUBELET_STATS no pod is listed and no kubelet called.
"""

from __future__ import annotations

from typing import Any

from ..errors import KubeApiError
from .base import Context
from .permissions import KUBELET_STATS, PERMISSIONS, component_of, env_of

METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"
# FsStats, as the kubelet's stats API (k8s.io/kubelet/pkg/apis/stats/v1alpha1) names them
_FS_FIELDS = ("time", "usedBytes", "capacityBytes", "availableBytes", "inodes", "inodesUsed", "inodesFree")


_OPTED = ", ".join(rule.words() for rule in PERMISSIONS["check-pvc-status"].opted(KUBELET_STATS))
KUBELET_STATS_OFF = (f"kubelet stats are off: set {env_of(KUBELET_STATS)}=true and grant {_OPTED} "
                     f"(deploy/kubernetes/components/{component_of(KUBELET_STATS)} does both)")


def unavailable(source: str, exc: KubeApiError) -> dict[str, str]:
    hint = {403: " (the function's role does not grant it)", 404: " (not served by this cluster)"}.get(exc.status, "")
    return {"unavailable": f"{source} answered {exc}{hint}"}


async def pod_usage(ctx: Context, namespace: str, selector: str | None) -> dict[str, dict[str, Any]]:
    """Per pod name, `{"containers": [{"name", "cpu", "memory"}]}` as metrics.k8s.io gives them;
    a pod it has no figures for (yet) is missing. Every pod's entry is `unavailable` when the
    API is not there, or refused."""
    kube = ctx.kube
    try:
        listing = await kube.call(kube.custom.list_namespaced_custom_object(
            METRICS_GROUP, METRICS_VERSION, namespace, "pods", label_selector=selector))
    except KubeApiError as exc:
        return {"*": unavailable(METRICS_GROUP, exc)}
    return {item["metadata"]["name"]: {"window": item.get("window"), "containers": [
        {"name": c.get("name"), **(c.get("usage") or {})} for c in item.get("containers") or []]}
        for item in listing.get("items") or []}


def usage_of(found: dict[str, dict[str, Any]], pod: str) -> dict[str, Any]:
    return found.get(pod) or found.get("*") or {"unavailable": f"{METRICS_GROUP} has no figures for it yet"}


def _mounts(pod: dict[str, Any], claim: str) -> bool:
    return any((volume.get("persistentVolumeClaim") or {}).get("claimName") == claim
               for volume in pod.get("spec", {}).get("volumes") or [])


async def volume_usage(ctx: Context, namespace: str, claim: str) -> dict[str, Any]:
    """The claim's filesystem figures from the kubelet of a node that mounts it, with that node
    and pod; or `unavailable`, with why (first: AGENT_SRE_FUNCTIONS_KUBELET_STATS is off)."""
    if not ctx.settings.functions_kubelet_stats:
        return {"unavailable": KUBELET_STATS_OFF}
    kube = ctx.kube
    try:
        running = kube.core.list_namespaced_pod(namespace, field_selector="status.phase=Running")
        pods = (await kube.call(running)).get("items") or []
    except KubeApiError as exc:
        return unavailable("listing the pods that could mount it", exc)
    mounting = [p for p in pods if _mounts(p, claim) and p.get("spec", {}).get("nodeName")]
    if not mounting:
        return {"unavailable": "no running pod mounts it, and the kubelet measures a volume only while it is mounted"}
    pod, node = mounting[0]["metadata"]["name"], mounting[0]["spec"]["nodeName"]
    try:
        summary = await kube.proxied(kube.core.connect_get_node_proxy_with_path(
            node, "stats/summary", _preload_content=False))
    except KubeApiError as exc:
        return unavailable(f"the kubelet's stats summary on {node}", exc)
    for stats in summary.get("pods") or []:
        for volume in stats.get("volume") or []:
            if (volume.get("pvcRef") or {}) == {"name": claim, "namespace": namespace}:
                return {"node": node, "pod": pod, **{k: volume[k] for k in _FS_FIELDS if volume.get(k) is not None}}
    return {"unavailable": f"the kubelet on {node} has no figures for it yet"}


def describe_volume(usage: dict[str, Any]) -> str:
    """`8.0 GiB used of 10.0 GiB, 20% free`, or why there are no figures."""
    if "unavailable" in usage:
        return f"usage unavailable: {usage['unavailable']}"
    capacity, available = usage.get("capacityBytes"), usage.get("availableBytes")
    used = f"{usage.get('usedBytes', 0) / 2**30:.1f} GiB used"
    if not capacity or available is None:
        return used
    return f"{used} of {capacity / 2**30:.1f} GiB, {100 * available / capacity:.0f}% free"
