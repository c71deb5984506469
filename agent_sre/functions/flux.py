"""flux-reconcile-*: ask a Flux controller to reconcile now, as `flux reconcile` does.

GET the object, then a merge patch of `reconcile.fluxcd.io/requestedAt` (FUNCTIONS.md §1). A
suspended object is refused, as flux refuses it; one that is Ready at its current generation is
skipped: the failure the alert saw has passed. Flux's wait for `lastHandledReconcileAt` is left to
the alert: the result says the request was accepted, and the worker judges whether it resolved.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import FunctionError, KubeApiError, Skipped
from .base import Context, Done, Function, now_rfc3339
from .kube import MERGE_PATCH, condition

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


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
        try:
            obj = await ctx.kube.call(ctx.kube.custom.get_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, name))
        except KubeApiError as exc:
            if exc.status == 404:
                raise Skipped(f"{where} does not exist (any more)") from exc
            raise
        if obj.get("spec", {}).get("suspend"):
            raise FunctionError(f"{where} is suspended: flux refuses to reconcile it; resume it first")
        ready = condition(obj, "Ready")
        generation = obj.get("metadata", {}).get("generation")
        if ready and ready.get("status") == "True" and obj.get("status", {}).get("observedGeneration") == generation:
            raise Skipped(f"{where} is Ready at generation {generation} now: {ready.get('message', '')}".rstrip(": "))
        stamp = now_rfc3339(precise=True)
        patch = {"metadata": {"annotations": {REQUESTED_AT: stamp}}}
        await ctx.kube.call(ctx.kube.custom.patch_namespaced_custom_object(
            kind.group, kind.version, namespace, kind.plural, name, patch,
            dry_run=ctx.kube.dry_run, _content_type=MERGE_PATCH))
        ctx.did(f"annotated {where} {REQUESTED_AT}={stamp}")
        return Done(f"requested reconciliation of {where} at {stamp}")

    reconcile.__name__ = f"reconcile_{kind.plural}"
    return reconcile


FUNCTIONS: dict[str, Function] = {name: reconciler(kind) for name, kind in KINDS.items()}
