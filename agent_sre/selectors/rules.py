"""`rules`: the last resort, ordered patterns over alertname, labels and summary from the catalog."""

from __future__ import annotations

import re

from ..knowledge.context import metric_context
from ..schemas.alert import Alert
from ..schemas.catalog import Rule
from ..schemas.decision import EvidenceKind, Proposal
from .base import SelectorContext


class RulesSelector:
    name = "rules"
    evidence = EvidenceKind.RULES

    def __init__(self, context: SelectorContext) -> None:
        self.rules = [_CompiledRule(rule) for rule in context.catalog.rules]

    async def select(self, alert: Alert) -> Proposal | None:
        for number, rule in enumerate(self.rules, start=1):
            if rule.matches(alert):
                function = rule.rule.function
                return Proposal(
                    lambda_function=function,
                    confidence=rule.rule.confidence,
                    reasoning=f"catalog rule #{number} maps {alert.alertname} to {function}",
                )
        return None


class _CompiledRule:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.alertname = re.compile(rule.alertname, re.IGNORECASE)
        self.labels = {key: re.compile(pattern, re.IGNORECASE) for key, pattern in rule.labels.items()}
        self.summary = re.compile(rule.summary, re.IGNORECASE) if rule.summary else None
        self.context = re.compile(rule.context) if rule.context else None

    def matches(self, alert: Alert) -> bool:
        if not self.alertname.search(alert.alertname):
            return False
        if any(not pattern.search(alert.labels.get(key, "")) for key, pattern in self.labels.items()):
            return False
        if self.context is not None and not self.context.search(" ".join(sorted(metric_context(alert)))):
            return False
        if self.summary is not None:
            text = " ".join(filter(None, (alert.annotations.get("summary"), alert.annotations.get("description"))))
            return bool(self.summary.search(text))
        return True


def create(context: SelectorContext) -> RulesSelector:
    return RulesSelector(context)
