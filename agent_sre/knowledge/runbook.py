"""Read the runbook (docs/RUNBOOK.md, shipped as agent_sre/data/RUNBOOK.md) into one `RunbookEntry` per function.

The runbook is written for people; its sections keep a fixed shape (`## function`, then
`- **field**: value` lines) so that this parser can turn it into the seed of the training data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

# In the package, so an installed (non-editable) agent-sre has it; docs/RUNBOOK.md links here.
DEFAULT_RUNBOOK = Path(__file__).resolve().parents[1] / "data" / "RUNBOOK.md"
CONTEXT_KEYS = frozenset({"traffic"})  # conditions on metric context, not on labels

_FIELD = re.compile(r"^- \*\*(?P<field>[a-z ]+)\*\*:\s*(?P<value>.*)$")
_FUNCTION = re.compile(r"^[a-z][a-z0-9-]*$")
_ALERT = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9]*)(?:\s*\((?P<key>\w+)=(?P<value>[\w.-]+)\))?$")


@dataclass(frozen=True)
class AlertPattern:
    """One alert name that calls for a function, optionally only under one condition."""

    name: str
    condition: tuple[str, str] | None = None

    @property
    def label_condition(self) -> tuple[str, str] | None:
        return self.condition if self.condition and self.condition[0] not in CONTEXT_KEYS else None

    @property
    def context(self) -> str | None:
        """The metric-context condition's value (`rising`, `flat`), if any."""
        return self.condition[1] if self.condition and self.condition[0] in CONTEXT_KEYS else None


@dataclass(frozen=True)
class RunbookEntry:
    function: str
    does: str
    alerts: list[AlertPattern]
    held_out: list[AlertPattern]
    extra_labels: list[str]
    says: list[str]
    not_when: str
    labels: str = ""


def parse_runbook(text: str) -> dict[str, RunbookEntry]:
    """Every `## function` section that has an `alerts` field, keyed by function name."""
    entries: dict[str, RunbookEntry] = {}
    for heading, body in _sections(text):
        fields = _fields(body)
        if not _FUNCTION.match(heading) or "alerts" not in fields:
            continue  # an explanatory section, not a function
        entries[heading] = RunbookEntry(
            function=heading,
            does=fields.get("does", ""),
            alerts=_patterns(fields["alerts"], heading),
            held_out=_patterns(fields.get("held out", ""), heading),
            extra_labels=_comma_list(fields.get("extra labels", "")),
            says=[s.strip() for s in fields.get("says", "").split(" | ") if s.strip()],
            not_when=fields.get("not when", ""),
            labels=fields.get("labels", ""),
        )
    return entries


def load_runbook(path: Path | None = None, functions: list[str] | None = None) -> dict[str, RunbookEntry]:
    """Parse the runbook; with `functions`, insist that it covers exactly those names."""
    path = path or DEFAULT_RUNBOOK
    try:
        entries = parse_runbook(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"runbook {path} cannot be read: {exc.strerror}") from exc
    if functions is not None and set(entries) != set(functions):
        missing, extra = set(functions) - set(entries), set(entries) - set(functions)
        raise ConfigError(f"runbook {path} does not match the catalog: missing {sorted(missing)}, extra {sorted(extra)}")
    return entries


def _sections(text: str) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif sections:
            sections[-1][1].append(line)
    return sections


def _fields(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        match = _FIELD.match(line.strip())
        if match:
            fields[match["field"]] = match["value"].strip()
    return fields


def _patterns(value: str, function: str) -> list[AlertPattern]:
    patterns = []
    for item in _comma_list(value):
        match = _ALERT.match(item)
        if not match:
            raise ConfigError(f"runbook section {function}: cannot read alert {item!r}")
        condition = (match["key"], match["value"]) if match["key"] else None
        patterns.append(AlertPattern(match["name"], condition))
    return patterns


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
