"""A third-party selector that blocks its event loop stalls only itself, never the worker's."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.schemas.decision import Outcome, Proposal
from agent_sre.selectors import base
from agent_sre.selectors.base import SelectorContext, close_selectors, create_selectors, start_selectors
from agent_sre.selectors.chain import Chain
from agent_sre.selectors.isolation import OwnLoop
from agent_sre.settings import Settings

ALERT = Alert(labels={"alertname": "KubeJobFailed", "job_name": "backup-1", "namespace": "shop"})


class Blocking:
    """A badly written plugin: a synchronous sleep inside its async select."""

    name = "blocking"
    default_timeout_s = 0.3

    def __init__(self, block_s: float) -> None:
        self.block_s = block_s
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def select(self, alert: Alert) -> Proposal | None:
        time.sleep(self.block_s)
        return Proposal(lambda_function="job-retry", confidence=0.99, reasoning="blocked first")


@dataclass
class _EntryPoint:
    value: str
    factory: Any

    def load(self) -> Any:
        return self.factory


def test_plugins_run_on_a_loop_of_their_own_and_the_built_ins_do_not(monkeypatch) -> None:
    installed = dict(base.available_selectors())
    installed["blocking"] = _EntryPoint("thirdparty.selectors:create", lambda context: Blocking(0.0))
    monkeypatch.setattr(base, "available_selectors", lambda: installed)
    static, plugin = create_selectors(["static", "blocking"], SelectorContext(Settings(), load_catalog()))
    assert not isinstance(static, OwnLoop)
    assert isinstance(plugin, OwnLoop) and plugin.name == "blocking" and plugin.default_timeout_s == 0.3
    assert not hasattr(plugin, "prepare"), "the chain must not think it can prepare"


async def test_a_blocking_plugin_times_out_while_the_worker_loop_goes_on() -> None:
    plugin = OwnLoop(Blocking(block_s=1.5))
    await start_selectors([plugin])
    assert plugin.inner.started  # type: ignore[attr-defined]
    settings = Settings(selectors=["blocking", "rules"], agreement_risks=[])
    chain = Chain([plugin], load_catalog(), settings)
    ticks = 0

    async def heartbeat() -> None:  # what the other messages need: a loop that keeps turning
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    beating = asyncio.ensure_future(heartbeat())
    started = time.monotonic()
    decision = await chain.decide(ALERT)
    waited = time.monotonic() - started
    beating.cancel()
    [phase] = decision.phases
    assert phase.outcome is Outcome.TIMEOUT and decision.undecided
    assert waited < 1.0, f"the chain waited {waited:.2f}s for a plugin with a 0.3 s timeout"
    assert ticks >= 15, f"the worker's loop turned only {ticks} times while the plugin blocked"
    await close_selectors([plugin])


async def test_a_plugin_that_answers_in_time_is_heard() -> None:
    plugin = OwnLoop(Blocking(block_s=0.01))
    chain = Chain([plugin], load_catalog(), Settings(agreement_risks=[]))
    decision = await chain.decide(ALERT)
    assert decision.lambda_function == "job-retry" and decision.method == "blocking"
    await close_selectors([plugin])


async def test_closing_a_plugin_stops_its_loop() -> None:
    plugin = OwnLoop(Blocking(0.0))
    await close_selectors([plugin])
    plugin._thread.join(2)
    assert not plugin._thread.is_alive()
