"""What a remediation function is given, and what it gives back.

A function is a plain `async def run(ctx, params) -> Done`. It re-reads the object it is about to
act on and raises `Skipped` when there is nothing to do (gone, already healthy, already done),
`FunctionError` when it must not act; otherwise it acts and returns what it did. It never reads
the alert's text for anything but a report: `params` are the trigger's validated parameters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..settings import Settings
from .kube import Kube
from .trigger import Trigger


@dataclass
class Context:
    kube: Kube
    settings: Settings
    trigger: Trigger
    actions: list[str] = field(default_factory=list)  # what was done, in words, as it happens

    def did(self, action: str) -> None:
        self.actions.append(f"{action} (server-side dry run)" if self.kube.dry else action)

    @property
    def dry_run(self) -> bool:
        return self.kube.dry


@dataclass(frozen=True)
class Done:
    message: str
    report: dict[str, Any] | None = None  # read-only functions: what they found


Function = Callable[[Context, dict[str, str]], Awaitable[Done]]


def now_rfc3339(precise: bool = False) -> str:
    """UTC now: seconds (kubectl's restartedAt) or microseconds (flux's requestedAt token)."""
    moment = datetime.now(timezone.utc)
    return moment.isoformat(timespec="microseconds" if precise else "seconds").replace("+00:00", "Z")
