"""certificate-renew: what `cmctl renew` does (FUNCTIONS.md §3).

GET the cert-manager Certificate, set its `Issuing` condition (True, ManuallyTriggered, at the
object's generation), and PUT the whole object to its `status` subresource with its
resourceVersion: a concurrent change is a 409 and nothing is overwritten. One that is issuing
already is skipped.
"""

from __future__ import annotations

from typing import Any

from ..errors import Skipped
from .base import Context, Done, Function, now_rfc3339
from .kube import FIELD_MANAGER, condition

GROUP, VERSION, PLURAL = "cert-manager.io", "v1", "certificates"


def issuing_condition(certificate: dict[str, Any], now: str) -> dict[str, Any]:
    return {"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
            "message": "Certificate re-issuance manually triggered", "lastTransitionTime": now,
            "observedGeneration": certificate.get("metadata", {}).get("generation")}


async def renew(ctx: Context, params: dict[str, str]) -> Done:
    name, namespace = params["name"], params["namespace"]
    where = f"Certificate {namespace}/{name}"
    read = ctx.kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    certificate = await ctx.kube.existing(read, f"{where} does not exist (any more)")
    issuing = condition(certificate, "Issuing")
    if issuing and issuing.get("status") == "True":
        raise Skipped(f"{where} is being issued already ({issuing.get('reason', '')})")
    status = certificate.setdefault("status", {})
    conditions = status.get("conditions") or []
    status["conditions"] = conditions
    new = issuing_condition(certificate, now_rfc3339())
    if issuing is not None:  # replaced where it stands, as cert-manager's SetCertificateCondition does
        conditions[conditions.index(issuing)] = new
    else:
        conditions.append(new)
    await ctx.kube.call(ctx.kube.custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, certificate, field_manager=FIELD_MANAGER, dry_run=ctx.kube.dry_run))
    ctx.did(f"set the Issuing condition of {where}")
    return Done(f"{where} is re-issued by cert-manager")


FUNCTIONS: dict[str, Function] = {"certificate-renew": renew}
