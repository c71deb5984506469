"""scale-pod: one replica more for a Deployment, never above AGENT_SRE_FUNCTIONS_MAX_REPLICAS.

When a HorizontalPodAutoscaler targets the Deployment, a manual scale would be undone by it (it
clamps to [min, max], FUNCTIONS.md §5), so its `maxReplicas` is raised by one instead. Otherwise
the `scale` subresource is read and written back with its resourceVersion (kubectl scale
`--current-replicas`): a concurrent change makes it a 409, not a double step. A `replicas`
parameter, when the alert gives one, is a further bound on the target.
"""

from __future__ import annotations

from typing import Any

from ..errors import Skipped
from .base import Context, Done, Function
from .kube import FIELD_MANAGER, MERGE_PATCH


async def _hpa_for(ctx: Context, namespace: str, name: str) -> dict[str, Any] | None:
    listing = await ctx.kube.call(ctx.kube.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace))
    for hpa in listing.get("items") or []:
        target = hpa.get("spec", {}).get("scaleTargetRef", {})
        group = target.get("apiVersion", "").partition("/")[0]
        if target.get("kind") == "Deployment" and target.get("name") == name and group == "apps":
            return hpa
    return None


def _target(current: int, ceiling: int, bound: str | None) -> int:
    target = min(current + 1, ceiling)
    return min(target, int(bound)) if bound else target


async def scale(ctx: Context, params: dict[str, str]) -> Done:
    name, namespace = params["name"], params["namespace"]
    ceiling = ctx.settings.functions_max_replicas
    where = f"Deployment {namespace}/{name}"
    await ctx.kube.existing(ctx.kube.apps.read_namespaced_deployment(name, namespace),
                            f"{where} does not exist: only a Deployment is scaled")
    hpa = await _hpa_for(ctx, namespace, name)
    if hpa is not None:
        hpa_name = hpa["metadata"]["name"]
        current = int(hpa["spec"]["maxReplicas"])
        target = _target(current, ceiling, params.get("replicas"))
        if target <= current:
            raise Skipped(f"HorizontalPodAutoscaler {namespace}/{hpa_name} allows {current} replicas already "
                          f"(ceiling {ceiling})")
        await ctx.kube.call(ctx.kube.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            hpa_name, namespace, {"spec": {"maxReplicas": target}}, field_manager=FIELD_MANAGER,
            dry_run=ctx.kube.dry_run, _content_type=MERGE_PATCH))
        ctx.did(f"raised maxReplicas of HorizontalPodAutoscaler {namespace}/{hpa_name} from {current} to {target}")
        return Done(f"{where} may grow to {target} replicas (its HorizontalPodAutoscaler decides when)")
    current_scale = await ctx.kube.call(ctx.kube.apps.read_namespaced_deployment_scale(name, namespace))
    current = int(current_scale.get("spec", {}).get("replicas") or 0)
    target = _target(current, ceiling, params.get("replicas"))
    if target <= current:
        raise Skipped(f"{where} runs {current} replicas already (ceiling {ceiling})")
    current_scale["spec"]["replicas"] = target  # resourceVersion kept: a concurrent scale is a 409
    await ctx.kube.call(ctx.kube.apps.replace_namespaced_deployment_scale(
        name, namespace, current_scale, field_manager=FIELD_MANAGER, dry_run=ctx.kube.dry_run))
    ctx.did(f"scaled {where} from {current} to {target} replicas")
    return Done(f"scaled {where} from {current} to {target} replicas")


FUNCTIONS: dict[str, Function] = {"scale-pod": scale}
