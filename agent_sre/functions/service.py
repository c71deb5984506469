"""A runner built from settings, as `agent-sre functions serve|consume` start it: the catalog, the
Kubernetes API (only when a selected function uses it), the ledger (Redis when configured) and the
result key."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from ..schemas.catalog import load_catalog
from ..settings import Settings
from .kube import Kube, connect
from .ledger import Ledger, MemoryLedger, RedisLedger
from .metrics import FunctionMetrics
from .permissions import PERMISSIONS
from .registry import select
from .runner import Runner


@dataclass
class Service:
    runner: Runner
    key: bytes | None  # AGENT_SRE_RESULT_KEY: results are signed with it

    @property
    def settings(self) -> Settings:
        return self.runner.settings


def _ledger(settings: Settings) -> Ledger:
    if settings.redis_url is None:
        return MemoryLedger(settings.functions_idempotency_ttl_s)
    redis = Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=settings.redis_timeout_s,
                           decode_responses=True)
    return RedisLedger(redis, prefix=settings.redis_prefix, ttl_s=settings.functions_idempotency_ttl_s)


@contextlib.asynccontextmanager
async def service(settings: Settings, metrics: FunctionMetrics | None = None) -> AsyncIterator[Service]:
    catalog = load_catalog(settings.catalog_path)
    functions = select(settings.functions, catalog.names)
    uses_api = any(PERMISSIONS[name].cluster or PERMISSIONS[name].own for name in functions)
    kube: Kube | None = await connect(settings.functions_dry_run) if uses_api else None
    ledger = _ledger(settings)
    key = settings.result_key.get_secret_value().encode() if settings.result_key else None
    try:
        yield Service(Runner(settings, catalog, kube, ledger, functions, metrics), key)
    finally:
        await ledger.close()
        if kube is not None:
            await kube.close()
