"""Confirmed past decisions, read from the worker's audit log (JSON lines), as labelled examples.

A decision counts as confirmed when it was published and either came from the operator's own
`lambda_function` annotation (method `static`) or carries `"confirmed": true`, set by whoever
reviewed it. Decisions the model selectors made on their own are not confirmed: learning from
them would let one mistake reinforce itself.

The worker's audit records carry the alert's name and labels (not its annotations); what a
record carries is embedded like a training example.
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
from pydantic import ValidationError

from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from .neighbours import LabelledText
from .text import alert_text

log = logging.getLogger(__name__)

MAX_TAIL_BYTES = 8 * 1024 * 1024  # only the newest records: an audit log grows without bound


def confirmed_examples(path: Path | None, catalog: Catalog, max_bytes: int = MAX_TAIL_BYTES) -> list[LabelledText]:
    """One example per distinct (text, function) among the confirmed decisions in the log's tail."""
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
    seen: dict[tuple[str, str], LabelledText] = {}
    for line in lines:
        example = _example(line, catalog)
        if example is not None:
            seen.setdefault((example.text, example.function), example)
    return list(seen.values())


def _example(line: bytes, catalog: Catalog) -> LabelledText | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or record.get("action") != "published":
        return None
    decision = record.get("decision")
    if not isinstance(decision, dict):
        return None
    function = decision.get("lambda_function")
    if function not in catalog.by_name:
        return None
    if decision.get("method") != "static" and record.get("confirmed") is not True:
        return None
    alert = _alert(record)
    return LabelledText(alert_text(alert), function, "audit") if alert is not None else None


def _alert(record: dict) -> Alert | None:
    labels = record.get("labels")
    if not isinstance(labels, dict):
        labels = {}
    name = record.get("alertname")
    if isinstance(name, str) and name:
        labels = {**labels, "alertname": name}
    annotations = record.get("annotations") if isinstance(record.get("annotations"), dict) else {}
    try:
        alert = Alert(labels=labels, annotations=annotations)
    except ValidationError:
        return None
    return alert if alert.labels.get("alertname") else None
