"""The audit trail's file: created with its directory, one JSON line per record."""

from __future__ import annotations

from pathlib import Path

import orjson

from agent_sre.worker.audit import AuditLog


def test_a_missing_audit_directory_is_created_before_the_file_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "var" / "log" / "agent-sre" / "audit.jsonl"

    audit = AuditLog(path)
    audit.write({"action": "published", "alertname": "KubePodCrashLooping"})
    audit.close()

    [record] = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert record["action"] == "published" and record["audit"] is True and record["ts"]
