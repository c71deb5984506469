"""One trigger in, at most one run, exactly one result out (None for a redelivery, which was
answered the first time).

Order: claim the run (idempotency) → refuse a trigger older than the claims are kept (a replay the
ledger could no longer recognise) → re-check the trigger against the catalog → run the function
under its timeout → map how it ended to a `Result`. Every way a run can end is mapped here and
nowhere else: `Skipped` → skipped, `FunctionError` (an API refusal included) → failed, a timeout →
failed, anything else → failed and logged, since this is the isolation point of one trigger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timezone

from ..errors import CatalogError, FunctionError, Skipped
from ..schemas.catalog import Catalog
from ..settings import Settings
from .base import Context, Function
from .kube import Kube
from .ledger import Ledger, run_key
from .metrics import FunctionMetrics
from .result import Result, Status
from .trigger import Trigger, check_trigger

log = logging.getLogger(__name__)


class Runner:
    def __init__(self, settings: Settings, catalog: Catalog, kube: Kube | None, ledger: Ledger,
                 functions: Mapping[str, Function], metrics: FunctionMetrics | None = None) -> None:
        if not functions:
            raise ValueError("a runner needs at least one function")
        self.settings = settings
        self.catalog = catalog
        self.kube = kube
        self.ledger = ledger
        self.functions = dict(functions)
        self.metrics = metrics or FunctionMetrics()
        self.denied_namespaces = set(settings.denied_namespaces)

    @property
    def dry_run(self) -> bool:
        return self.kube is not None and self.kube.dry

    async def run(self, trigger: Trigger) -> Result | None:
        label = trigger.function if trigger.function in self.catalog.by_name else "unknown"
        key = run_key(trigger.correlation_id, trigger.function)
        if not await self.ledger.claim(key):
            log.info("trigger %s for %s (%s) ran already: not acting again", trigger.id, trigger.function,
                     trigger.correlation_id)
            self.metrics.duplicates.labels(label).inc()
            return None
        started = time.monotonic()
        result = await self._execute(trigger)
        await asyncio.shield(self.ledger.finish(key, result.status.value))
        self.metrics.ran(label, result.status.value, time.monotonic() - started)
        log.info("%s on %s: %s: %s", trigger.function, trigger.correlation_id, result.status.value, result.message)
        return result

    async def _execute(self, trigger: Trigger) -> Result:
        function = self.functions.get(trigger.function)
        if function is None:
            return Result(Status.FAILED, f"refused: {trigger.function!r} is not run here "
                          f"(AGENT_SRE_FUNCTIONS={','.join(sorted(self.functions))})")
        window = self.settings.functions_idempotency_ttl_s
        age = (datetime.now(timezone.utc) - trigger.time).total_seconds() if trigger.time else 0.0
        if age > window:
            return Result(Status.FAILED, f"refused: the trigger was published {age:.0f} s ago, longer than runs are "
                          f"remembered (AGENT_SRE_FUNCTIONS_IDEMPOTENCY_TTL_S={window:g}): a replay, or a backlog")
        try:
            check_trigger(trigger, self.catalog, self.denied_namespaces)
        except CatalogError as exc:
            return Result(Status.FAILED, f"refused: {exc}")
        context = Context(self.kube, self.settings, trigger)
        timeout = self.settings.functions_timeouts.get(trigger.function, self.settings.functions_timeout_s)
        try:
            done = await asyncio.wait_for(function(context, dict(trigger.parameters)), timeout)
        except Skipped as exc:
            return Result(Status.SKIPPED, str(exc), context.actions)
        except FunctionError as exc:
            return Result(Status.FAILED, str(exc), context.actions)
        except TimeoutError:
            return Result(Status.FAILED, f"timed out after {timeout:g} s", context.actions)
        except Exception as exc:  # the isolation point of one trigger: it fails, the process goes on
            log.exception("%s failed on trigger %s", trigger.function, trigger.id)
            return Result(Status.FAILED, f"internal error: {type(exc).__name__}: {exc}", context.actions)
        return Result(Status.SUCCEEDED, done.message, context.actions, done.report)
