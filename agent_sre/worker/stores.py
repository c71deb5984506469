"""The stores of the worker's state, built from the settings: the limits, the outcomes and the
approvals. In Redis (`agent_sre.worker.redis_client`) when AGENT_SRE_REDIS_URL is set, shared by
every replica and on the limits' batch; else the limits and outcomes in this process, and no
approvals (they need Redis)."""

from __future__ import annotations

import logging

from ..errors import ConfigError, TransientError
from ..settings import Settings
from .approvals import NEEDS_REDIS, RedisApprovals
from .limits import Limits, LimitSettings, MemoryLimits
from .outcomes import MemoryOutcomes, Outcomes, RedisOutcomes
from .shared import RedisLimits

log = logging.getLogger(__name__)


def build_approvals(settings: Settings, limits: Limits) -> RedisApprovals:
    """In the limits' Redis; the Worker refuses to start approvals without one."""
    if not isinstance(limits, RedisLimits):
        raise ConfigError(NEEDS_REDIS)
    return RedisApprovals(limits.batch, prefix=settings.redis_prefix, keep_s=settings.dedup_ttl_s,
                          lease_s=settings.claim_ttl_s)


def build_outcomes(settings: Settings, limits: Limits) -> Outcomes:
    """Beside the limits: in their Redis when they are shared, else in this process."""
    if isinstance(limits, RedisLimits):
        return RedisOutcomes(limits.batch, prefix=settings.redis_prefix, ttl_s=settings.outcome_ttl_s)
    return MemoryOutcomes(settings.outcome_ttl_s)


async def build_limits(settings: Settings) -> Limits:
    """In Redis when AGENT_SRE_REDIS_URL is set (shared by every replica), else in this process."""
    limits = LimitSettings.of(settings)
    if settings.redis_url is None:
        return MemoryLimits(limits)
    try:
        shared = RedisLimits.from_url(
            settings.redis_url.get_secret_value(), settings.redis_timeout_s, limits,
            prefix=settings.redis_prefix, claim_ttl_s=settings.claim_ttl_s,
        )
    except ValueError as exc:
        raise ConfigError(
            "AGENT_SRE_REDIS_URL(_FILE) is not a Redis URL: expected redis://[:PASSWORD@]HOST[:PORT][/DB] "
            "(or rediss:// or unix://), with special characters in the password percent-encoded"
        ) from exc
    try:
        await shared.ping()
        log.info("limits shared in Redis (prefix %s)", settings.redis_prefix)
    except TransientError as exc:
        # Not fatal: nothing acts without its claim, so alerts wait in the retry queues meanwhile.
        log.warning("%s; alerts are retried until it answers", exc)
    return shared
