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

from ..errors import FunctionError
from ..settings import Settings
from .kube import Kube
from .trigger import Trigger


@dataclass
class Context:
    api: Kube | None  # None in a process that runs only functions without Kubernetes (escalate)
    settings: Settings
    trigger: Trigger
    actions: list[str] = field(default_factory=list)  # what was done, in words, as it happens

    @property
    def kube(self) -> Kube:
        if self.api is None:
            raise FunctionError("no Kubernetes API is configured in this process")
        return self.api

    def did(self, action: str) -> None:
        dry = self.api is not None and self.api.dry
        self.actions.append(f"{action} (server-side dry run)" if dry else action)


@dataclass(frozen=True)
class Done:
    message: str
    report: dict[str, Any] | None = None  # read-only functions: what they found


Function = Callable[[Context, dict[str, str]], Awaitable[Done]]


def now_rfc3339(precise: bool = False) -> str:
    """UTC now: seconds (kubectl's restartedAt) or microseconds (flux's requestedAt token)."""
    moment = datetime.now(timezone.utc)
    return moment.isoformat(timespec="microseconds" if precise else "seconds").replace("+00:00", "Z")
