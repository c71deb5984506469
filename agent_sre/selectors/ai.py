"""`ai`: a language model behind an OpenAI-compatible endpoint picks the function.

It is off unless AGENT_SRE_AI_URL is set, and it abstains whenever the endpoint is down, the
circuit breaker is open, or the answer is not usable. The model only chooses the function:
parameters always come from the alert's labels through the catalog, and the chain validates
the proposal like any other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..llm.breaker import CircuitBreaker
from ..llm.client import BACKOFF_CAP_S, ChatClient
from ..llm.errors import LLMError, LLMUnavailable
from ..llm.prompt import decision_schema, messages, system_prompt
from ..llm.taint import named_in_alert_text
from ..schemas.alert import Alert
from ..schemas.catalog import ESCALATE, Catalog
from ..schemas.decision import EvidenceKind, Proposal
from .base import SelectorContext

log = logging.getLogger(__name__)

# A model's self-reported confidence is not calibrated (it says 0.95 about wrong answers too),
# so it is capped below what the rule table and calibrated selectors can report.
MAX_CONFIDENCE = 0.9
# A function the alert's text names outright looks like an obeyed injection: kept below the
# default threshold (0.7) so the chain asks the next selector instead.
NAMED_IN_TEXT_CONFIDENCE = 0.5
MAX_REASONING_CHARS = 500


class AISelector:
    """Asks the model once per alert; confidence = min(the model's own figure, MAX_CONFIDENCE)."""

    name = "ai"
    evidence = EvidenceKind.LLM

    def __init__(
        self, catalog: Catalog, client: ChatClient | None, breaker: CircuitBreaker, default_timeout_s: float | None = None
    ) -> None:
        self.default_timeout_s = default_timeout_s  # the chain's timeout unless the operator sets one
        self.catalog = catalog
        self.client = client
        self.breaker = breaker
        self.system = system_prompt(catalog)
        self.schema = decision_schema(catalog)

    async def select(self, alert: Alert) -> Proposal | None:
        if self.client is None:
            return None
        if not self.breaker.allow():
            log.debug("ai: circuit open, abstaining on %s", alert.alertname)
            return None
        try:
            answer = await self.client.structured(messages(self.system, alert), self.schema)
        except LLMUnavailable as exc:
            self.breaker.record_failure()
            log.warning("ai: endpoint unavailable, abstaining on %s: %s", alert.alertname, exc)
            return None
        except LLMError as exc:  # the endpoint answered, just not usefully
            self.breaker.record_success()
            log.warning("ai: no usable answer for %s, abstaining: %s", alert.alertname, exc)
            return None
        except asyncio.CancelledError:
            # The chain gave up waiting: to the breaker an endpoint this slow is a failing one.
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return self._proposal(answer, alert)

    def _proposal(self, answer: dict[str, Any], alert: Alert) -> Proposal | None:
        function = answer.get("lambda_function")
        confidence = answer.get("confidence")
        given = answer.get("parameters", {})
        if not isinstance(function, str) or function not in self.catalog.by_name:
            log.warning("ai: the model named no catalog function for %s: %.80r", alert.alertname, function)
            return None
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not isinstance(given, dict):
            log.warning("ai: malformed answer for %s (confidence or parameters)", alert.alertname)
            return None
        if given:  # the chain fills them from the alert's labels; the model's own are never used
            log.info("ai: ignored the model's parameters for %s: %s", alert.alertname, sorted(str(k)[:40] for k in given))
        confidence = min(max(float(confidence), 0.0), MAX_CONFIDENCE)
        notes = ""
        if function != ESCALATE and named_in_alert_text(function, alert):
            confidence = min(confidence, NAMED_IN_TEXT_CONFIDENCE)
            notes = f" [{function} is named in the alert's own text: confidence capped]"
        reasoning = str(answer.get("reasoning", ""))[:MAX_REASONING_CHARS]
        return Proposal(
            lambda_function=function,
            confidence=round(confidence, 4),
            reasoning=f"LLM chose {function}: {reasoning}{notes}",
        )


def create(context: SelectorContext) -> AISelector:
    settings = context.settings
    client = None
    if settings.ai_url:
        client = ChatClient(
            settings.ai_url,
            settings.ai_model,
            settings.ai_api_key.get_secret_value() if settings.ai_api_key else None,
            timeout_s=settings.ai_timeout_s,
            max_retries=settings.ai_max_retries,
            backoff_s=settings.ai_backoff_s,
        )
    breaker = CircuitBreaker(settings.ai_breaker_failures, settings.ai_breaker_reset_s)
    # Every attempt may take its full HTTP timeout, with at most BACKOFF_CAP_S between attempts.
    budget = (settings.ai_max_retries + 1) * settings.ai_timeout_s + settings.ai_max_retries * BACKOFF_CAP_S
    return AISelector(context.catalog, client, breaker, default_timeout_s=budget)
