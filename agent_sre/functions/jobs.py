"""job-retry: run a failed Job again, as a new Job from its spec (FUNCTIONS.md §6).

Only a Job whose `Failed` condition is True (`FailureTarget` is not terminal yet); one that
completed since, or still runs, is skipped. The copy drops what the apiserver generated for the
old Job (selector, controller labels, uid, resourceVersion, status, owner) or it would be refused
("selector not auto-generated"), and is named after the old one and the alert occurrence, so a
second retry of the same occurrence finds it (409) instead of running twice.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import KubeApiError, Skipped
from .base import Context, Done, Function
from .kube import FIELD_MANAGER, condition

GENERATED_LABELS = ("job-name", "batch.kubernetes.io/job-name", "controller-uid", "batch.kubernetes.io/controller-uid")
RETRY_OF = "agent-sre.io/retry-of"
_NAME_LIMIT = 63  # Job names end up in the job-name label, a label value


def retry_name(name: str, correlation_id: str) -> str:
    suffix = "-retry-" + hashlib.sha256(correlation_id.encode()).hexdigest()[:6]
    return name[: _NAME_LIMIT - len(suffix)].rstrip("-.") + suffix


def _without_generated(labels: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (labels or {}).items() if k not in GENERATED_LABELS}


def copy_of(job: dict[str, Any], name: str) -> dict[str, Any]:
    metadata = job.get("metadata", {})
    spec = dict(job.get("spec", {}))
    manual = spec.get("manualSelector") is True
    if not manual:
        spec.pop("selector", None)
    template = dict(spec.get("template", {}))
    template_metadata = dict(template.get("metadata") or {})
    if not manual:
        template_metadata["labels"] = _without_generated(template_metadata.get("labels"))
    template["metadata"] = template_metadata
    spec["template"] = template
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                   if not k.startswith(("batch.kubernetes.io/", "kubectl.kubernetes.io/last-applied"))}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": metadata.get("namespace"),
                     "labels": _without_generated(metadata.get("labels")),
                     "annotations": {**annotations, RETRY_OF: metadata.get("name", "")}},
        "spec": spec,
    }


async def retry(ctx: Context, params: dict[str, str]) -> Done:
    name, namespace = params["name"], params["namespace"]
    where = f"Job {namespace}/{name}"
    job = await ctx.kube.existing(ctx.kube.batch.read_namespaced_job(name, namespace),
                                  f"{where} does not exist (any more)")
    failed = condition(job, "Failed")
    if not (failed and failed.get("status") == "True"):
        complete = condition(job, "Complete")
        state = "has succeeded since" if complete and complete.get("status") == "True" else "has not failed"
        raise Skipped(f"{where} {state}: nothing to retry")
    new_name = retry_name(name, ctx.trigger.correlation_id)
    try:
        await ctx.kube.call(ctx.kube.batch.create_namespaced_job(
            namespace, copy_of(job, new_name), field_manager=FIELD_MANAGER, dry_run=ctx.kube.dry_run))
    except KubeApiError as exc:
        if exc.status == 409:
            raise Skipped(f"Job {namespace}/{new_name}, the retry of {name} for this alert, exists already") from exc
        raise
    ctx.did(f"created Job {namespace}/{new_name} from the spec of {where} ({failed.get('reason', 'Failed')})")
    return Done(f"retrying {where} as Job {namespace}/{new_name}")


FUNCTIONS: dict[str, Function] = {"job-retry": retry}
