"""The audit trail: one JSON line per record (`agent_sre.schemas.audit.AuditRecord`), flushed each."""

from __future__ import annotations

import logging
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from ..schemas.audit import SETTLED_LATER, Action, AuditRecord
from ..schemas.verdict import Verdict

if TYPE_CHECKING:
    from ..schemas.alert import Alert
    from ..schemas.cloudevent import InboundEvent

log = logging.getLogger(__name__)

_FIELDS = frozenset(AuditRecord.model_fields)


class AuditLog:
    """Appends JSON lines to a file (or stdout when no path is set) and flushes each one."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: TextIO = path.open("a", encoding="utf-8") if path else sys.stdout

    def write(self, fields: dict[str, Any]) -> None:
        """Write one record, its None values left out. A key AuditRecord does not name, or no
        `action`, raises ValueError. The values are not validated here, once per alert: the
        readers validate each line (`AuditRecord.model_validate_json`), and so do the tests."""
        if unknown := fields.keys() - _FIELDS:
            raise ValueError(f"audit record keys {sorted(unknown)} are not fields of AuditRecord")
        if "action" not in fields:
            raise ValueError("an audit record needs an action")
        record = {"audit": True, **{k: v for k, v in fields.items() if v is not None}, "ts": datetime.now(timezone.utc)}
        line = orjson.dumps(record, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE).decode()
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    def close(self) -> None:
        if self.path is not None:
            self._stream.close()


class AuditTrail:
    """What became of each alert, as audit records. A record whose alert's fate waits for the
    message's settlement (`SETTLED_LATER`) is held in the verdict; the consumer writes it once
    the message is settled (`settled`), with what became of the message."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def alert(self, verdict: Verdict, event: InboundEvent, alert: Alert, action: Action, **extra: Any) -> None:
        record = {
            "event_id": event.id,
            "correlation_id": alert.correlation_id,
            "fingerprint": alert.identity,
            "alertname": alert.alertname,
            "labels": alert.labels,
            "action": action,
            **extra,
        }
        if action in SETTLED_LATER:
            verdict.records.append(record)
        else:
            self.write(record)

    def settled(self, verdict: Verdict, **fate: Any) -> None:
        """Write the records that waited for the message's settlement, with what became of it."""
        for record in verdict.records:
            self.write({**record, **fate})
        verdict.records.clear()

    def write(self, record: dict[str, Any]) -> None:
        try:
            self.audit.write(record)
        except Exception:  # isolation point: a full disk must not change what happens to the alert
            log.exception("audit write failed for %s", record.get("alertname"))
