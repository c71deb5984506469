"""Past decisions that worked, read from the worker's audit log (JSON lines), as labelled examples.

A published decision is an example once what followed it says it worked: its alert resolved, or
its function reported `succeeded` (an `outcome` record carrying its `trigger_id`), and nothing
said otherwise (`failed`, `not_resolved`). Whatever chose it, a decision nobody saw work is not
learnt from: one mistake would reinforce itself. Records are read with the writer's own model
(`agent_sre.schemas.audit.AuditRecord`); what a record carries (the alert's name and labels) is
embedded like a training example.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from ..schemas.alert import Alert
from ..schemas.audit import Action, AuditRecord, RemediationOutcome
from ..schemas.catalog import Catalog
from .neighbours import LabelledText
from .text import alert_text

log = logging.getLogger(__name__)

MAX_TAIL_BYTES = 8 * 1024 * 1024  # only the newest records: an audit log grows without bound


def confirmed_examples(path: Path | None, catalog: Catalog, max_bytes: int = MAX_TAIL_BYTES) -> list[LabelledText]:
    """One example per distinct (text, function) among the decisions in the log's tail that worked."""
    if path is None or not path.exists():
        return []
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, 2)
            stream.seek(max(0, size - max_bytes))
            tail = stream.read()
    except OSError as exc:
        log.warning("audit log %s cannot be read for few-shot examples: %s", path, exc.strerror)
        return []
    lines = tail.splitlines()
    if len(tail) >= max_bytes and lines:
        lines = lines[1:]  # the first line was cut in the middle
    records = [record for line in lines if (record := _record(line)) is not None]
    worked, failed = set(), set()
    for record in records:
        if record.action is Action.OUTCOME and record.trigger_id:
            (worked if record.outcome in _WORKED else failed).add(record.trigger_id)
    seen: dict[tuple[str, str], LabelledText] = {}
    for record in records:
        if record.action is Action.PUBLISHED and record.trigger_id in worked - failed:
            example = _example(record, catalog)
            if example is not None:
                seen.setdefault((example.text, example.function), example)
    return list(seen.values())


_WORKED = {RemediationOutcome.RESOLVED, RemediationOutcome.SUCCEEDED}


def _record(line: bytes) -> AuditRecord | None:
    try:
        return AuditRecord.model_validate_json(line)
    except ValidationError:  # not JSON, or another program's line on stdout
        return None


def _example(record: AuditRecord, catalog: Catalog) -> LabelledText | None:
    function = (record.decision or {}).get("lambda_function")
    if function not in catalog.by_name or not record.alertname:
        return None
    try:
        alert = Alert(labels={**(record.labels or {}), "alertname": record.alertname})
    except ValidationError:
        return None
    return LabelledText(alert_text(alert), function, "audit")
