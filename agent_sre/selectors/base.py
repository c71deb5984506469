"""The selector protocol and plugin discovery.

A selector is pure: `async select(alert) -> Proposal | None`, where None means "no opinion,
ask the next one". It imports nothing from the broker and records no metrics; the chain
does that around it. Third parties register a factory under the entry-point group
`agent_sre.selectors`:

    [project.entry-points."agent_sre.selectors"]
    mine = "my_package.selector:create"     # create(context: SelectorContext) -> Selector

A selector may also define `evidence` (an `EvidenceKind`: what its answers rest on; a risky
function needs two selectors of different kinds to agree, and a selector that does not say is a
kind of its own), `async start()` (load a model; the worker is not ready until it
returns), `async close()`, `default_timeout_s` and `default_threshold` (its chain timeout and
confidence threshold unless the operator sets them in AGENT_SRE_SELECTOR_OPTIONS; the global
AGENT_SRE_SELECTOR_TIMEOUT_S and AGENT_SRE_SELECTOR_THRESHOLD apply otherwise), and
`async prepare(alert)`: the chain calls it when it asks the selector before this one, so that
work this one will need (rag's embedding of the alert) runs on the side thread meanwhile
(`agent_sre.compute.run_aside`). It decides nothing; its result may go unused.

A selector from outside agent-sre runs on an event loop and thread of its own (`isolation.py`),
so one that blocks cannot stall the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from ..errors import ConfigError
from ..schemas.alert import Alert
from ..schemas.catalog import Catalog
from ..schemas.decision import Proposal
from ..settings import Settings
from .isolation import OwnLoop

ENTRY_POINT_GROUP = "agent_sre.selectors"


@runtime_checkable
class Selector(Protocol):
    name: str

    async def select(self, alert: Alert) -> Proposal | None: ...


@dataclass(frozen=True)
class SelectorContext:
    """What a selector factory gets: the settings and the catalog it must answer from."""

    settings: Settings
    catalog: Catalog


SelectorFactory = Callable[[SelectorContext], Selector]


def available_selectors() -> dict[str, SelectorFactory]:
    """Every installed selector factory, keyed by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}  # type: ignore[misc]


def create_selectors(names: list[str], context: SelectorContext) -> list[Selector]:
    """Build the named selectors, in order; raise ConfigError naming what is installed."""
    if not names:
        raise ConfigError("no selectors configured: set AGENT_SRE_SELECTORS, e.g. static,rules")
    installed = available_selectors()
    missing = [name for name in names if name not in installed]
    if missing:
        raise ConfigError(
            f"unknown selector(s) {', '.join(missing)}; installed: {', '.join(sorted(installed)) or 'none'}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"a selector is listed twice in {','.join(names)}")
    selectors = []
    for name in names:
        selector = installed[name].load()(context)
        if not isinstance(selector, Selector):
            raise ConfigError(f"selector {name!r} does not implement `name` and `async select(alert)`")
        if not str(getattr(installed[name], "value", "")).startswith("agent_sre."):
            selector = OwnLoop(selector)  # a plugin: it must not be able to stall the worker's loop
        selectors.append(selector)
    return selectors


async def start_selectors(selectors: list[Selector]) -> None:
    """Run each selector's optional `start()` (model loading) once, in order."""
    for selector in selectors:
        start = getattr(selector, "start", None)
        if start is not None:
            await start()


async def close_selectors(selectors: list[Selector]) -> None:
    for selector in selectors:
        close = getattr(selector, "close", None)
        if close is not None:
            await close()
