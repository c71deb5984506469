"""The whole selector chain and each selector alone, on generated alerts (issue 4's benchmark).

    python benchmarks/bench_chain.py --write BENCHMARKS.md

Splits come from the runbook generator (agent_sre/knowledge/generate.py): `test` holds out whole alert
families (names never seen in training), `val` draws new alerts of the training families
(in-distribution). Each alert goes through `await selector.select(alert)` / `chain.decide(alert)`
one at a time, after a warm-up. `ai` runs without an endpoint here, so it abstains.

Per selector (alone, through every gate of the chain but agreement, which needs two) and for the
chain: function accuracy, parameter exact-match (right function and
parameters equal to `catalog.resolve(expected, alert)`), coverage and precision at 0.7, ECE,
p50/p95 latency, and how often an alert whose answer is `escalate` gets an active function.
For the chain also: no-decision share, the fallback rate (decisions not made by static or trm)
on `val`, and the phase mix (who decided, who was tried) on `test`. Load: each selector's
`start()` in this process, and peak RSS with all of them loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import platform
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from agent_sre.schemas.catalog import ESCALATE, Catalog, load_catalog
from agent_sre.selectors.base import SelectorContext, create_selectors
from agent_sre.selectors.chain import Chain
from agent_sre.settings import DEFAULT_SELECTORS, Settings
from agent_sre.trm.dataset import TEST_SEED
from agent_sre.trm.evaluate import expected_calibration_error
from agent_sre.knowledge.generate import Example, generate
from agent_sre.knowledge.runbook import load_runbook

sys.path.insert(0, str(Path(__file__).parent))
from bench_worker import cpu_model, write_section  # noqa: E402
from probes import PROBES, right  # noqa: E402

CHAIN = DEFAULT_SELECTORS
THRESHOLD = 0.7


def score(rows: list[tuple[Example, str | None, dict[str, str], float, float]], catalog: Catalog) -> dict[str, float]:
    """rows: (example, chosen function, parameters, confidence, seconds)."""
    import torch

    right = [chosen == e.function for e, chosen, _, _, _ in rows]
    exact = [chosen == e.function and params == catalog.resolve(e.function, e.alert) for e, chosen, params, _, _ in rows]
    confidence = [c for _, _, _, c, _ in rows]
    confident = [c >= THRESHOLD and chosen is not None for (_, chosen, _, c, _) in rows]
    kept = [x for x, keep in zip(exact, confident) if keep]
    escalates = [(chosen not in (None, ESCALATE)) for e, chosen, _, _, _ in rows if e.function == ESCALATE]
    latency = sorted(s for *_, s in rows)
    return {
        "accuracy": sum(right) / len(rows),
        "exact_match": sum(exact) / len(rows),
        "coverage_0.7": sum(confident) / len(rows),
        "precision_0.7": sum(kept) / len(kept) if kept else 0.0,
        "ece": expected_calibration_error(torch.tensor(confidence), torch.tensor(exact, dtype=torch.float32)),
        "escalate_to_active": sum(escalates) / len(escalates) if escalates else 0.0,
        "no_decision": sum(chosen is None for _, chosen, _, _, _ in rows) / len(rows),
        "p50_ms": 1000 * statistics.median(latency),
        "p95_ms": 1000 * latency[int(0.95 * (len(latency) - 1))],
    }


async def run_selector(selector, examples: list[Example], catalog: Catalog, timeout: float) -> list[tuple]:
    """One selector alone, through every gate of the chain but agreement (which needs two)."""
    alone = Chain([selector], catalog, Settings(selector_timeout_s=timeout, agreement_risks=[]))
    rows, _ = await run_chain(alone, examples, selector.name)
    return rows


async def run_chain(chain: Chain, examples: list[Example], label: str) -> tuple[list[tuple], list]:
    rows, decisions = [], []
    for example in tqdm(examples, desc=f"chain/{label}", file=sys.stderr, leave=False):
        started = time.perf_counter()
        decision = await chain.decide(example.alert)
        elapsed = time.perf_counter() - started
        decisions.append(decision)
        rows.append((example, decision.lambda_function, decision.parameters, decision.confidence, elapsed))
    return rows, decisions


async def main(args: argparse.Namespace) -> str:
    catalog = load_catalog()
    entries = load_runbook(functions=catalog.names)
    test = generate(entries, catalog, "test", args.per_pattern, TEST_SEED)
    val = generate(entries, catalog, "val", args.per_pattern, 0)
    # Raised timeouts: on this shared 2-core machine a busy moment must not count as a selector's answer.
    settings = Settings(selectors=CHAIN, selector_timeout_s=args.timeout)
    selectors = create_selectors(CHAIN, SelectorContext(settings, catalog))
    load = {}
    for selector in selectors:
        started = time.perf_counter()
        start = getattr(selector, "start", None)
        if start is not None:
            await start()
        load[selector.name] = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    chain = Chain(selectors, catalog, settings)
    for example in test[:10]:  # warm-up
        await chain.decide(example.alert)

    per_selector = {s.name: score(await run_selector(s, test, catalog, args.timeout), catalog)
                    for s in selectors if s.name != "ai"}
    chain_rows, test_decisions = await run_chain(chain, test, "test")
    per_selector["chain"] = score(chain_rows, catalog)
    _, val_decisions = await run_chain(chain, val, "val")
    fallback = sum(d.method not in ("static", "known", "trm") for d in val_decisions) / len(val_decisions)
    decided_by = collections.Counter(d.method or "(no decision)" for d in test_decisions)
    tried = collections.Counter(p.selector for d in test_decisions for p in d.phases)
    probes = [(alert, expected, await chain.decide(alert)) for alert, expected in PROBES]
    for selector in selectors:
        close = getattr(selector, "close", None)
        if close is not None:
            await close()
    return report(args, test, val, per_selector, fallback, decided_by, tried, load, rss_mb, probes)


def report(args, test, val, per_selector, fallback, decided_by, tried, load, rss_mb, probes) -> str:
    chain = per_selector["chain"]
    cpu = cpu_model()
    lines = [
        "## Whole selector chain on the generated split (issue 4; issue 9's second table)",
        "",
        f"- Command: `{' '.join(['python'] + sys.argv)}`",
        f"- Machine: {platform.machine()}, 2 cores ({cpu}); date {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- Chain `{','.join(CHAIN)}`, threshold {THRESHOLD}, every selector's timeout raised to {args.timeout} s; "
        "`ai` has no endpoint here and abstains. Held-out = the generator's `test` split (alert families never "
        f"seen in training, {len(test)} alerts); in-distribution = `val` ({len(val)} alerts).",
        "",
        "| held-out test | accuracy | param exact-match | coverage@0.7 | precision@0.7 | ECE | escalate→active | no decision | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in per_selector.items():
        lines.append(f"| {name} | {m['accuracy']:.3f} | {m['exact_match']:.3f} | {m['coverage_0.7']:.3f} | "
                     f"{m['precision_0.7']:.3f} | {m['ece']:.3f} | {m['escalate_to_active']:.3f} | "
                     f"{m['no_decision']:.3f} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} |")
    mix = ", ".join(f"{name} {count / len(test):.1%}" for name, count in decided_by.most_common())
    tries = ", ".join(f"{name} {count / len(test):.1%}" for name, count in tried.most_common())
    loads = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in load.items())
    targets = [
        ("whole chain function accuracy ≥ 90%", chain["accuracy"] >= 0.90, f"{chain['accuracy']:.1%}"),
        ("active remediation where escalate is right ≤ 3%", chain["escalate_to_active"] <= 0.03,
         f"{chain['escalate_to_active']:.1%}"),
        ("parameter exact-match ≥ 95%", chain["exact_match"] >= 0.95, f"{chain['exact_match']:.1%}"),
        ("fallback rate (not static/known/trm) on in-distribution ≤ 30%", fallback <= 0.30, f"{fallback:.1%}"),
    ]
    lines += [
        "",
        f"- Phase mix on the held-out families — decided by: {mix}; tried: {tries}.",
        f"- Fallback rate on in-distribution `val`: {fallback:.1%}.",
        f"- Load (each `start()`, in order, this process; the embedding cache was warm): {loads}. "
        f"Peak RSS with every selector loaded: {rss_mb:.0f} MB.",
        "",
        "Targets:",
        *[f"- {'PASS' if ok else 'MISS'}: {name} — {value}" for name, ok, value in targets],
        "",
        f"Hand-written probes (benchmarks/probes.py, not from the generator): "
        f"{sum(right(e, d.lambda_function) for _, e, d in probes)}"
        f"/{len(probes)} right.",
        "",
        "| probe | expected | chain decided | by | confidence |",
        "|---|---|---|---|---|",
        *[f"| {a.alertname} {dict(a.annotations) or ''} | {e or 'escalate or none'} | {d.lambda_function} | "
          f"{d.method} | {d.confidence:.3f} |"
          for a, e, d in probes],
        "",
    ]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-pattern", type=int, default=8, help="generated alerts per runbook alert name")
    parser.add_argument("--timeout", type=float, default=10.0, help="every selector's timeout in the chain, s")
    parser.add_argument("--write", type=Path, help="update this Markdown file's section (e.g. BENCHMARKS.md)")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    text = asyncio.run(main(arguments))
    print(text)
    if arguments.write:
        write_section(arguments.write, text, key="bench_chain")
