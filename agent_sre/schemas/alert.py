"""The alert, as Alertmanager sends it, and the two shapes an event's data may take."""

from __future__ import annotations

import hashlib
import uuid
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from ..errors import InputError

_CORRELATION_NAMESPACE = uuid.UUID("5b0f3c1e-8d7a-4c55-9a42-2f1a0b6e7c10")


class Alert(BaseModel):
    """One alert. Label and annotation values must be strings, as Alertmanager sends them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Literal["firing", "resolved"] = "firing"
    labels: dict[StrictStr, StrictStr]
    annotations: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    startsAt: StrictStr | None = None
    endsAt: StrictStr | None = None
    generatorURL: StrictStr | None = None
    fingerprint: StrictStr | None = None

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @cached_property
    def identity(self) -> str:
        """Alertmanager's fingerprint, or the same kind of hash of the label set when absent."""
        if self.fingerprint:
            return self.fingerprint
        canonical = "\x00".join(f"{k}\x01{v}" for k, v in sorted(self.labels.items()))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @cached_property
    def correlation_id(self) -> str:
        """Stable for one occurrence of the alert: the same fingerprint and start time."""
        return str(uuid.uuid5(_CORRELATION_NAMESPACE, f"{self.identity}/{self.startsAt or ''}"))


def parse_alerts(data: Any) -> list[Alert]:
    """Turn event data into alerts: one alert object, or an Alertmanager webhook (version 4)."""
    if not isinstance(data, dict):
        raise InputError("invalid_alert", f"event data must be a JSON object, got {type(data).__name__}")
    if "alerts" in data:
        items = data["alerts"]
        if not isinstance(items, list) or not items:
            raise InputError("invalid_alert", "webhook field 'alerts' must be a non-empty list")
    else:
        items = [data]
    return [_parse_one(item, index) for index, item in enumerate(items)]


def _parse_one(item: Any, index: int) -> Alert:
    where = f"alert #{index}"
    if not isinstance(item, dict):
        raise InputError("invalid_alert", f"{where} must be a JSON object")
    labels = item.get("labels", {})
    if not isinstance(labels, dict):
        raise InputError("invalid_alert", f"{where}: labels must be a JSON object")
    if "alertname" not in labels:
        raise InputError("missing_alertname", f"{where} has no labels.alertname")
    try:
        alert = Alert.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InputError("invalid_alert", f"{where}: {field}: {first['msg']}") from exc
    if not alert.alertname:
        raise InputError("missing_alertname", f"{where} has an empty labels.alertname")
    return alert
