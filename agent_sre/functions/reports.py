"""pod-check-status and check-pvc-status: read-only reports, returned in the result.

Status, conditions, the latest events and usage (`usage.py`: best effort, `unavailable` with
why) of the pods (a namespace, or those a label selector picks) or of a PersistentVolumeClaim,
and for a claim whether its volume can be expanded (its StorageClass's `allowVolumeExpansion`,
best effort too: `expandable` None with why).
They read, never write; at most `_MAX_PODS` pods and `_MAX_EVENTS` events each, so a result
stays small.
"""

from __future__ import annotations

from typing import Any

from ..errors import KubeApiError, Skipped
from .base import Context, Done, Function
from .usage import describe_volume, pod_usage, unavailable, usage_of, volume_usage

_MAX_PODS = 20
_MAX_EVENTS = 10
# The class annotation that came before spec.storageClassName, still read first (GetPersistentVolumeClaimClass).
_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"


async def _events(ctx: Context, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    listing = await ctx.kube.call(ctx.kube.core.list_namespaced_event(namespace, field_selector=selector))
    events = sorted(listing.get("items") or [], key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    return [{"type": e.get("type"), "reason": e.get("reason"), "message": e.get("message"), "count": e.get("count"),
             "last": e.get("lastTimestamp") or e.get("eventTime")} for e in events[-_MAX_EVENTS:]]


def _conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: c.get(k) for k in ("type", "status", "reason", "message") if c.get(k) is not None}
            for c in obj.get("status", {}).get("conditions") or []]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for status in pod.get("status", {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        current = next(iter(state), None)
        found.append({"name": status.get("name"), "ready": status.get("ready"),
                      "restarts": status.get("restartCount"), "state": current,
                      "reason": (state.get(current) or {}).get("reason") if current else None})
    return found


async def pod_status(ctx: Context, params: dict[str, str]) -> Done:
    namespace, selector = params["namespace"], params.get("selector")
    listing = await ctx.kube.call(ctx.kube.core.list_namespaced_pod(namespace, label_selector=selector))
    pods = listing.get("items") or []
    if not pods:
        raise Skipped(f"no pods in {namespace}" + (f" with {selector}" if selector else ""))
    usage = await pod_usage(ctx, namespace, selector)
    report = []
    for pod in pods[:_MAX_PODS]:
        name = pod["metadata"]["name"]
        report.append({"name": name, "phase": pod.get("status", {}).get("phase"), "node": pod.get("spec", {}).get("nodeName"),
                       "conditions": _conditions(pod), "containers": _containers(pod),
                       "usage": usage_of(usage, name), "events": await _events(ctx, namespace, "Pod", name)})
    unready = [p["name"] for p in report if any(not c["ready"] for c in p["containers"])]
    message = f"{len(pods)} pods in {namespace}" + (f" ({selector})" if selector else "")
    message += f", not ready: {', '.join(unready)}" if unready else ", all ready"
    if "*" in usage:
        message += f"; usage unavailable: {usage['*']['unavailable']}"
    return Done(message, {"pods": report, "total": len(pods)})


def _class_of(claim: dict[str, Any]) -> str | None:
    annotations = claim.get("metadata", {}).get("annotations") or {}
    return annotations.get(_BETA_CLASS) or claim.get("spec", {}).get("storageClassName") or None


async def _expansion(ctx: Context, storage_class: str | None) -> dict[str, Any]:
    """Whether the claim's volume can be expanded, as the apiserver's admission decides it: its
    StorageClass's `allowVolumeExpansion` (absent: false), and who provisions it; `expandable`
    None with why when the claim names no class, or the class cannot be read."""
    if storage_class is None:
        return {"expandable": None, "unavailable": "the claim names no StorageClass"}
    try:
        found = await ctx.kube.call(ctx.kube.storage.read_storage_class(storage_class))
    except KubeApiError as exc:
        if exc.status == 404:
            return {"expandable": None, "unavailable": f"StorageClass {storage_class} does not exist"}
        return {"expandable": None, **unavailable(f"StorageClass {storage_class}", exc)}
    return {"expandable": bool(found.get("allowVolumeExpansion")), "provisioner": found.get("provisioner")}


def _describe_expansion(expansion: dict[str, Any]) -> str:
    if expansion["expandable"] is None:
        return f"expansion unknown: {expansion['unavailable']}"
    return "expandable" if expansion["expandable"] else "not expandable"


async def pvc_status(ctx: Context, params: dict[str, str]) -> Done:
    name, namespace = params["name"], params["namespace"]
    claim = await ctx.kube.existing(ctx.kube.core.read_namespaced_persistent_volume_claim(name, namespace),
                                    f"PersistentVolumeClaim {namespace}/{name} does not exist")
    spec, status, storage_class = claim.get("spec", {}), claim.get("status", {}), _class_of(claim)
    report = {"phase": status.get("phase"), "capacity": (status.get("capacity") or {}).get("storage"),
              "requested": ((spec.get("resources") or {}).get("requests") or {}).get("storage"),
              "storageClass": storage_class, "volume": spec.get("volumeName"),
              "accessModes": status.get("accessModes") or spec.get("accessModes"), "conditions": _conditions(claim),
              "expansion": await _expansion(ctx, storage_class), "usage": await volume_usage(ctx, namespace, name),
              "events": await _events(ctx, namespace, "PersistentVolumeClaim", name)}
    return Done(f"PersistentVolumeClaim {namespace}/{name}: {report['phase']}, {report['capacity'] or '?'} "
                f"of {report['requested'] or '?'} requested, {_describe_expansion(report['expansion'])}; "
                f"{describe_volume(report['usage'])}", report)


FUNCTIONS: dict[str, Function] = {"pod-check-status": pod_status, "check-pvc-status": pvc_status}
