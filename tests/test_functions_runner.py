"""The runner's one mapping from how a run ended to its result, table-driven, no API needed."""

from __future__ import annotations

import asyncio

import pytest

from agent_sre.errors import FunctionError, KubeApiError, Skipped
from agent_sre.functions.base import Context, Done
from agent_sre.functions.ledger import MemoryLedger
from agent_sre.functions.metrics import FunctionMetrics
from agent_sre.functions.result import Status
from agent_sre.functions.runner import Runner
from tests.functions_harness import CATALOG, settings_for, trigger_for

LABELS = {"pod": "api-7f9", "namespace": "shop"}


def _runner(behaviour, **settings) -> Runner:
    async def function(ctx: Context, params: dict[str, str]) -> Done:
        return await behaviour(ctx, params)

    return Runner(settings_for(**settings), CATALOG, None, MemoryLedger(60), {"pod-restart": function},
                  FunctionMetrics())


async def _done(ctx, params):
    ctx.did("something")
    return Done("fine")


async def _skip(ctx, params):
    raise Skipped("nothing to do")


async def _refuse(ctx, params):
    raise FunctionError("must not")


async def _forbidden(ctx, params):
    raise KubeApiError(403, "Forbidden", "403 Forbidden: pods is forbidden")


async def _slow(ctx, params):
    await asyncio.sleep(5)
    return Done("too late")


async def _broken(ctx, params):
    raise KeyError("spec")


async def _no_api(ctx, params):
    return Done(str(ctx.kube))


@pytest.mark.parametrize(("behaviour", "status", "words"), [
    (_done, Status.SUCCEEDED, "fine"),
    (_skip, Status.SKIPPED, "nothing to do"),
    (_refuse, Status.FAILED, "must not"),
    (_forbidden, Status.FAILED, "403"),
    (_slow, Status.FAILED, "timed out after 0.2 s"),
    (_broken, Status.FAILED, "internal error: KeyError"),
    (_no_api, Status.FAILED, "no Kubernetes API"),
])
async def test_how_a_run_ends_is_its_result(behaviour, status, words):
    runner = _runner(behaviour, functions_timeouts={"pod-restart": 0.2})
    result = await runner.run(trigger_for("pod-restart", LABELS))
    assert result is not None and result.status is status and words in result.message
    assert runner.metrics.registry.get_sample_value(
        "agent_sre_function_runs_total", {"function": "pod-restart", "status": status.value}) == 1


async def test_a_function_not_run_here_is_refused():
    runner = _runner(_done)
    result = await runner.run(trigger_for("job-retry", {"job_name": "backup-1", "namespace": "shop"}))
    assert result is not None and result.status is Status.FAILED and "not run here" in result.message


async def test_a_resolved_alert_is_no_reason_to_act():
    runner = _runner(_done)
    trigger = trigger_for("pod-restart", LABELS)
    resolved = trigger.data.model_copy(update={"alert": trigger.data.alert.model_copy(update={"status": "resolved"})})
    result = await runner.run(type(trigger)(trigger.id, resolved, trigger.trace))
    assert result is not None and result.status is Status.FAILED and "resolved" in result.message


async def test_a_redelivery_is_counted_not_run():
    runner = _runner(_done)
    trigger = trigger_for("pod-restart", LABELS)
    await runner.run(trigger)
    assert await runner.run(trigger) is None
    assert runner.metrics.registry.get_sample_value("agent_sre_function_duplicates_total", {"function": "pod-restart"}) == 1


async def test_a_trigger_older_than_the_claims_is_refused_as_a_replay():
    from datetime import datetime, timedelta, timezone

    runner = _runner(_done, functions_idempotency_ttl_s=600)
    trigger = trigger_for("pod-restart", LABELS)
    old = type(trigger)(trigger.id, trigger.data, trigger.trace, datetime.now(timezone.utc) - timedelta(seconds=601))
    result = await runner.run(old)
    assert result is not None and result.status is Status.FAILED and "a replay, or a backlog" in result.message
    assert trigger.time is not None and abs((datetime.now(timezone.utc) - trigger.time).total_seconds()) < 60


async def test_the_workers_next_attempt_after_the_claims_expired_acts_again():
    # A later trigger for the same alert occurrence (the worker's attempt 2, after its cooldown)
    runner = Runner(settings_for(), CATALOG, None, MemoryLedger(0.05), {"pod-restart": _done}, FunctionMetrics())
    first = await runner.run(trigger_for("pod-restart", LABELS))
    await asyncio.sleep(0.1)
    second = await runner.run(trigger_for("pod-restart", LABELS))
    assert first is not None and second is not None and second.status is Status.SUCCEEDED
