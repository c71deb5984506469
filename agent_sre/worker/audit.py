"""The audit trail: one JSON line per record (`agent_sre.schemas.audit.AuditRecord`), flushed each."""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..schemas.audit import AuditRecord


class AuditLog:
    """Appends JSON lines to a file (or stdout when no path is set) and flushes each one."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: TextIO = path.open("a", encoding="utf-8") if path else sys.stdout

    def write(self, fields: dict[str, Any]) -> None:
        """Write one record; a key AuditRecord does not name raises ValueError (pydantic's)."""
        record = AuditRecord.model_validate({**fields, "ts": datetime.now(timezone.utc)})
        line = orjson.dumps(record.model_dump(mode="json", exclude_none=True)).decode()
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self.path is not None:
            self._stream.close()
