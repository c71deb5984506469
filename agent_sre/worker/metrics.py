"""Prometheus metrics: declared once here, with an injected registry.

Label values come only from enums, selector names and catalog function names, never from
alert content, so an alert storm cannot blow up cardinality.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from ..schemas.decision import Escalation, Outcome, Phase

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_RESOLVE_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, prefix: str = "agent_sre") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter(f"{prefix}_events", "Events received, by CloudEvent type and outcome.", ["type", "outcome"], registry=r)
        self.decisions = Counter(f"{prefix}_decisions", "Decisions, by the selector that made them and function.", ["selector", "function"], registry=r)
        self.confidence = Histogram(f"{prefix}_selector_confidence", "Confidence of each selector's proposals.", ["selector"], buckets=_CONFIDENCE_BUCKETS, registry=r)
        self.latency = Histogram(f"{prefix}_selector_latency_seconds", "Time each selector took.", ["selector"], buckets=_LATENCY_BUCKETS, registry=r)
        self.fallbacks = Counter(f"{prefix}_fallbacks", "Selector turns that passed to the next, by reason.", ["selector", "reason"], registry=r)
        self.dead_letters = Counter(f"{prefix}_dead_letters", "Messages dead-lettered, by reason.", ["reason"], registry=r)
        self.retries = Counter(f"{prefix}_retries", "Messages sent to a retry delay queue, by reason.", ["reason"], registry=r)
        self.suppressions = Counter(f"{prefix}_suppressions", "Triggers suppressed, by reason.", ["reason"], registry=r)
        self.ignored_alerts = Counter(f"{prefix}_ignored", "Alerts that need nobody (AGENT_SRE_IGNORED_ALERTS), acked.", registry=r)
        self.triggers = Counter(f"{prefix}_triggers_published", "Trigger events published and confirmed.", ["function"], registry=r)
        self.outcomes = Counter(f"{prefix}_remediation_outcomes", "What followed each remediation, by function and outcome.", ["function", "outcome"], registry=r)
        self.time_to_resolve = Histogram(f"{prefix}_remediation_seconds_to_resolve", "From a confirmed trigger to its alert's resolution.", ["function"], buckets=_RESOLVE_BUCKETS, registry=r)
        self.approvals = Counter(f"{prefix}_approvals", "Approval steps: requested, approved, denied, expired, withdrawn.", ["function", "step"], registry=r)
        self.silences = Counter(f"{prefix}_silences", "Alertmanager silences: created, expired, failed.", ["step"], registry=r)
        self.escalations = Counter(f"{prefix}_chain_escalations", "Escalations the chain reached itself: undecided, unconfirmed, disagreement.", ["reason"], registry=r)
        self.proposals = Counter(f"{prefix}_proposals_published", "Proposals published in shadow mode, in place of a trigger.", ["function"], registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _of(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, looked up once: label values come from small fixed sets."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # ChainObserver
    def phase(self, phase: Phase) -> None:
        self._of(self.latency, phase.selector).observe(phase.ms / 1000)
        if phase.confidence is not None:
            self._of(self.confidence, phase.selector).observe(phase.confidence)
        if phase.outcome is Outcome.DECIDED:
            self._of(self.decisions, phase.selector, phase.lambda_function or "").inc()
        else:
            self._of(self.fallbacks, phase.selector, phase.outcome.value).inc()

    def event(self, event_type: str, outcome: str) -> None:
        self._of(self.events, event_type, outcome).inc()

    def dead_letter(self, reason: str) -> None:
        self._of(self.dead_letters, reason).inc()

    def retry(self, reason: str) -> None:
        self._of(self.retries, reason).inc()

    def suppressed(self, reason: str) -> None:
        self._of(self.suppressions, reason).inc()

    def ignored(self) -> None:
        self.ignored_alerts.inc()

    def outcome(self, function: str, outcome: str, seconds_to_resolve: float | None = None) -> None:
        self._of(self.outcomes, function, outcome).inc()
        if seconds_to_resolve is not None:
            self._of(self.time_to_resolve, function).observe(seconds_to_resolve)

    def silence(self, step: str) -> None:
        self._of(self.silences, step).inc()

    def approval(self, function: str, step: str) -> None:
        self._of(self.approvals, function, step).inc()

    def trigger_published(self, function: str, proposed: bool = False, escalation: Escalation | None = None) -> None:
        self._of(self.proposals if proposed else self.triggers, function).inc()
        if escalation is not None:
            self._of(self.escalations, escalation.value).inc()
