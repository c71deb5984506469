"""Every catalog function against the fake Kubernetes API (tests/kube_api.py), through the runner.

For each function: the exact writes it sends, at most once for a redelivered trigger (in memory
and in the real Redis), nothing at all for a denied namespace or a tampered parameter, and
server-side dry run that changes nothing.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from agent_sre.functions.ledger import RedisLedger
from agent_sre.functions.result import Status
from tests.functions_harness import CATALOG, alert_for, runner_for, trigger_for
from tests.functions_scenarios import EXTRA_PATHS, SCENARIOS, Scenario
from tests.kube_api import FakeKube

ACTING = {name: s for name, s in SCENARIOS.items() if s.writes}
NAMESPACED = [name for name in SCENARIOS if any(p.name == "namespace" for p in CATALOG.by_name[name].parameters)]


@pytest.fixture
def fake(fake_kube: FakeKube) -> FakeKube:
    return fake_kube  # tests/conftest.py's


def _calls(fake: FakeKube) -> list[tuple[str, str, str]]:
    return [(r.method, r.path, r.content_type) for r in fake.writes]


def test_every_catalog_function_has_a_scenario():
    assert sorted(SCENARIOS) == sorted(CATALOG.names)


@pytest.mark.parametrize("scenario", [*SCENARIOS.values(), *EXTRA_PATHS.values()], ids=[*SCENARIOS, *EXTRA_PATHS])
async def test_the_function_sends_exactly_its_writes(fake, tmp_path, scenario: Scenario):
    # Given the world the alert describes
    scenario.seed(fake)
    runner = await runner_for(fake, tmp_path)
    # When its trigger arrives
    result = await runner.run(trigger_for(scenario.function, scenario.labels))
    # Then it succeeds with exactly these writes, and the world shows them
    assert result is not None and result.status is Status.SUCCEEDED, result
    assert _calls(fake) == scenario.writes
    assert all("dryRun" not in r.query for r in fake.writes)
    scenario.check(fake, fake.writes)
    assert result.actions or not scenario.writes


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_a_redelivered_trigger_acts_once(fake, tmp_path, name):
    scenario = SCENARIOS[name]
    scenario.seed(fake)
    runner = await runner_for(fake, tmp_path)
    trigger = trigger_for(scenario.function, scenario.labels)

    first = await runner.run(trigger)
    scenario.seed(fake)  # even if the world looks as before again (the pod back, the Job failed)
    second = await runner.run(trigger)

    assert first is not None and first.status is Status.SUCCEEDED
    assert second is None  # acted on and answered once
    assert _calls(fake) == scenario.writes


@pytest.mark.parametrize("name", ["pod-restart", "job-retry", "flux-reconcile-kustomization"])
async def test_replicas_sharing_redis_act_once(fake, tmp_path, redis_url, redis_prefix, name):
    scenario = ACTING[name]
    scenario.seed(fake)
    clients = [aioredis.Redis.from_url(redis_url, decode_responses=True) for _ in range(2)]
    runners = [await runner_for(fake, tmp_path, ledger=RedisLedger(c, prefix=redis_prefix, ttl_s=60))
               for c in clients]
    trigger = trigger_for(scenario.function, scenario.labels)
    try:
        results = [await runner.run(trigger) for runner in runners]
    finally:
        for client in clients:
            await client.aclose()

    assert [r.status if r else None for r in results] == [Status.SUCCEEDED, None]
    assert _calls(fake) == scenario.writes


@pytest.mark.parametrize("name", NAMESPACED)
async def test_a_denied_namespace_is_refused_without_a_single_call(fake, tmp_path, name):
    scenario = SCENARIOS[name]
    labels = {**scenario.labels, "namespace": "kube-system"}
    labels.pop("exported_namespace", None)
    runner = await runner_for(fake, tmp_path)
    # A trigger as a forger (or a buggy worker) would publish it: kube-system in the parameters.
    parameters = {**CATALOG.resolve(name, alert_for(labels)), "namespace": "kube-system"}

    result = await runner.run(trigger_for(name, labels, parameters=parameters))

    assert result is not None and result.status is Status.FAILED
    assert "deny list" in result.message
    assert fake.requests == []


@pytest.mark.parametrize("name", sorted(n for n in ACTING if "name" in {p.name for p in CATALOG.by_name[n].parameters}))
async def test_a_parameter_the_alert_does_not_give_is_refused(fake, tmp_path, name):
    scenario = ACTING[name]
    scenario.seed(fake)
    runner = await runner_for(fake, tmp_path)
    parameters = {**CATALOG.resolve(name, alert_for(scenario.labels)), "name": "something-else"}

    result = await runner.run(trigger_for(name, scenario.labels, parameters=parameters))

    assert result is not None and result.status is Status.FAILED and "refused" in result.message
    assert fake.requests == []


@pytest.mark.parametrize("name", sorted(ACTING))
async def test_dry_run_sends_the_same_writes_and_changes_nothing(fake, tmp_path, name):
    scenario = ACTING[name]
    scenario.seed(fake)
    before = {key: dict(obj) for key, obj in fake.objects.items()}
    runner = await runner_for(fake, tmp_path, dry_run=True)

    result = await runner.run(trigger_for(scenario.function, scenario.labels))

    assert result is not None and result.status is Status.SUCCEEDED
    assert _calls(fake) == scenario.writes
    for write in fake.writes:
        dry = write.body.get("dryRun") if write.method == "DELETE" else [write.query.get("dryRun")]
        assert dry == ["All"], write
    assert fake.objects == before
    assert all(action.endswith("(server-side dry run)") for action in result.actions)
