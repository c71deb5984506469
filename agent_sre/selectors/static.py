"""`static`: the alert names its own remediation in the `lambda_function` annotation."""

from __future__ import annotations

import orjson

from ..schemas.alert import Alert
from ..schemas.decision import Proposal
from .base import SelectorContext


class StaticSelector:
    """Reads `lambda_function` and, optionally, `lambda_parameters` (a JSON object) annotations.

    Without `lambda_parameters` the parameters are filled from the labels by the catalog.
    Either way the chain validates every value against the alert's labels.
    """

    name = "static"

    def __init__(self, context: SelectorContext) -> None:
        self.catalog = context.catalog

    async def select(self, alert: Alert) -> Proposal | None:
        function = alert.annotations.get("lambda_function", "").strip()
        if not function:
            return None
        raw = alert.annotations.get("lambda_parameters")
        if raw is None:
            parameters = self.catalog.resolve(function, alert) if function in self.catalog.by_name else {}
        else:
            parameters = _parse_parameters(raw)
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
    return StaticSelector(context)
