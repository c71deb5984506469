"""rag and fewshot benchmark: quality on the generator's held-out test split, latency, load time, RSS.

    python benchmarks/bench_retrieval.py [--alerts 200] [--cache-dir DIR]

Quality, per selector, over every test alert (held-out alert names, own value pools, the same
seed as the TRM benchmark): function accuracy; parameter exact-match (the right function and
exactly the parameters the catalog's label sources give); ECE of the confidence against full
correctness; coverage and precision at the chain's default threshold 0.7; and how often an alert
whose right answer is `escalate` gets an active function (at any confidence, and at >= 0.7).
Latency: one alert at a time through `await selector.select(alert)` (text, embedding in a
thread, retrieval, calibration), p50/p95.
Load: the embedding model (cold, in this process), then each selector's index (the cache
directory given, or a fresh temporary one so that index building is timed too). RSS: peak.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from agent_sre.retrieval.embedder import shared_embedder
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import ESCALATE, Catalog, load_catalog
from agent_sre.selectors.fewshot import FewShotSelector
from agent_sre.selectors.rag import RagSelector
from agent_sre.settings import Settings
from agent_sre.trm.dataset import TEST_SEED
from agent_sre.trm.evaluate import expected_calibration_error
from agent_sre.knowledge.generate import Example, generate
from agent_sre.knowledge.runbook import load_runbook

Retriever = RagSelector | FewShotSelector


def quality(selector: Retriever, examples: list[Example], catalog: Catalog) -> dict[str, float]:
    alerts = [e.alert for e in examples]
    if isinstance(selector, RagSelector):
        proposals = [selector.propose(a, r) for a, r in zip(alerts, selector.rank(alerts))]
    else:
        proposals = [selector.propose(a, v) for a, v in zip(alerts, selector.vote(alerts))]
    function_right, fully_right, confidence, escalate_active = [], [], [], []
    for example, proposal in zip(examples, proposals):
        chosen = proposal.lambda_function if proposal else None
        function_right.append(chosen == example.function)
        expected = catalog.resolve(example.function, example.alert)
        fully_right.append(chosen == example.function and proposal.parameters == expected)
        confidence.append(proposal.confidence if proposal else 0.0)
        if example.function == ESCALATE:
            escalate_active.append((chosen != ESCALATE, chosen != ESCALATE and proposal.confidence >= 0.7))
    confident = [c >= 0.7 for c in confidence]
    kept = [right for right, keep in zip(fully_right, confident) if keep]
    return {
        "examples": len(examples),
        "function_accuracy": statistics.mean(function_right),
        "parameter_exact_match": statistics.mean(fully_right),
        "ece": expected_calibration_error(torch.tensor(confidence), torch.tensor(fully_right, dtype=torch.float32)),
        "coverage_at_0.7": statistics.mean(confident),
        "precision_at_0.7": statistics.mean(kept) if kept else 1.0,
        "escalate_to_active": statistics.mean(a for a, _ in escalate_active) if escalate_active else 0.0,
        # what the chain would act on: an active function at or above the default threshold
        "escalate_to_active_at_0.7": statistics.mean(c for _, c in escalate_active) if escalate_active else 0.0,
    }


async def latency(selector: Retriever, alerts: list[Alert]) -> dict[str, float]:
    await selector.select(alerts[0])  # warm-up
    times = []
    for alert in alerts:
        started = time.perf_counter()
        await selector.select(alert)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}


async def main(alerts: int, cache_dir: Path | None) -> None:
    settings, catalog = Settings(), load_catalog()
    cache = cache_dir or Path(tempfile.mkdtemp(prefix="agent-sre-bench-"))
    started = time.perf_counter()
    shared_embedder()
    model_load_s = time.perf_counter() - started
    selectors = {
        "rag": RagSelector(catalog, cache),
        "fewshot": FewShotSelector(catalog, cache, settings.fewshot_k, settings.fewshot_examples_per_pattern),
    }
    load_s = {}
    for name, selector in selectors.items():
        started = time.perf_counter()
        await selector.start()
        load_s[name] = time.perf_counter() - started
    examples = generate(load_runbook(functions=catalog.names), catalog, "test", 24, TEST_SEED)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; test split: {len(examples)} alerts; cache {cache}")
    print(f"embedding model load: {model_load_s:.2f} s")
    header = ("selector", "func acc", "param EM", "ECE", "cov@0.7", "prec@0.7", "esc->active", "esc->active@0.7",
              "p50 ms", "p95 ms", "start s")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, selector in selectors.items():
        q = quality(selector, examples, catalog)
        t = await latency(selector, [e.alert for e in examples[:alerts]])
        print(f"| {name} | {q['function_accuracy']:.3f} | {q['parameter_exact_match']:.3f} | {q['ece']:.3f} | "
              f"{q['coverage_at_0.7']:.3f} | {q['precision_at_0.7']:.3f} | {q['escalate_to_active']:.3f} | "
              f"{q['escalate_to_active_at_0.7']:.3f} | "
              f"{t['p50_ms']:.1f} | {t['p95_ms']:.1f} | {load_s[name]:.2f} |")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200, help="alerts timed one at a time per selector")
    parser.add_argument("--cache-dir", type=Path, default=None, help="reuse this cache (default: a fresh one)")
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.cache_dir))
