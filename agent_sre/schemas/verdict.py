"""What handling one input message came to: the consumer settles the message from it, once.

The pipeline fills a `Verdict`; the consumer maps it to a `Settlement`
(`agent_sre.worker.consumer.Consumer`), in this order: a retry reason, invalid input, alerts
another replica holds, alerts whose handling raised, undecided alerts, else processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError


@dataclass
class Verdict:
    """What handling one message came to; the consumer settles the message from it."""

    type_label: str = "other"
    alertnames: list[str] = field(default_factory=list)
    invalid: InputError | None = None  # bad input: its `reason` is the dead-letter reason
    retry_reason: str | None = None  # a trigger or the shared state failed: the message is retried
    undecided: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # `alertname: error` for alerts whose handling raised
    busy: list[str] = field(default_factory=list)  # alerts another replica holds
    actions: int = 0  # active remediations this message triggered (the per-message storm cap)
    records: list[dict[str, Any]] = field(default_factory=list)  # audit records written at settlement
