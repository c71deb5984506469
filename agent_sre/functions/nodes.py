"""node-disk-cleanup: a Job pinned to the node, from the configured template.

Image, command and host paths come from settings (AGENT_SRE_NODE_CLEANUP_*), never from the
alert: the only value taken from the trigger is the node's (validated) name, used as `nodeName`.
The Job runs in AGENT_SRE_FUNCTIONS_NAMESPACE, each host path mounted at /host<path>. A node that
does not exist is skipped, and so is one whose cleanup Job still runs.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import KubeApiError, Skipped
from ..settings import Settings
from .base import Context, Done, Function
from .kube import FIELD_MANAGER

NODE_LABEL = "agent-sre.io/cleanup-node"
_MANAGED = {"app.kubernetes.io/managed-by": "agent-sre", "app.kubernetes.io/name": "node-disk-cleanup"}


def cleanup_job(settings: Settings, node: str, correlation_id: str) -> dict[str, Any]:
    digest = hashlib.sha256(f"{node}/{correlation_id}".encode()).hexdigest()[:10]
    volumes, mounts = [], []
    for index, path in enumerate(settings.node_cleanup_paths):
        volumes.append({"name": f"host-{index}", "hostPath": {"path": path, "type": "Directory"}})
        mounts.append({"name": f"host-{index}", "mountPath": f"/host{path}"})
    labels = {**_MANAGED, NODE_LABEL: node[:63].rstrip("-.")}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"node-disk-cleanup-{digest}", "namespace": settings.functions_namespace,
                     "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeName": node,
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "tolerations": [{"operator": "Exists"}],  # a node under disk pressure is tainted
                    "containers": [{"name": "cleanup", "image": settings.node_cleanup_image,
                                    "command": list(settings.node_cleanup_command), "volumeMounts": mounts,
                                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}],
                    "volumes": volumes,
                },
            },
        },
    }


async def cleanup(ctx: Context, params: dict[str, str]) -> Done:
    node = params["node"]
    await ctx.kube.existing(ctx.kube.core.read_node(node), f"node {node} does not exist (any more)")
    namespace = ctx.settings.functions_namespace
    job = cleanup_job(ctx.settings, node, ctx.trigger.correlation_id)
    running = await ctx.kube.call(ctx.kube.batch.list_namespaced_job(
        namespace, label_selector=f"{NODE_LABEL}={job['metadata']['labels'][NODE_LABEL]}"))
    for other in running.get("items") or []:
        if (other.get("status") or {}).get("active"):
            raise Skipped(f"Job {namespace}/{other['metadata']['name']} cleans node {node} already")
    try:
        await ctx.kube.call(ctx.kube.batch.create_namespaced_job(
            namespace, job, field_manager=FIELD_MANAGER, dry_run=ctx.kube.dry_run))
    except KubeApiError as exc:
        if exc.status == 409:
            raise Skipped(f"Job {namespace}/{job['metadata']['name']} for this alert exists already") from exc
        raise
    ctx.did(f"created Job {namespace}/{job['metadata']['name']} on node {node} "
            f"({settings_summary(ctx.settings)})")
    return Done(f"cleaning node {node} with Job {namespace}/{job['metadata']['name']}")


def settings_summary(settings: Settings) -> str:
    return f"image {settings.node_cleanup_image}, paths {','.join(settings.node_cleanup_paths)}"


FUNCTIONS: dict[str, Function] = {"node-disk-cleanup": cleanup}
