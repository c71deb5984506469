"""flux-reconcile-*: ask a Flux controller to reconcile now, as `flux reconcile` does.

GET the object, then a merge patch of `reconcile.fluxcd.io/requestedAt` (FUNCTIONS.md §1). A
suspended object is refused, as flux refuses it; one that is Ready at its current generation is
skipped: the failure the alert saw has passed. Then, as flux does, poll every 2 s until the
controller has handled the request (`status.lastHandledReconcileAt` changed, the generation
observed, Ready no longer Unknown): Ready=True succeeds, Ready=False fails with the controller's
reason. The wait is bounded by AGENT_SRE_FUNCTIONS_FLUX_WAIT_S (0: no wait), and by 90% of the
function's timeout, so that running out says what it waited for; it is skipped in dry run, where
nothing was stored for a controller to see.

With AGENT_SRE_FUNCTIONS_FLUX_WITH_SOURCE (`flux reconcile --with-source`, flux2
`reconcile_with_source.go`), a Kustomization's or HelmRelease's source is reconciled first, by
the same annotation, and waited for until its `status.lastHandledReconcileAt` is the value sent
and it is Ready, all within the same bound; only then is the object annotated. A Kustomization's
source is its `spec.sourceRef`; a HelmRelease's is its `spec.chartRef`, else the HelmChart
`<namespace>-<name>` that helm-controller made of its chart template, and a HelmChart's own
source (`spec.sourceRef`) is reconciled before it, as flux always does. An OCI HelmRepository is
left alone (flux: "reconciliation not supported by the object").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import FunctionError, Skipped
from .base import Context, Done, Function, now_rfc3339
from .kube import MERGE_PATCH, condition

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
POLL_S = 2.0  # flux's own interval
_SHARE_OF_TIMEOUT = 0.9  # of the function's timeout, at most, spent waiting for controllers


class Kind(NamedTuple):
    group: str
    version: str
    plural: str
    kind: str


_SOURCE = "source.toolkit.fluxcd.io"
SOURCES = {kind.kind: kind for kind in (
    Kind(_SOURCE, "v1", "gitrepositories", "GitRepository"), Kind(_SOURCE, "v1", "ocirepositories", "OCIRepository"),
    Kind(_SOURCE, "v1", "buckets", "Bucket"), Kind(_SOURCE, "v1", "helmrepositories", "HelmRepository"),
    Kind(_SOURCE, "v1", "helmcharts", "HelmChart"))}
# The source kinds flux reconciles first, per kind of object (its getSource switches).
SOURCE_KINDS = {"Kustomization": ("GitRepository", "OCIRepository", "Bucket"),
                "HelmRelease": ("HelmChart", "OCIRepository"),
                "HelmChart": ("HelmRepository", "GitRepository", "Bucket")}

KINDS = {
    "flux-reconcile-kustomization": Kind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization"),
    "flux-reconcile-gitrepository": SOURCES["GitRepository"],
    "flux-reconcile-helmrelease": Kind("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease"),
}


class Ref(NamedTuple):
    kind: Kind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.kind} {self.namespace}/{self.name}"


def _source_of(obj: dict[str, Any]) -> Ref:
    """The source flux reconciles before `obj` (a Kustomization, HelmRelease or HelmChart)."""
    meta, spec, kind = obj["metadata"], obj.get("spec") or {}, obj.get("kind", "")
    if kind == "HelmRelease" and not spec.get("chartRef"):
        template = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
        namespace = template.get("namespace") or meta["namespace"]
        return Ref(SOURCES["HelmChart"], namespace, f"{meta['namespace']}-{meta['name']}")
    ref = spec.get("chartRef") if kind == "HelmRelease" else spec.get("sourceRef")
    ref = ref or {}
    if ref.get("kind") not in SOURCE_KINDS[kind]:
        raise FunctionError(f"{kind} {meta['namespace']}/{meta['name']}: its source is a {ref.get('kind')!r}, which "
                            f"flux reconcile --with-source does not reconcile (only {', '.join(SOURCE_KINDS[kind])})")
    namespace = meta["namespace"] if kind == "HelmChart" else ref.get("namespace") or meta["namespace"]
    return Ref(SOURCES[ref["kind"]], namespace, ref["name"])


def _get(ctx: Context, ref: Ref) -> Any:
    return ctx.kube.custom.get_namespaced_custom_object(ref.kind.group, ref.kind.version, ref.namespace,
                                                        ref.kind.plural, ref.name)


async def _read(ctx: Context, ref: Ref) -> dict[str, Any]:
    return await ctx.kube.call(_get(ctx, ref))


async def _request(ctx: Context, ref: Ref) -> str:
    stamp = now_rfc3339(precise=True)
    patch = {"metadata": {"annotations": {REQUESTED_AT: stamp}}}
    await ctx.kube.call(ctx.kube.custom.patch_namespaced_custom_object(
        ref.kind.group, ref.kind.version, ref.namespace, ref.kind.plural, ref.name, patch,
        dry_run=ctx.kube.dry_run, _content_type=MERGE_PATCH))
    ctx.did(f"annotated {ref} {REQUESTED_AT}={stamp}")
    return stamp


class Wait(NamedTuple):
    seconds: float  # 0: no wait
    deadline: float  # on the loop's clock
    setting: str  # what bounded it, for the message


def _wait_of(ctx: Context) -> Wait:
    timeout = ctx.settings.functions_timeouts.get(ctx.trigger.function, ctx.settings.functions_timeout_s)
    seconds, setting = ctx.settings.functions_flux_wait_s, "AGENT_SRE_FUNCTIONS_FLUX_WAIT_S"
    if ctx.kube.dry:
        seconds = 0.0
    elif seconds > _SHARE_OF_TIMEOUT * timeout:
        seconds, setting = _SHARE_OF_TIMEOUT * timeout, "90% of the function's timeout"
    return Wait(seconds, asyncio.get_running_loop().time() + seconds, setting)


async def _until(ctx: Context, ref: Ref, handled: Callable[[dict[str, Any]], bool], wait: Wait, late: str) -> dict[str, Any]:
    """Poll `ref` every POLL_S until `handled` and Ready is True or False at its generation; the
    object, or FunctionError(`late` and the bound) when the wait's deadline passes first."""
    loop = asyncio.get_running_loop()
    while True:
        obj = await _read(ctx, ref)
        ready = condition(obj, "Ready") or {}
        if (handled(obj.get("status", {})) and ready.get("status") in ("True", "False")
                and obj.get("status", {}).get("observedGeneration") == obj.get("metadata", {}).get("generation")):
            return obj
        left = wait.deadline - loop.time()
        if left <= 0:
            raise FunctionError(f"{late} within {wait.seconds:g} s ({wait.setting}); is its controller running?")
        await asyncio.sleep(min(POLL_S, left))


def _ready_message(obj: dict[str, Any]) -> str:
    ready = condition(obj, "Ready") or {}
    return f"{ready.get('reason', '')}: {ready.get('message', '')}".strip(": ")


async def _reconcile_source(ctx: Context, ref: Ref, wait: Wait, of: str) -> list[str]:
    """`flux reconcile source …` of `ref`, its own source first if it is a HelmChart; what was
    reconciled, in order. Fails (before `of` is touched) when a source is gone, suspended, not
    handled in time or not Ready once handled."""
    try:
        source = await _read(ctx, ref)
    except FunctionError as exc:
        raise FunctionError(f"the source of {of}, {ref}, cannot be read: {exc}") from exc
    if ref.kind.kind == "HelmRepository" and (source.get("spec") or {}).get("type") == "oci":
        return [f"{ref} (an OCI HelmRepository: nothing to reconcile)"]
    if (source.get("spec") or {}).get("suspend"):
        raise FunctionError(f"the source of {of}, {ref}, is suspended: flux refuses to reconcile it; resume it first")
    done = await _reconcile_source(ctx, _source_of(source), wait, str(ref)) if ref.kind.kind == "HelmChart" else []
    stamp = await _request(ctx, ref)
    if wait.seconds <= 0:
        return [*done, f"{ref} (requested)"]
    late = (f"{of} was not annotated: its source {ref} did not handle the request {REQUESTED_AT}={stamp} "
            "(status.lastHandledReconcileAt, then Ready)")
    handled = await _until(ctx, ref, lambda status: status.get("lastHandledReconcileAt") == stamp, wait, late)
    if (condition(handled, "Ready") or {}).get("status") != "True":
        raise FunctionError(f"the source of {of}, {ref}, reconciled and is not Ready: {_ready_message(handled)}; "
                            f"{of} was not annotated")
    return [*done, str(ref)]


def reconciler(kind: Kind) -> Function:
    async def reconcile(ctx: Context, params: dict[str, str]) -> Done:
        ref = Ref(kind, params["namespace"], params["name"])
        obj = await ctx.kube.existing(_get(ctx, ref), f"{ref} does not exist (any more)")
        if obj.get("spec", {}).get("suspend"):
            raise FunctionError(f"{ref} is suspended: flux refuses to reconcile it; resume it first")
        ready = condition(obj, "Ready")
        generation = obj.get("metadata", {}).get("generation")
        if ready and ready.get("status") == "True" and obj.get("status", {}).get("observedGeneration") == generation:
            raise Skipped(f"{ref} is Ready at generation {generation} now: {ready.get('message', '')}".rstrip(": "))
        before = obj.get("status", {}).get("lastHandledReconcileAt")
        wait = _wait_of(ctx)
        sources: list[str] = []
        if ctx.settings.functions_flux_with_source and kind.kind in SOURCE_KINDS:
            sources = await _reconcile_source(ctx, _source_of({"kind": kind.kind, **obj}), wait, str(ref))
        after = f" (its source reconciled first: {', then '.join(sources)})" if sources else ""
        stamp = await _request(ctx, ref)
        if wait.seconds <= 0:
            return Done(f"requested reconciliation of {ref} at {stamp}{after}")
        late = f"the reconciliation of {ref} was requested, but its controller did not handle it"
        handled = await _until(ctx, ref, lambda status: status.get("lastHandledReconcileAt") != before, wait, late)
        ready = condition(handled, "Ready") or {}
        if ready.get("status") == "True":
            return Done(f"{ref} reconciled and Ready: {ready.get('message', '')}".rstrip(": ") + after)
        raise FunctionError(f"{ref} reconciled and is not Ready: {ready.get('reason', '')}: "
                            f"{ready.get('message', '')}".rstrip(": ") + after)

    reconcile.__name__ = f"reconcile_{kind.plural}"
    return reconcile


FUNCTIONS: dict[str, Function] = {name: reconciler(kind) for name, kind in KINDS.items()}
