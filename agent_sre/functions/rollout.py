"""deployment-rollout-restart: what `kubectl rollout restart` does (FUNCTIONS.md §2).

A strategic-merge patch of the pod template's `kubectl.kubernetes.io/restartedAt`, for a
Deployment, StatefulSet or DaemonSet. A paused Deployment is refused, as kubectl refuses it, and a
restart already stamped this second is skipped (kubectl's `{}` patch).
"""

from __future__ import annotations

from ..errors import FunctionError, Skipped
from .base import Context, Done, Function, now_rfc3339
from .kube import FIELD_MANAGER, STRATEGIC_MERGE_PATCH

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_KINDS = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}


async def restart(ctx: Context, params: dict[str, str]) -> Done:
    name, namespace = params["name"], params["namespace"]
    kind = params.get("kind", "deployment")
    apps = ctx.kube.apps
    read, patch = {
        "deployment": (apps.read_namespaced_deployment, apps.patch_namespaced_deployment),
        "statefulset": (apps.read_namespaced_stateful_set, apps.patch_namespaced_stateful_set),
        "daemonset": (apps.read_namespaced_daemon_set, apps.patch_namespaced_daemon_set),
    }[kind]
    where = f"{_KINDS[kind]} {namespace}/{name}"
    obj = await ctx.kube.existing(read(name, namespace), f"{where} does not exist (any more)")
    spec = obj.get("spec", {})
    if spec.get("paused"):
        raise FunctionError(f"{where} is paused: resume it before restarting it (kubectl refuses too)")
    stamp = now_rfc3339()
    annotations = (spec.get("template", {}).get("metadata") or {}).get("annotations") or {}
    if annotations.get(RESTARTED_AT) == stamp:
        raise Skipped(f"{where} was restarted this very second already")
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    await ctx.kube.call(patch(name, namespace, body, field_manager=FIELD_MANAGER, dry_run=ctx.kube.dry_run,
                              _content_type=STRATEGIC_MERGE_PATCH))
    ctx.did(f"set {RESTARTED_AT}={stamp} on the pod template of {where}")
    return Done(f"restarted {where}: its pods are replaced by a rolling update")


FUNCTIONS: dict[str, Function] = {"deployment-rollout-restart": restart}
