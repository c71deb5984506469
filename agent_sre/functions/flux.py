"""flux-reconcile-*: ask a Flux controller to reconcile now, as `flux reconcile` does.

GET the object, then a merge patch of `reconcile.fluxcd.io/requestedAt` (FUNCTIONS.md §1). A
suspended object is refused, as flux refuses it; one that is Ready at its current generation is
skipped: the failure the alert saw has passed. Then, as flux does, poll every 2 s until the
controller has handled the request (`status.lastHandledReconcileAt` changed, the generation
observed, Ready no longer Unknown): Ready=True succeeds, Ready=False fails with the controller's
reason. The wait is bounded by AGENT_SRE_FUNCTIONS_FLUX_WAIT_S (0: no wait) and skipped in dry run,
where nothing was stored for a controller to see.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from ..errors import FunctionError, Skipped
from .base import Context, Done, Function, now_rfc3339
from .kube import MERGE_PATCH, condition

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
POLL_S = 2.0  # flux's own interval


class Kind(NamedTuple):
    group: str
    version: str
    plural: str
    kind: str


KINDS = {
    "flux-reconcile-kustomization": Kind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization"),
    "flux-reconcile-gitrepository": Kind("source.toolkit.fluxcd.io", "v1", "gitrepositories", "GitRepository"),
    "flux-reconcile-helmrelease": Kind("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease"),
}


def reconciler(kind: Kind) -> Function:
    async def reconcile(ctx: Context, params: dict[str, str]) -> Done:
        name, namespace = params["name"], params["namespace"]
        where = f"{kind.kind} {namespace}/{name}"
        read = ctx.kube.custom.get_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name)
        obj = await ctx.kube.existing(read, f"{where} does not exist (any more)")
        if obj.get("spec", {}).get("suspend"):
            raise FunctionError(f"{where} is suspended: flux refuses to reconcile it; resume it first")
        ready = condition(obj, "Ready")
        generation = obj.get("metadata", {}).get("generation")
        if ready and ready.get("status") == "True" and obj.get("status", {}).get("observedGeneration") == generation:
            raise Skipped(f"{where} is Ready at generation {generation} now: {ready.get('message', '')}".rstrip(": "))
        before = obj.get("status", {}).get("lastHandledReconcileAt")
        stamp = now_rfc3339(precise=True)
        patch = {"metadata": {"annotations": {REQUESTED_AT: stamp}}}
        await ctx.kube.call(ctx.kube.custom.patch_namespaced_custom_object(
            kind.group, kind.version, namespace, kind.plural, name, patch,
            dry_run=ctx.kube.dry_run, _content_type=MERGE_PATCH))
        ctx.did(f"annotated {where} {REQUESTED_AT}={stamp}")
        wait_s = ctx.settings.functions_flux_wait_s
        if ctx.kube.dry or wait_s <= 0:
            return Done(f"requested reconciliation of {where} at {stamp}")
        return await _handled(ctx, kind, namespace, name, before, wait_s)

    reconcile.__name__ = f"reconcile_{kind.plural}"
    return reconcile


async def _handled(ctx: Context, kind: Kind, namespace: str, name: str, before: Any, wait_s: float) -> Done:
    where = f"{kind.kind} {namespace}/{name}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        obj = await ctx.kube.call(ctx.kube.custom.get_namespaced_custom_object(
            kind.group, kind.version, namespace, kind.plural, name))
        status = obj.get("status", {})
        ready = condition(obj, "Ready") or {}
        if (status.get("lastHandledReconcileAt") != before and ready.get("status") in ("True", "False")
                and status.get("observedGeneration") == obj.get("metadata", {}).get("generation")):
            if ready["status"] == "True":
                return Done(f"{where} reconciled and Ready: {ready.get('message', '')}".rstrip(": "))
            raise FunctionError(f"{where} reconciled and is not Ready: {ready.get('reason', '')}: "
                                f"{ready.get('message', '')}".rstrip(": "))
        left = deadline - loop.time()
        if left <= 0:
            raise FunctionError(f"the reconciliation of {where} was requested, but its controller did not handle it "
                                f"within {wait_s:g} s (AGENT_SRE_FUNCTIONS_FLUX_WAIT_S); is it running?")
        await asyncio.sleep(min(POLL_S, left))


FUNCTIONS: dict[str, Function] = {name: reconciler(kind) for name, kind in KINDS.items()}
