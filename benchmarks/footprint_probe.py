"""One arm of bench_footprint.py, in its own process: where the memory goes, and decision latency.

    PYTHONPATH=<source tree> python benchmarks/footprint_probe.py --cache DIR

Loads what `agent-sre run` loads with the default chain, one part at a time, reading VmRSS after
each (the table's rows), then decides real alerts one at a time through the chain and prints one
JSON object. It uses only APIs that the tree before issue 23 has too, so both arms run this file.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import random
import statistics
import sys
import time
from pathlib import Path


def status(field: str) -> float:
    """A /proc/self/status field in MiB (VmRSS: resident now; VmHWM: the peak so far)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


class Steps:
    def __init__(self) -> None:
        self.rows: list[dict[str, float | str]] = []
        self.last = status("VmRSS")
        self.rows.append({"part": "interpreter", "rss": self.last, "delta": self.last, "seconds": 0.0})

    async def measure(self, part: str, load) -> object:
        started = time.perf_counter()
        result = load()
        if inspect.isawaitable(result):
            result = await result
        rss = status("VmRSS")
        self.rows.append({"part": part, "rss": rss, "delta": rss - self.last, "seconds": time.perf_counter() - started})
        self.last = rss
        return result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[int(share * (len(ordered) - 1))]


async def decide_all(chain, alerts) -> dict[str, float]:
    for alert in alerts[:5]:  # warm-up
        await chain.decide(alert)
    seconds = []
    for alert in alerts:
        started = time.perf_counter()
        await chain.decide(alert)
        seconds.append(time.perf_counter() - started)
    return {"p50_ms": 1000 * statistics.median(seconds), "p95_ms": 1000 * percentile(seconds, 0.95),
            "alerts": len(alerts)}


async def main(args: argparse.Namespace) -> dict:
    steps = Steps()
    await steps.measure("worker modules (asyncio, aio-pika, aiohttp, redis, pydantic, ...)",
                  lambda: __import__("agent_sre.worker.app") and __import__("agent_sre.cli"))
    await steps.measure("torch (import)", lambda: __import__("torch"))
    from agent_sre import compute
    from agent_sre.knowledge.real import load_real_alerts, real_examples
    from agent_sre.knowledge.sources import held_out
    from agent_sre.retrieval.embedder import shared_embedder
    from agent_sre.schemas.catalog import load_catalog
    from agent_sre.selectors.base import SelectorContext, create_selectors
    from agent_sre.selectors.chain import Chain
    from agent_sre.selectors.known import KnownSelector
    from agent_sre.settings import DEFAULT_SELECTORS, Settings
    from agent_sre.trm.dataset import TEST_SEED

    settings = Settings(retrieval_cache_dir=Path(args.cache), selector_timeout_s=10.0)
    catalog = load_catalog(None)
    embedder = await steps.measure("embedder (MiniLM, one query)", lambda: _embed_once(compute, shared_embedder))
    selectors = {s.name: s for s in create_selectors(DEFAULT_SELECTORS, SelectorContext(settings, catalog))}
    await steps.measure("TRM (shipped model, int8)", lambda: selectors["trm"].start())
    await steps.measure("rag index (runbook vectors, BM25)", lambda: selectors["rag"].start())
    await steps.measure("fewshot examples (vectors, texts)", lambda: selectors["fewshot"].start())
    for name in ("static", "known", "ai", "rules"):
        if hasattr(selectors[name], "start"):
            await selectors[name].start()
    await steps.measure("known, rules, catalog (Python objects)", lambda: None)
    vectors = sum(getattr(s, attr).vectors.nbytes for s, attr in ((selectors["rag"], "index"),
                                                                   (selectors["fewshot"], "examples")))
    loaded = {"rss": status("VmRSS"), "peak": status("VmHWM")}

    knowledge = load_real_alerts()
    train, test = held_out(knowledge, args.fold)
    unseen = [e.alert for e in real_examples(test, 1, TEST_SEED, pools="test")]
    known = [e.alert for e in random.Random(0).sample(real_examples(knowledge, 1, TEST_SEED, pools="test"), args.known)]
    chain = Chain(list(selectors.values()), catalog, settings)
    # Never-seen: `known` learns only the other groups' lines, so the fold's names are no table
    # lookup; the TRM, rag and fewshot are the shipped ones (what a pod runs).
    lookup_without_fold = KnownSelector(catalog, train)
    unseen_chain = Chain([lookup_without_fold if s.name == "known" else s for s in selectors.values()], catalog, settings)
    decisions = {"known": await decide_all(chain, known), "never_seen": await decide_all(unseen_chain, unseen)}
    for selector in selectors.values():
        if hasattr(selector, "close"):
            await selector.close()
    return {"steps": steps.rows, "loaded": loaded, "vectors_mib": vectors / 2**20, "decisions": decisions,
            "after_decisions": {"rss": status("VmRSS"), "peak": status("VmHWM")}, "embedder": embedder,
            "transformers": "transformers" in sys.modules}


async def _embed_once(compute, shared_embedder) -> str:
    embedder = await compute.run(shared_embedder)
    await compute.run(embedder.encode, ["Kube Pod Crash Looping"])
    return embedder.model_id


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", required=True, help="the retrieval cache directory (warm for the tree before)")
    parser.add_argument("--fold", default="homelabs")
    parser.add_argument("--known", type=int, default=200)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
