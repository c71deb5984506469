"""The chain: ask each selector in turn until one proposes something safe and confident enough."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from ..errors import CatalogError
from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from ..schemas.decision import Decision, Outcome, Phase, Proposal
from ..settings import Settings
from .base import Selector

log = logging.getLogger(__name__)


class ChainObserver(Protocol):
    """Told about every phase; metrics implement it. Its errors never change a decision."""

    def phase(self, phase: Phase) -> None: ...


@dataclass(frozen=True)
class Step:
    selector: Selector
    timeout_s: float
    threshold: float


class Chain:
    def __init__(
        self,
        selectors: list[Selector],
        catalog: Catalog,
        settings: Settings,
        observer: ChainObserver | None = None,
    ) -> None:
        self.steps = [
            Step(
                s,
                settings.selector_timeout(s.name, getattr(s, "default_timeout_s", None)),
                settings.selector_min_confidence(s.name),
            )
            for s in selectors
        ]
        self.catalog = catalog
        self.denied_namespaces = set(settings.denied_namespaces)
        self.observer = observer

    @property
    def selectors(self) -> list[Selector]:
        return [step.selector for step in self.steps]

    async def decide(self, alert: Alert) -> Decision:
        phases: list[Phase] = []
        for step in self.steps:
            started = time.perf_counter()
            proposal, outcome, detail, parameters = await self._try(step, alert)
            phase = Phase(
                selector=step.selector.name,
                outcome=outcome,
                confidence=proposal.confidence if proposal else None,
                ms=round((time.perf_counter() - started) * 1000, 3),
                lambda_function=proposal.lambda_function if proposal else None,
                detail=detail,
            )
            phases.append(phase)
            self._observe(phase)
            if outcome is Outcome.DECIDED and proposal is not None:
                return Decision(
                    lambda_function=proposal.lambda_function,
                    parameters=parameters,
                    confidence=proposal.confidence,
                    method=step.selector.name,
                    reasoning=proposal.reasoning,
                    phases=phases,
                )
        summary = "; ".join(f"{p.selector} {p.outcome.value}" for p in phases)
        return Decision(lambda_function=None, reasoning=f"no selector decided ({summary})", phases=phases)

    async def _try(
        self, step: Step, alert: Alert
    ) -> tuple[Proposal | None, Outcome, str | None, dict[str, str]]:
        try:
            # asyncio.timeout, unlike wait_for, needs no extra task per selector call.
            async with asyncio.timeout(step.timeout_s):
                proposal = await step.selector.select(alert)
        except asyncio.TimeoutError:
            return None, Outcome.TIMEOUT, f"no answer within {step.timeout_s}s", {}
        except Exception as exc:  # isolation point: one broken plugin must not stop the chain
            log.warning("selector %s failed on %s: %r", step.selector.name, alert.alertname, exc)
            return None, Outcome.ERROR, f"{type(exc).__name__}: {exc}", {}
        if proposal is None:
            return None, Outcome.ABSTAINED, None, {}
        if not isinstance(proposal, Proposal):
            return None, Outcome.ERROR, f"returned {type(proposal).__name__}, not a Proposal", {}
        if proposal.confidence < step.threshold:
            return proposal, Outcome.BELOW_THRESHOLD, f"confidence below {step.threshold}", {}
        try:
            parameters = self.catalog.validate_proposal(proposal, alert, self.denied_namespaces)
        except CatalogError as exc:
            return proposal, Outcome.REJECTED, str(exc), {}
        return proposal, Outcome.DECIDED, None, parameters

    def _observe(self, phase: Phase) -> None:
        if self.observer is None:
            return
        try:
            self.observer.phase(phase)
        except Exception:  # observability must never change an outcome
            log.exception("chain observer failed")
