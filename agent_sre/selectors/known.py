"""`known`: the alert is one that a public rule collection ships, and the knowledge says what it needs.

It looks the alert's name up in `agent_sre/data/real_alerts.jsonl` (exactly, else ignoring case
and punctuation, as collections publish one rule under several spellings) and keeps the lines
whose `condition` the alert's labels meet; a line with a condition wins over one without. It
abstains when nothing matches, when the lines it finds disagree, and on `ignore` lines (the
chain's ignore list decides those). Parameters are the chain's business, as for every selector.
"""

from __future__ import annotations

import re

from ..knowledge.real import IGNORE, RealAlert, load_real_alerts
from ..schemas.alert import Alert
from ..schemas.catalog import ESCALATE, Catalog
from ..schemas.decision import EvidenceKind, Proposal
from .base import SelectorContext

CONFIDENCE = {ESCALATE: 1.0}  # escalating a known alert is never a risk
ACTIVE_CONFIDENCE = 0.95  # an active function still needs the evidence and a second selector


class KnownSelector:
    name = "known"
    evidence = EvidenceKind.NAME_TABLE

    def __init__(self, catalog: Catalog, alerts: list[RealAlert] | None = None) -> None:
        self.catalog = catalog
        self.exact: dict[str, list[RealAlert]] = {}
        self.folded: dict[str, list[RealAlert]] = {}
        for entry in load_real_alerts() if alerts is None else alerts:
            self.exact.setdefault(entry.alert, []).append(entry)
            self.folded.setdefault(_key(entry.alert), []).append(entry)

    async def select(self, alert: Alert) -> Proposal | None:
        entries = self.exact.get(alert.alertname) or self.folded.get(_key(alert.alertname), [])
        matching = [e for e in entries if e.applies_to(alert)]
        specific = [e for e in matching if e.condition]
        matching = specific or matching
        actions = {e.action for e in matching}
        if len(actions) != 1:
            return None
        [action] = actions
        if action == IGNORE or action not in self.catalog.by_name:
            return None
        sources = ", ".join(sorted({e.source for e in matching}))
        return Proposal(
            lambda_function=action,
            confidence=CONFIDENCE.get(action, ACTIVE_CONFIDENCE),
            reasoning=f"{alert.alertname} is a known alert ({sources}): {matching[0].reason}",
        )


def _key(alertname: str) -> str:
    return re.sub(r"[^a-z0-9]", "", alertname.lower())


def create(context: SelectorContext) -> KnownSelector:
    return KnownSelector(context.catalog)
