"""The audit trail's file: created with its directory, one JSON line per record, each one the readers take."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from agent_sre.schemas.audit import AuditRecord
from agent_sre.worker.audit import AuditLog


def test_a_missing_audit_directory_is_created_before_the_file_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "var" / "log" / "agent-sre" / "audit.jsonl"

    audit = AuditLog(path)
    audit.write({"action": "published", "alertname": "KubePodCrashLooping"})
    audit.close()

    [record] = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert record["action"] == "published" and record["audit"] is True and record["ts"]


def test_a_record_is_written_as_the_readers_take_it_and_a_key_they_do_not_know_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.write({"action": "published", "labels": {"alertname": "X"}, "error": None, "decision": {"confidence": 0.9}})
    with pytest.raises(ValueError, match="sneaky"):
        audit.write({"action": "published", "sneaky": "field"})
    with pytest.raises(ValueError, match="action"):
        audit.write({"alertname": "X"})
    audit.close()

    [line] = path.read_text().splitlines()
    record = AuditRecord.model_validate_json(line)
    assert record.labels == {"alertname": "X"} and record.decision == {"confidence": 0.9} and record.ts is not None
    assert "error" not in orjson.loads(line) and orjson.loads(line)["ts"].endswith("Z")
