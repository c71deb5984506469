"""Alertmanager silences while a remediation runs (AGENT_SRE_ALERTMANAGER_URL; off by default).

When a trigger goes out, the alert's exact label set is silenced for the cooldown, so that its
repeats page nobody while the function works on it. When the alert resolves, or the function
reports that it failed, the silence is expired. Alertmanager is the only record: each silence is
`createdBy: agent-sre` with the alert's correlation id in its comment, and is found again by that.

Silences are a courtesy, never a condition: when Alertmanager cannot be reached the trigger still
goes out, and the failure is logged and counted (`agent_sre_silences_total{step="failed"}`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from ..logs import mask_secrets
from ..schemas.alert import Alert
from .metrics import Metrics

log = logging.getLogger(__name__)

CREATED_BY = "agent-sre"


class Silences:
    def __init__(self, url: str, timeout_s: float, metrics: Metrics) -> None:
        self.api = url.rstrip("/") + "/api/v2"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None

    async def silence(self, alert: Alert, function: str, trigger_id: str, duration_s: float) -> str | None:
        """Silence exactly this alert's labels for `duration_s`; the silence id, or None on failure."""
        now = datetime.now(timezone.utc)
        body = {
            "matchers": [{"name": name, "value": value, "isRegex": False, "isEqual": True}
                         for name, value in sorted(alert.labels.items())],
            "startsAt": _timestamp(now),
            "endsAt": _timestamp(now + timedelta(seconds=max(duration_s, 60.0))),
            "createdBy": CREATED_BY,
            "comment": f"{function} is remediating {alert.alertname} (correlation {alert.correlation_id}, "
                       f"trigger {trigger_id})",
        }
        answer = await self._call("POST", "/silences", json=body)
        if not isinstance(answer, dict) or not isinstance(answer.get("silenceID"), str):
            return self._failed(f"silence {alert.alertname}", answer)
        self.metrics.silence("created")
        return answer["silenceID"]

    async def expire(self, correlation_id: str, alertname: str | None = None) -> int:
        """Expire the active silences made for this alert occurrence; how many were."""
        params = {"filter": f'alertname="{alertname}"'} if alertname else None
        found = await self._call("GET", "/silences", params=params)
        if not isinstance(found, list):
            self._failed(f"find the silences of {correlation_id}", found)
            return 0
        ours = [s["id"] for s in found if isinstance(s, dict) and s.get("createdBy") == CREATED_BY
                and (s.get("status") or {}).get("state") == "active" and correlation_id in str(s.get("comment", ""))]
        expired = 0
        for silence_id in ours:
            if await self._call("DELETE", f"/silence/{silence_id}") is not None:
                expired += 1
                self.metrics.silence("expired")
            else:
                self._failed(f"expire silence {silence_id}", None)
        return expired

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        """The decoded answer ({} for an empty one), or None when Alertmanager failed or refused."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.request(method, self.api + path, **options) as response:
                text = await response.text()
                if response.status >= 300:
                    log.warning("Alertmanager answered %s %s with %d: %s", method, path, response.status, text[:300])
                    return None
                return await response.json(content_type=None) if text.strip() else {}
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("Alertmanager %s %s failed: %s", method, path, mask_secrets(f"{type(exc).__name__}: {exc}"))
            return None

    def _failed(self, what: str, answer: Any) -> None:
        self.metrics.silence("failed")
        if answer is not None:
            log.warning("could not %s: Alertmanager answered %r", what, answer)
        return None


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
