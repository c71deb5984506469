"""The micro-batcher: a lone alert goes at once; alerts that arrive while a batch computes share the next."""

from __future__ import annotations

import asyncio
import threading

from agent_sre.retrieval import batcher as batcher_module
from agent_sre.retrieval.batcher import MicroBatcher


async def test_a_lone_alert_waits_for_no_window(monkeypatch) -> None:
    # A fixed window was 2 ms added to every TRM decision, one alert at a time.
    waits: list[float] = []
    sleep = asyncio.sleep

    async def recorded(delay: float, *args):
        waits.append(delay)
        return await sleep(delay, *args)

    monkeypatch.setattr(batcher_module.asyncio, "sleep", recorded)
    batcher: MicroBatcher[str, str] = MicroBatcher(lambda items: [i.upper() for i in items])
    assert await batcher("a") == "A"
    await batcher.close()
    assert waits == [0.0]  # one loop turn, so that the callers of the same turn join it


async def test_alerts_arriving_during_a_batch_share_the_next_one() -> None:
    started, release = threading.Event(), threading.Event()
    sizes: list[int] = []

    def compute(items: list[str]) -> list[str]:
        sizes.append(len(items))
        if len(sizes) == 1:
            started.set()
            release.wait(10)  # the first batch is still computing while the others arrive
        return [item.upper() for item in items]

    batcher: MicroBatcher[str, str] = MicroBatcher(compute)
    first = asyncio.ensure_future(batcher("a"))
    assert await asyncio.to_thread(started.wait, 10)
    later = [asyncio.ensure_future(batcher(item)) for item in "bcde"]
    await asyncio.sleep(0.01)
    release.set()
    assert await first == "A"
    assert await asyncio.gather(*later) == list("BCDE")
    await batcher.close()
    assert sizes == [1, 4]


async def test_callers_of_one_loop_turn_share_a_batch() -> None:
    sizes: list[int] = []
    batcher: MicroBatcher[str, str] = MicroBatcher(lambda items: sizes.append(len(items)) or list(items))
    assert await asyncio.gather(*(batcher(str(i)) for i in range(5))) == [str(i) for i in range(5)]
    await batcher.close()
    assert sizes == [5]
