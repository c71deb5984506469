"""pod-restart: delete a crash-looping pod so that its controller replaces it.

Only a pod that a controller owns (a bare pod would not come back), only the very pod the alert
saw (the DELETE carries its UID as a precondition: a replacement of the same name is left alone,
FUNCTIONS.md §4), and not a pod that is healthy or already terminating.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions

from ..errors import KubeApiError, Skipped
from .base import Context, Done, Function
from .kube import condition, controller_of


async def get_or_skip(ctx: Context, namespace: str, name: str) -> dict[str, Any]:
    return await ctx.kube.existing(ctx.kube.core.read_namespaced_pod(name, namespace),
                                   f"pod {namespace}/{name} is gone: already replaced or deleted")


def healthy(pod: dict[str, Any]) -> bool:
    """Ready, every container ready and none waiting (a crash loop shows as waiting: CrashLoopBackOff)."""
    ready = condition(pod, "Ready")
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(ready and ready.get("status") == "True" and statuses
                and all(s.get("ready") and not (s.get("state") or {}).get("waiting") for s in statuses))


async def restart(ctx: Context, params: dict[str, str]) -> Done:
    name, namespace = params["name"], params["namespace"]
    pod = await get_or_skip(ctx, namespace, name)
    metadata = pod.get("metadata", {})
    owner = controller_of(pod)
    if owner is None:
        raise Skipped(f"pod {namespace}/{name} has no controller: deleted, it would not come back")
    if owner.get("kind") == "Node":  # a static pod's mirror: the kubelet runs it from a file, whatever the API says
        raise Skipped(f"pod {namespace}/{name} is a static pod of node {owner.get('name')}: restart it on the node")
    if metadata.get("deletionTimestamp"):
        raise Skipped(f"pod {namespace}/{name} is terminating already")
    if healthy(pod):
        raise Skipped(f"pod {namespace}/{name} is ready now, every container running")
    uid = metadata["uid"]
    options = V1DeleteOptions(api_version="v1", kind="DeleteOptions", propagation_policy="Background",
                              preconditions=V1Preconditions(uid=uid), dry_run=ctx.kube.dry_run_body)
    try:
        await ctx.kube.call(ctx.kube.core.delete_namespaced_pod(name, namespace, body=options))
    except KubeApiError as exc:
        if exc.status == 409:  # the UID precondition: the pod of that name is another one now
            raise Skipped(f"pod {namespace}/{name} was replaced meanwhile (UID {uid} is gone)") from exc
        if exc.status == 404:
            raise Skipped(f"pod {namespace}/{name} went away meanwhile") from exc
        raise
    ctx.did(f"deleted pod {namespace}/{name} (uid {uid}), owned by {owner.get('kind')} {owner.get('name')}")
    return Done(f"deleted pod {namespace}/{name}; {owner.get('kind')} {owner.get('name')} replaces it")


FUNCTIONS: dict[str, Function] = {"pod-restart": restart}
