"""`static`: the alert names its own remediation in the `lambda_function` annotation."""

from __future__ import annotations

import orjson

from ..schemas.alert import Alert
from ..schemas.decision import EvidenceKind, Proposal
from .base import SelectorContext


class StaticSelector:
    """Reads `lambda_function` and, optionally, `lambda_parameters` (a JSON object) annotations.

    Without `lambda_parameters` the chain fills the parameters from the labels; with it, the chain
    checks every value against them.
    """

    name = "static"
    evidence = EvidenceKind.ANNOTATION

    async def select(self, alert: Alert) -> Proposal | None:
        function = alert.annotations.get("lambda_function", "").strip()
        if not function:
            return None
        raw = alert.annotations.get("lambda_parameters")
        parameters = {} if raw is None else _parse_parameters(raw)
        return Proposal(
            lambda_function=function,
            parameters=parameters,
            confidence=1.0,
            reasoning=f"the alert's lambda_function annotation names {function}",
        )


def _parse_parameters(raw: str) -> dict[str, str]:
    try:
        parameters = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"annotation lambda_parameters is not JSON: {exc}") from exc
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        raise ValueError("annotation lambda_parameters must be a JSON object of strings")
    return parameters


def create(context: SelectorContext) -> StaticSelector:
    return StaticSelector()
