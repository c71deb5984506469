"""The safety gates the chain applies to every selector's proposal, driven by the catalog and settings.

- **ignore**: alerts that need nobody (`Watchdog`, `InfoInhibitor`, info-severity success and
  progress events) are acked, audited and counted as ignored before any selector runs;
- **risk**: a proposal must reach the confidence its function's catalog risk asks for
  (AGENT_SRE_RISK_THRESHOLDS), on top of its selector's own threshold;
- **evidence**: the alert must show what the function declares in the catalog (`evidence`), and a
  label on its allow-list (a Flux event's `reason`) must hold a value the list names; a static
  annotation, the operator's own word in the alert rule, is exempt;
- **stateful data services**: restarting, rolling or scaling a database, a queue, a coordination or
  storage system, or anything in a namespace an operator owns, is refused (`stateful.py`,
  AGENT_SRE_STATEFUL_*, AGENT_SRE_OPERATOR_NAMESPACES); a static annotation is exempt;
- **agreement**: a function whose risk is in AGENT_SRE_AGREEMENT_RISKS acts only when a second
  selector proposes it too, or when a static annotation names it. The chain does the counting.
"""

from __future__ import annotations

import re

from ..knowledge.context import metric_context
from ..schemas.alert import Alert
from ..errors import CatalogError
from ..schemas.catalog import ESCALATE, Catalog, Evidence
from ..schemas.decision import Proposal
from ..settings import Settings
from .stateful import StatefulServices

MAX_SIGNAL_CHARS = 256  # the longest alert name or evidence label value the evidence is read in


class Gates:
    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.thresholds = settings.risk_thresholds
        self.agreement_risks = set(settings.agreement_risks)
        self.ignored_alerts = set(settings.ignored_alerts)
        self.info_events = re.compile(settings.ignored_info_events, re.IGNORECASE) if settings.ignored_info_events else None
        self._evidence = {f.name: _CompiledEvidence(f.evidence) for f in catalog.functions if f.evidence}
        self.stateful_functions = frozenset(settings.stateful_functions)
        self.stateful = StatefulServices(settings.stateful_services, settings.stateful_labels, settings.operator_namespaces)
        self.denied_namespaces = set(settings.denied_namespaces)

    def ignore_reason(self, alert: Alert) -> str | None:
        """Why nobody needs this alert, or None when it may need someone."""
        if alert.alertname in self.ignored_alerts:
            return f"{alert.alertname} is on the ignore list (AGENT_SRE_IGNORED_ALERTS)"
        if (
            self.info_events is not None
            and alert.labels.get("severity", "").lower() == "info"
            and self.info_events.search(alert.alertname)
        ):
            return f"{alert.alertname} is an info-severity success or progress event (AGENT_SRE_IGNORED_INFO_EVENTS)"
        return None

    def threshold(self, function: str) -> float:
        return self.thresholds.get(self.catalog.by_name[function].risk, 1.0)

    def needs_agreement(self, function: str) -> bool:
        return self.catalog.by_name[function].risk in self.agreement_risks

    def refusal(self, function: str, alert: Alert) -> str | None:
        """Why the alert does not show what `function` needs, or None when it does."""
        if function in self.stateful_functions and (why := self.stateful.refusal(alert)):
            return f"{function} does not apply: {why}"
        evidence = self._evidence.get(function)
        return evidence.refusal(function, alert) if evidence else None

    def admissible(self, alert: Alert) -> list[str]:
        """The catalog's actions (escalate aside) that could act on this alert: the gates refuse none
        of them and its labels fill their parameters. Whatever a selector thinks, an alert with none
        can only end with a human; one with several leaves room to be wrong."""
        found = []
        for function in self.catalog.functions:
            if function.name == ESCALATE or self.refusal(function.name, alert):
                continue
            try:
                self.catalog.validate_proposal(Proposal(lambda_function=function.name, confidence=1.0), alert,
                                               self.denied_namespaces)
            except CatalogError:
                continue
            found.append(function.name)
        return found


class _CompiledEvidence:
    def __init__(self, evidence: Evidence) -> None:
        self.shows = [re.compile(p, re.IGNORECASE) for p in evidence.shows]
        self.never = [re.compile(p, re.IGNORECASE) for p in evidence.never]
        self.labels = evidence.labels
        self.allow = {label: re.compile(pattern, re.IGNORECASE) for label, pattern in evidence.allow.items()}

    def refusal(self, function: str, alert: Alert) -> str | None:
        # The patterns are searched, some with `.*` between two words: on a name of many thousand
        # characters that takes minutes. No real alert has one (the longest known name has 55), and
        # a robot does not act on what it cannot read.
        for key in ("alertname", *self.labels):
            if len(alert.labels.get(key, "")) > MAX_SIGNAL_CHARS:
                return f"{function} does not apply: the alert's {key} is over {MAX_SIGNAL_CHARS} characters long"
        for label, pattern in self.allow.items():
            value = alert.labels.get(label)
            if value is not None and not pattern.fullmatch(_folded(value)):
                return f"{function} does not apply when {label} is {value!r} (not on its allow-list)"
        signal = self.signal(alert)
        for pattern in self.never:
            if hit := next((token for token in signal if pattern.search(token)), None):
                return f"{function} does not apply: the alert shows {hit!r}"
        if self.shows and not any(pattern.search(token) for pattern in self.shows for token in signal):
            return f"{function} needs evidence the alert does not show (its signal: {' '.join(signal)})"
        return None

    def signal(self, alert: Alert) -> list[str]:
        """The alert's name, lower-cased with only letters and digits kept, then `key=value` for the
        evidence labels it has, then its metric context."""
        name = _folded(alert.alertname)
        labels = [f"{key}={alert.labels[key].lower()}" for key in self.labels if alert.labels.get(key)]
        return [name, *labels, *sorted(metric_context(alert))]


def _folded(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())
