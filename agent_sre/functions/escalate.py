"""escalate: tell a human. The alert, the decision's reasoning and the selectors' suggestions, posted to
AGENT_SRE_ESCALATE_WEBHOOK_URL (a Slack-compatible incoming webhook, or generic JSON); with none
set, the escalation is acknowledged in the result and the audit trail only.

Alert text is data, never markup: Slack's control characters (& < >) are escaped, so a label
cannot @-mention a channel or forge a link.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from ..errors import FunctionError
from .base import Context, Done, Function

_TIMEOUT = aiohttp.ClientTimeout(total=10)


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notice(ctx: Context) -> dict[str, Any]:
    data = ctx.trigger.data
    alert = data.alert
    return {"correlation_id": data.correlation_id, "alertname": alert.alertname, "labels": alert.labels,
            "summary": alert.annotations.get("summary") or alert.annotations.get("description") or "",
            "reasoning": data.reasoning, "decided_by": data.triggered_by, "starts_at": alert.startsAt,
            "escalation": data.escalation, "suggestions": [s.model_dump() for s in data.suggestions]}


def slack_message(found: dict[str, Any]) -> dict[str, Any]:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(found["labels"].items()) if k != "alertname")
    lines = [f"*agent-sre escalates {found['alertname']}*: a human decides.", f"Labels: {labels}"]
    if found["summary"]:
        lines.append(f"Summary: {found['summary']}")
    if found["reasoning"]:
        lines.append(f"Why: {found['reasoning']}")
    for suggestion in found["suggestions"]:
        parameters = " ".join(f"{k}={v}" for k, v in sorted(suggestion["parameters"].items()))
        lines.append(f"Suggested: {suggestion['lambda_function']} {parameters} ({suggestion['selector']}, "
                     f"{suggestion['confidence']:.2f}): not taken, {suggestion['why_not']}")
    lines.append(f"Correlation id: {found['correlation_id']}")
    return {"text": "\n".join(slack_escape(line) for line in lines)}


async def escalate(ctx: Context, params: dict[str, str]) -> Done:
    found = notice(ctx)
    url = ctx.settings.escalate_webhook_url
    if url is None:
        return Done(f"escalation of {found['alertname']} acknowledged (no AGENT_SRE_ESCALATE_WEBHOOK_URL set)",
                    {"notified": False})
    payload = slack_message(found) if ctx.settings.escalate_webhook_format == "slack" else found
    try:
        async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
            async with session.post(url.get_secret_value(), json=payload) as response:
                if response.status >= 300:
                    raise FunctionError(f"the escalation webhook answered {response.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FunctionError(f"the escalation webhook cannot be reached: {type(exc).__name__}") from exc
    ctx.did(f"posted the escalation of {found['alertname']} to the {ctx.settings.escalate_webhook_format} webhook")
    return Done(f"escalated {found['alertname']} to the webhook", {"notified": True})


FUNCTIONS: dict[str, Function] = {"escalate": escalate}
