"""Every function by its catalog name; `select` picks those a process runs (AGENT_SRE_FUNCTIONS)."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigError
from . import certificates, escalate, flux, jobs, nodes, pods, reports, rollout, scale
from .base import Function

ALL: dict[str, Function] = {
    **flux.FUNCTIONS, **pods.FUNCTIONS, **rollout.FUNCTIONS, **scale.FUNCTIONS, **certificates.FUNCTIONS,
    **jobs.FUNCTIONS, **nodes.FUNCTIONS, **reports.FUNCTIONS, **escalate.FUNCTIONS,
}


def select(names: Iterable[str], catalog_names: Iterable[str]) -> dict[str, Function]:
    """The named functions (all of the catalog's when none is named); ConfigError for an unknown
    name, or a catalog function that has no implementation."""
    wanted = list(names) or list(catalog_names)
    unknown = [name for name in wanted if name not in ALL]
    if unknown:
        raise ConfigError(f"AGENT_SRE_FUNCTIONS names functions that do not exist: {unknown}; known: {sorted(ALL)}")
    missing = [name for name in catalog_names if name not in ALL]
    if missing and not list(names):
        raise ConfigError(f"the catalog has functions with no implementation: {missing}; name those to run "
                          "in AGENT_SRE_FUNCTIONS")
    return {name: ALL[name] for name in wanted}
