"""Usage figures the fake API (kube_api.py) serves, computed from the pods and claims it holds:
- the kubelet's stats summary, `GET /api/v1/nodes/{node}/proxy/stats/summary` (field names of
  k8s.io/kubelet/pkg/apis/stats/v1alpha1: `node`, `pods[].podRef`, `.containers[].cpu.usageNanoCores`,
  `.memory.workingSetBytes`, `.volume[]` with FsStats and `pvcRef`), for the Running pods on that node;
- metrics-server's `PodMetricsList`, `GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods`.
A claim's volume is 80% used; each container uses 120m of CPU and 200 MiB of memory.
"""

from __future__ import annotations

from typing import Any

STAMP = "2026-12-07T07:00:00Z"
NANO_CORES = 120_000_000  # 120m
WORKING_SET = 200 * 2**20
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_bytes(quantity: str) -> int:
    for suffix, factor in _UNITS.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def _running(objects: dict[tuple, dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for (group, plural, _, _), obj in objects.items()
            if (group, plural) == ("", "pods") and obj.get("status", {}).get("phase") == "Running"]


def _volume(objects: dict[tuple, dict[str, Any]], namespace: str, volume: dict[str, Any]) -> dict[str, Any] | None:
    claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
    claim = objects.get(("", "persistentvolumeclaims", namespace, claim_name)) if claim_name else None
    if claim is None:
        return None
    capacity = quantity_bytes(claim.get("status", {}).get("capacity", {}).get("storage", "0"))
    used = capacity * 4 // 5
    return {"time": STAMP, "availableBytes": capacity - used, "capacityBytes": capacity, "usedBytes": used,
            "inodesFree": 600_000, "inodes": 655_360, "inodesUsed": 55_360, "name": volume["name"],
            "pvcRef": {"name": claim_name, "namespace": namespace}}


def _container(name: str) -> dict[str, Any]:
    return {"name": name, "startTime": STAMP,
            "cpu": {"time": STAMP, "usageNanoCores": NANO_CORES, "usageCoreNanoSeconds": 9_876_543_210},
            "memory": {"time": STAMP, "usageBytes": WORKING_SET + 2**20, "workingSetBytes": WORKING_SET,
                       "rssBytes": WORKING_SET - 2**20, "pageFaults": 1200, "majorPageFaults": 3}}


def stats_summary(objects: dict[tuple, dict[str, Any]], node: str) -> dict[str, Any]:
    pods = []
    for pod in _running(objects):
        if pod.get("spec", {}).get("nodeName") != node:
            continue
        meta = pod["metadata"]
        volumes = [_volume(objects, meta["namespace"], v) for v in pod["spec"].get("volumes") or []]
        pods.append({"podRef": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                     "startTime": STAMP, "containers": [_container(c["name"]) for c in pod["spec"]["containers"]],
                     "volume": [v for v in volumes if v is not None]})
    return {"node": {"nodeName": node, "startTime": STAMP, "cpu": {"time": STAMP, "usageNanoCores": 4 * NANO_CORES},
                     "memory": {"time": STAMP, "workingSetBytes": 8 * WORKING_SET}}, "pods": pods}


def pod_metrics(objects: dict[tuple, dict[str, Any]], namespace: str, selected: Any) -> dict[str, Any]:
    items = [{"metadata": {"name": pod["metadata"]["name"], "namespace": namespace, "creationTimestamp": STAMP,
                           "labels": pod["metadata"].get("labels") or {}},
              "timestamp": STAMP, "window": "15.012s",
              "containers": [{"name": c["name"], "usage": {"cpu": f"{NANO_CORES}n", "memory": f"{WORKING_SET // 1024}Ki"}}
                             for c in pod["spec"]["containers"]]}
             for pod in _running(objects) if pod["metadata"].get("namespace") == namespace and selected(pod)]
    return {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}
