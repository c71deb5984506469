"""Real alerts, with whole source projects held out: each selector and the chain.

    python benchmarks/bench_real.py --loso --trm standard=runs/loso-standard --trm awesome=runs/loso-awesome \
        --trm homelabs=runs/loso-homelabs --trm operators=runs/loso-operators --write BENCHMARKS.md

`--loso` holds out each group of `knowledge/sources.py` (`GROUPS`: standard, awesome, homelabs,
operators) in turn, so every source of the knowledge is scored by selectors that never learned from
it; the table `all groups` pools their alerts, and a per-source table follows. The TRM of a fold is
`--trm FOLD=DIR` (trained with `agent-sre trm train --hold-out FOLD`).

The alerts are the package's real-alert knowledge (agent_sre/data/real_alerts.jsonl: public rule
collections' alert names, label keys, exporters and severities), drawn with realistic values.
Besides the four groups, `--fold other` holds out every project outside the big collections
(issue 9's second fold). For each fold, the knowledge `known` and `fewshot` use, and the TRM, come
from the other sources only.
A third table, `shipped`, runs every line with the knowledge and model as they ship: not a held-out
score, but the latency of the real alerts SREs run on day one, which the package knows.
The expected answer is the knowledge's action, except that an active function whose required
parameters the labels cannot give (a node-exporter `instance` that is a pod IP) is `escalate`.

Per selector (its own proposals through every gate but agreement, which needs two) and for the
chain as it ships: accuracy (an undecided alert counts as wrong, unless the chain escalated it and
escalate is right); actionable recall (right function and exactly the labels' values);
on alerts where escalate is right, the share that got a change (a function of risk low or above)
and the share that got any function but escalate; right-or-safely-undecided there; accepted
precision and coverage (a decision made, at the thresholds); ECE of the accepted decisions;
p50/p95 of one alert at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from agent_sre.knowledge.generate import Example
from agent_sre.knowledge.real import IGNORE, RealAlert, expected_answer, load_real_alerts, real_examples
from agent_sre.schemas.catalog import ESCALATE, Catalog, load_catalog
from agent_sre.schemas.decision import Decision
from agent_sre.selectors.chain import Chain
from agent_sre.selectors.fewshot import FewShotSelector
from agent_sre.selectors.gates import Gates
from agent_sre.selectors.known import KnownSelector
from agent_sre.selectors.rag import RagSelector
from agent_sre.selectors.rules import RulesSelector
from agent_sre.selectors.static import StaticSelector
from agent_sre.selectors.base import SelectorContext
from agent_sre.selectors.trm import TRMSelector
from agent_sre.settings import DEFAULT_SELECTORS, Settings
from agent_sre.trm.dataset import TEST_SEED
from agent_sre.trm.evaluate import expected_calibration_error
from agent_sre.knowledge.sources import FOLDS, GROUPS, held_out

SHIPPED = "shipped"

sys.path.insert(0, str(Path(__file__).parent))
from bench_worker import cpu_model, write_section  # noqa: E402


@dataclass
class Row:
    expected: str  # a function, escalate or ignore
    parameters: dict[str, str]
    chosen: str | None
    chosen_parameters: dict[str, str]
    confidence: float
    ignored: bool
    seconds: float
    source: str = ""
    undecided: bool = False  # no selector decided (the chain then escalates)
    method: str = ""  # the selector whose decision it is

    @property
    def right(self) -> bool:
        if self.expected == IGNORE:
            return self.ignored
        return self.chosen == self.expected and self.chosen_parameters == self.parameters


def score(rows: list[Row], catalog: Catalog) -> dict[str, float]:
    changes = {f.name for f in catalog.functions if f.risk != "none" and f.name != ESCALATE}
    actionable = [r for r in rows if r.expected not in (ESCALATE, IGNORE)]
    human = [r for r in rows if r.expected == ESCALATE]
    accepted = [r for r in rows if r.chosen is not None and not r.undecided]
    latency = sorted(r.seconds for r in rows)
    share = lambda part, whole: len(part) / len(whole) if whole else 0.0  # noqa: E731
    ece = expected_calibration_error(
        torch.tensor([r.confidence for r in accepted]), torch.tensor([r.right for r in accepted], dtype=torch.float32)
    ) if accepted else 0.0
    return {
        "alerts": len(rows),
        "accuracy": share([r for r in rows if r.right], rows),
        "actionable_recall": share([r for r in actionable if r.right], actionable),
        "change_where_escalate": share([r for r in human if r.chosen in changes], human),
        "action_where_escalate": share([r for r in human if r.chosen not in (None, ESCALATE)], human),
        "safe_where_escalate": share([r for r in human if r.chosen in (None, ESCALATE)], human),
        "accepted_precision": share([r for r in accepted if r.right], accepted),
        "coverage": share(accepted, rows),
        "ece": float(ece),
        "p50_ms": 1000 * statistics.median(latency),
        "p95_ms": 1000 * latency[int(0.95 * (len(latency) - 1))],
        "actionable": len(actionable),
        "human": len(human),
        "undecided": share([r for r in rows if r.undecided], rows),
    }


async def evaluate_fold(fold: str, knowledge: list[RealAlert], catalog: Catalog, args) -> dict[str, Any]:
    # `shipped`: every line, known to every selector, as the package ships (not held out: latency).
    train, test = (knowledge, knowledge) if fold == SHIPPED else held_out(knowledge, fold)
    examples = real_examples(test, args.per_alert, TEST_SEED, pools="test", include_ignored=True)
    settings = Settings(selector_timeout_s=args.timeout)
    # A selector alone: what it decides itself, so an undecided alert stays undecided (not escalated).
    alone = Settings(selector_timeout_s=args.timeout, agreement_risks=[], undecided="dead-letter")
    context = SelectorContext(settings, catalog)
    trm_dir = dict(item.split("=", 1) for item in args.trm).get(fold)
    makers = {
        "known": lambda: KnownSelector(catalog, train),
        "trm": lambda: TRMSelector(catalog, Path(trm_dir) if trm_dir else None,
                                   admissible=Gates(catalog, settings).admissible),
        "rag": lambda: RagSelector(catalog, settings.retrieval_cache_dir),
        "fewshot": lambda: FewShotSelector(catalog, settings.retrieval_cache_dir, real_alerts=train),
        "rules": lambda: RulesSelector(context),
    }
    built = {name: make() for name, make in makers.items() if not args.only or name in args.only}
    for selector in built.values():
        if hasattr(selector, "start"):
            await selector.start()
    if args.depth and "trm" in built:  # an ablation: the trained model, run with another recursion depth
        h_cycles, l_cycles = (int(n) for n in args.depth.split("x"))
        config = built["trm"].predictor.model.config
        config.H_cycles, config.L_cycles = h_cycles, l_cycles
    expected = [expected_answer(e, catalog) for e in examples]
    rows: dict[str, list[Row]] = {}
    for name, selector in built.items() if not args.chain_only else ():
        rows[name] = await run(Chain([selector], catalog, alone), examples, expected, f"{fold}/{name}")
    order = [n for n in (args.order or DEFAULT_SELECTORS) if n in built or n == "static"]
    if not args.only:
        chain = Chain([StaticSelector() if n == "static" else built[n] for n in order], catalog, settings)
        rows["chain"] = await run(chain, examples, expected, f"{fold}/chain")
    for selector in built.values():
        if hasattr(selector, "close"):
            await selector.close()
    return {"rows": rows, "info": {"train": len(train), "test": len(test), "trm": trm_dir or "shipped", "order": order}}


async def run(chain: Chain, examples: list[Example], expected: list[tuple[str, dict]], label: str) -> list[Row]:
    for example in examples[:5]:  # warm-up
        await chain.decide(example.alert)
    rows = []
    for example, (function, parameters) in tqdm(list(zip(examples, expected)), desc=label, file=sys.stderr, leave=False):
        started = time.perf_counter()
        decision: Decision = await chain.decide(example.alert)
        rows.append(Row(function, parameters, decision.lambda_function, decision.parameters, decision.confidence,
                        decision.ignored, time.perf_counter() - started, example.family.partition(":")[0],
                        decision.undecided, decision.method or ""))
    return rows


HEADER = [
    "| selector | alerts | accuracy | actionable recall | change where escalate is right | any action there "
    "| right or undecided there | accepted precision | coverage | undecided | ECE | p50 ms | p95 ms |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def table(rows: dict[str, list[Row]], catalog: Catalog) -> list[str]:
    lines = list(HEADER)
    for name, selector_rows in rows.items():
        m = score(selector_rows, catalog)
        lines.append(
            f"| {name} | {m['alerts']} ({m['actionable']} actionable, {m['human']} escalate) | {m['accuracy']:.1%} "
            f"| {m['actionable_recall']:.1%} | {m['change_where_escalate']:.1%} | {m['action_where_escalate']:.1%} "
            f"| {m['safe_where_escalate']:.1%} | {m['accepted_precision']:.1%} | {m['coverage']:.1%} "
            f"| {m['undecided']:.1%} | {m['ece']:.3f} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} |"
        )
    return lines + [""]


def decided_by(rows: list[Row]) -> str:
    """`trm 41.0%, known 3.2%, ...`: the share of alerts each selector decided (undecided: escalated)."""
    counts: dict[str, int] = {}
    for row in rows:
        who = "undecided (escalated)" if row.undecided else "ignored" if row.ignored else row.method or "-"
        counts[who] = counts.get(who, 0) + 1
    return ", ".join(f"{who} {count / len(rows):.1%}" for who, count in sorted(counts.items(), key=lambda kv: -kv[1]))


def per_source(results: dict[str, dict[str, Any]], catalog: Catalog) -> list[str]:
    """One line per source project: the chain's scores, and what the TRM alone accepts there."""
    lines = [
        "| source | held out in | alerts | chain accuracy | chain actionable recall | chain change where escalate "
        "| trm coverage | trm accepted precision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fold, result in results.items():
        chain, trm = result["rows"].get("chain", []), result["rows"].get("trm", [])
        for source in sorted({r.source for r in chain}):
            c = score([r for r in chain if r.source == source], catalog)
            t = score([r for r in trm if r.source == source], catalog) if trm else None
            trm_cells = f"{t['coverage']:.0%} | {t['accepted_precision']:.0%}" if t else "- | -"
            lines.append(f"| {source} | {fold} | {c['alerts']} | {c['accuracy']:.1%} | {c['actionable_recall']:.1%} "
                         f"| {c['change_where_escalate']:.1%} | {trm_cells} |")
    return lines + [""]


def report(args, results: dict[str, dict[str, Any]], catalog: Catalog) -> str:
    cpu = cpu_model()
    lines = [
        f"## {args.title}",
        "",
        f"- Command: `{' '.join(['python'] + sys.argv)}`",
        f"- Machine: {platform.machine()}, 2 cores ({cpu}); date {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- {args.per_alert} alerts per knowledge line of the held-out sources, values from the test pools; every "
        f"selector's timeout raised to {args.timeout} s. A selector alone goes through every gate but agreement, "
        "and what it does not decide stays undecided; the chain escalates what nobody decides "
        "(AGENT_SRE_UNDECIDED=escalate), which counts as right only where escalate is right.",
        "",
    ]
    held = {fold: result for fold, result in results.items() if fold != SHIPPED}
    if len(held) > 1:
        pooled = {name: [r for result in held.values() for r in result["rows"][name]] for name in next(iter(held.values()))["rows"]}
        lines += [f"### All held-out groups pooled ({', '.join(held)}): every alert scored by selectors that never "
                  "learned from its source", ""] + table(pooled, catalog)
        if "chain" in pooled:
            lines += [f"The chain's decisions by who made them: {decided_by(pooled['chain'])}.", ""]
    for fold, result in results.items():
        info = result["info"]
        lines += [
            f"### Fold `{fold}`: {info['test']} knowledge lines held out, {info['train']} lines to learn from; "
            f"TRM `{info['trm']}`; chain `{','.join(info['order'])}`",
            "",
        ] + table(result["rows"], catalog)
    if held and not args.only:
        lines += ["### Per source, each scored in the fold that holds it out", ""] + per_source(held, catalog)
    return "\n".join(lines)


async def main(args) -> str:
    catalog, knowledge = load_catalog(), load_real_alerts()
    results = {fold: await evaluate_fold(fold, knowledge, catalog, args) for fold in args.fold}
    return report(args, results, catalog)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loso", action="store_true",
                        help="hold out each source group in turn (standard, awesome, homelabs, operators)")
    parser.add_argument("--fold", action="append", choices=sorted(FOLDS | {SHIPPED}),
                        help="fold(s) to run (default: all); `shipped` runs every line with the shipped "
                             "knowledge and model, not held out, for the latency of known real alerts")
    parser.add_argument("--trm", action="append", default=[], metavar="FOLD=DIR",
                        help="the TRM trained without that fold's sources (default: the shipped model)")
    parser.add_argument("--per-alert", type=int, default=2, help="alerts drawn per held-out knowledge line")
    parser.add_argument("--timeout", type=float, default=10.0, help="every selector's timeout in the chain, s")
    parser.add_argument("--only", action="append", choices=["known", "trm", "rag", "fewshot", "rules"],
                        help="score only these selectors, alone (no chain); e.g. an ablation of the TRM")
    parser.add_argument("--chain-only", action="store_true", help="score the chain alone, not each selector")
    parser.add_argument("--order", type=lambda text: text.split(","), metavar="A,B,...",
                        help="the chain's order (default: AGENT_SRE_SELECTORS' default)")
    parser.add_argument("--depth", metavar="HxL",
                        help="run the TRM with this recursion (H_cycles x L_cycles) instead of its own")
    parser.add_argument("--title", default="Real alerts, whole source projects held out (issue 20)",
                        help="the section's heading")
    parser.add_argument("--section", default="bench_real", help="the section of --write to replace")
    parser.add_argument("--write", type=Path, help="update this Markdown file's section (e.g. BENCHMARKS.md)")
    arguments = parser.parse_args()
    arguments.fold = (arguments.fold or []) + (list(GROUPS) if arguments.loso else [])
    arguments.fold = arguments.fold or [*GROUPS, SHIPPED]
    return arguments


if __name__ == "__main__":
    arguments = parse_args()
    text = asyncio.run(main(arguments))
    print(text)
    if arguments.write:
        write_section(arguments.write, text, key=arguments.section)
