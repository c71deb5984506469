"""The chain: ask each selector in turn until one proposes something safe and confident enough."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from .. import tracing
from ..errors import CatalogError
from ..schemas.alert import Alert
from ..schemas.catalog import ESCALATE, Catalog
from ..schemas.decision import Decision, Escalation, EvidenceKind, Outcome, Phase, Proposal, Suggestion, Undecided
from ..settings import Settings
from .base import Selector
from .gates import Gates

log = logging.getLogger(__name__)
STATIC = "static"


class ChainObserver(Protocol):
    """Told about every phase; metrics implement it. Its errors never change a decision."""

    def phase(self, phase: Phase) -> None: ...


@dataclass(frozen=True)
class Step:
    selector: Selector
    timeout_s: float
    threshold: float


@dataclass(frozen=True)
class Turn:
    """How one selector's turn went: its proposal (if any), the outcome, and the parameters the
    catalog took from the alert's labels for it (empty unless they passed the check)."""

    proposal: Proposal | None
    outcome: Outcome
    detail: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    # Below its thresholds, but valid, through the evidence gate and at AGENT_SRE_AGREEMENT_MIN_CONFIDENCE:
    # not enough to act on alone, enough to confirm a risky proposal of another kind of evidence.
    seconds: bool = False


@dataclass(frozen=True)
class _Opinion:
    """One selector's proposal, with the kind of evidence it rests on and the labels' values for it:
    a risky one waiting for a second kind to agree, or one that could be that second kind."""

    selector: str
    evidence: str
    proposal: Proposal
    parameters: dict[str, str]


class Chain:
    """Asks each selector in turn. Every proposal passes the gates (`gates.py`): its function's risk
    threshold, the catalog's parameter check, the function's evidence, and for risky functions the
    agreement of a second selector whose answer rests on another kind of evidence (`EvidenceKind`).
    A confident disagreement, a risky proposal nobody independent confirms, and (unless
    AGENT_SRE_UNDECIDED is `dead-letter`) an alert no selector was confident about end in
    `escalate`, carrying what the selectors thought (`suggestions`): a human decides."""

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
                settings.selector_min_confidence(s.name, getattr(s, "default_threshold", None)),
            )
            for s in selectors
        ]
        self.catalog = catalog
        self.gates = Gates(catalog, settings)
        self.denied_namespaces = set(settings.denied_namespaces)
        self.escalate_undecided = settings.undecided == Undecided.ESCALATE  # a str enum: a copied setting may hold the bare value
        self.seconding = settings.agreement_min_confidence
        self.observer = observer
        self._preparing: set[asyncio.Future] = set()  # held until done, so none is collected mid-way

    @property
    def selectors(self) -> list[Selector]:
        return [step.selector for step in self.steps]

    async def decide(self, alert: Alert) -> Decision:
        prepares: list[asyncio.Future] = []  # this decision's `prepare` tasks
        try:
            return await self._decide(alert, prepares)
        finally:
            # Once the chain has decided, what a later selector was to need is moot: rag's
            # embedding of an alert that `known` decided at once (the task had not even begun),
            # or still queued on the side thread behind others, would only hold up the next alerts'
            # work there (200 known alerts left a second of it: the never-seen ones after them
            # waited, p50 13 instead of 7 ms). A pass already running ends; its vector is kept.
            for task in prepares:
                task.cancel()

    async def _decide(self, alert: Alert, prepares: list[asyncio.Future]) -> Decision:
        if reason := self.gates.ignore_reason(alert):
            return Decision(lambda_function=None, method="ignore", reasoning=reason, ignored=True)
        phases: list[Phase] = []
        suggestions: list[Suggestion] = []
        pending: _Opinion | None = None
        seconders: list[_Opinion] = []  # turns that could confirm a risky proposal of another kind
        for index, step in enumerate(self.steps):
            if index + 1 < len(self.steps):
                self._prepare(self.steps[index + 1].selector, alert, prepares)
            started = time.perf_counter()
            turn = await self._try(step, alert)
            proposal, outcome, detail = turn.proposal, turn.outcome, turn.detail
            name, evidence = step.selector.name, evidence_of(step.selector)
            if proposal is not None and (turn.seconds or outcome is Outcome.DECIDED):
                seconders.append(_Opinion(name, evidence, proposal, turn.parameters))
            outcome, detail, decision, pending = self._agree(turn, name, evidence, pending, seconders)
            if proposal is not None and proposal.lambda_function in self.catalog.by_name and outcome is not Outcome.DECIDED:
                suggestions.append(Suggestion(
                    lambda_function=proposal.lambda_function, parameters=turn.parameters,
                    confidence=proposal.confidence, selector=name, why_not=detail or outcome.value))
            phase = Phase(
                selector=name,
                outcome=outcome,
                confidence=proposal.confidence if proposal else None,
                ms=round((time.perf_counter() - started) * 1000, 3),
                lambda_function=proposal.lambda_function if proposal else None,
                detail=detail,
            )
            phases.append(phase)
            self._observe(phase)
            if decision is not None:
                update = {"phases": phases, "suggestions": suggestions} if decision.escalation else {"phases": phases}
                return decision.model_copy(update=update)
        if pending is not None:
            function = pending.proposal.lambda_function
            return Decision(
                lambda_function=ESCALATE,
                confidence=pending.proposal.confidence,
                method=pending.selector,
                reasoning=f"{pending.selector} proposed {function}, which needs a selector of another kind of "
                f"evidence to agree, and none did: a human decides ({pending.proposal.reasoning})",
                phases=phases,
                escalation=Escalation.UNCONFIRMED,
                suggestions=suggestions,
            )
        summary = "; ".join(f"{p.selector} {p.outcome.value}" for p in phases)
        if not self.escalate_undecided:
            return Decision(lambda_function=None, reasoning=f"no selector decided ({summary})", phases=phases,
                            suggestions=suggestions)
        return Decision(
            lambda_function=ESCALATE,
            method="chain",
            reasoning=f"no selector was confident, so a human decides ({summary})",
            phases=phases,
            escalation=Escalation.UNDECIDED,
            suggestions=suggestions,
        )

    def _agree(
        self, turn: Turn, name: str, evidence: str, pending: _Opinion | None, seconders: list[_Opinion]
    ) -> tuple[Outcome, str | None, Decision | None, _Opinion | None]:
        """What one turn comes to beside the others: a decision, a risky proposal left pending for a
        second kind of evidence, its confirmation (or a veto), or nothing yet. Returns the turn's
        outcome and detail as the phase shows them, the decision if any, and what is pending now."""
        proposal, outcome, detail = turn.proposal, turn.outcome, turn.detail
        if proposal is None:
            return outcome, detail, None, pending
        same = pending is not None and _same(pending, proposal, turn.parameters)
        if pending is not None and turn.seconds and pending.evidence != evidence and same:
            detail = f"{detail}; enough to confirm {pending.selector}, another kind of evidence"
            return outcome, detail, _second_opinion(pending, name, proposal, turn.parameters), pending
        if outcome is not Outcome.DECIDED:
            return outcome, detail, None, pending
        if pending is not None and pending.evidence == evidence and same:
            return Outcome.UNCONFIRMED, (
                f"rests on the same kind of evidence as {pending.selector} ({evidence}): cannot confirm it"), None, pending
        if pending is not None and not proposal.familiar and not same:
            return Outcome.ABSTAINED, (
                f"disagrees with {pending.selector}, but on an input unlike what it learned from: no veto"), None, pending
        if pending is not None:
            return outcome, detail, _second_opinion(pending, name, proposal, turn.parameters), pending
        if name != STATIC and self.gates.needs_agreement(proposal.lambda_function):
            pending = _Opinion(name, evidence, proposal, turn.parameters)
            earlier = next((s for s in seconders if s.evidence != evidence and _same(pending, s.proposal, s.parameters)), None)
            if earlier is not None:  # a selector of another kind, asked before, agrees
                return outcome, detail, _second_opinion(pending, earlier.selector, earlier.proposal, earlier.parameters), pending
            return Outcome.UNCONFIRMED, "a risky function: waits for a selector of another kind of evidence to agree", None, pending
        decision = Decision(lambda_function=proposal.lambda_function, parameters=turn.parameters,
                            confidence=proposal.confidence, method=name, reasoning=proposal.reasoning)
        return outcome, detail, decision, pending

    async def _try(self, step: Step, alert: Alert) -> Turn:
        try:
            # asyncio.timeout, unlike wait_for, needs no extra task per selector call.
            with tracing.span(f"selector {step.selector.name}", correlation_id=alert.correlation_id):
                async with asyncio.timeout(step.timeout_s):
                    proposal = await step.selector.select(alert)
        except asyncio.TimeoutError:
            return Turn(None, Outcome.TIMEOUT, f"no answer within {step.timeout_s}s")
        except Exception as exc:  # isolation point: one broken plugin must not stop the chain
            log.warning("selector %s failed on %s: %r", step.selector.name, alert.alertname, exc)
            return Turn(None, Outcome.ERROR, f"{type(exc).__name__}: {exc}")
        if proposal is None:
            return Turn(None, Outcome.ABSTAINED)
        if not isinstance(proposal, Proposal):
            return Turn(None, Outcome.ERROR, f"returned {type(proposal).__name__}, not a Proposal")
        function = proposal.lambda_function
        if function not in self.catalog.by_name:
            return Turn(proposal, Outcome.REJECTED, f"unknown lambda function {function!r}")
        threshold = max(step.threshold, self.gates.threshold(function))
        if proposal.confidence < threshold:  # still a suggestion for a human: with the labels' values, if valid
            parameters = self._valid(proposal, alert)
            seconds = (proposal.confidence >= self.seconding and self.gates.needs_agreement(function)
                       and bool(parameters or not self.catalog.by_name[function].parameters)
                       and self.gates.refusal(function, alert) is None)
            return Turn(proposal, Outcome.BELOW_THRESHOLD, f"confidence below {threshold}", parameters, seconds)
        try:
            with tracing.span("validate", correlation_id=alert.correlation_id, function=function):
                parameters = self.catalog.validate_proposal(proposal, alert, self.denied_namespaces)
        except CatalogError as exc:
            return Turn(proposal, Outcome.REJECTED, str(exc))
        # A static annotation is the operator's own word in the alert rule: no evidence is asked of it.
        if step.selector.name != STATIC and (refusal := self.gates.refusal(function, alert)):
            return Turn(proposal, Outcome.REJECTED, refusal)
        return Turn(proposal, Outcome.DECIDED, None, parameters)

    def _valid(self, proposal: Proposal, alert: Alert) -> dict[str, str]:
        try:
            return self.catalog.validate_proposal(proposal, alert, self.denied_namespaces)
        except CatalogError:
            return {}

    def _prepare(self, selector: Selector, alert: Alert, prepares: list[asyncio.Future]) -> None:
        """Let the next selector start what it will need while this one answers (optional `prepare`)."""
        prepare = getattr(selector, "prepare", None)
        if prepare is None:
            return
        task = asyncio.ensure_future(prepare(alert))
        prepares.append(task)
        self._preparing.add(task)
        task.add_done_callback(self._prepared)

    def _prepared(self, task: asyncio.Future) -> None:
        self._preparing.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("preparing a selector failed: %r", exc)  # it computes again when asked

    def _observe(self, phase: Phase) -> None:
        if self.observer is None:
            return
        try:
            self.observer.phase(phase)
        except Exception:  # observability must never change an outcome
            log.exception("chain observer failed")


def evidence_of(selector: Selector) -> str:
    """The kind of evidence a selector's answers rest on; one that does not say is a kind of its own."""
    evidence = getattr(selector, "evidence", None)
    return evidence.value if isinstance(evidence, EvidenceKind) else f"selector:{selector.name}"


def _same(pending: _Opinion, proposal: Proposal, parameters: dict[str, str]) -> bool:
    return proposal.lambda_function == pending.proposal.lambda_function and parameters == pending.parameters


def _second_opinion(pending: _Opinion, selector: str, proposal: Proposal, parameters: dict[str, str]) -> Decision:
    first = pending.proposal
    if _same(pending, proposal, parameters):
        return Decision(
            lambda_function=first.lambda_function,
            parameters=parameters,
            confidence=min(first.confidence, proposal.confidence),
            method=pending.selector,
            reasoning=f"{first.reasoning}; {selector} agrees ({proposal.confidence:.2f})",
        )
    return Decision(
        lambda_function=ESCALATE,
        confidence=proposal.confidence,
        method=selector,
        reasoning=f"{pending.selector} proposed {first.lambda_function} and {selector} {proposal.lambda_function}: "
        "the selectors disagree, so a human decides",
        escalation=Escalation.DISAGREEMENT,
    )
