"""TRM selector benchmark: quality on the held-out test split, the recursion ablation, CPU latency.

    python benchmarks/bench_trm.py [--model DIR] [--ablation DIR_1x1 DIR_3x6] [--write BENCHMARKS.md]

Quality: function accuracy, parameter exact-match, precision of decisions with confidence >= 0.7,
ECE, and how often an alert whose right answer is `escalate` gets an active function. Latency:
one alert at a time through `Predictor.predict` (encoding, ACT inference, parameter copy), p50 and
p95; throughput with micro-batches of 32; model load time; peak RSS.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from agent_sre.schemas.catalog import ESCALATE, load_catalog
from agent_sre.trm.dataset import build_splits, encode_examples
from agent_sre.trm.evaluate import evaluate
from agent_sre.trm.export import SHIPPED_DIR, load_model
from agent_sre.trm.predict import Predictor

MULTI_CONDITION = {"PodHighCPU", "ContainerHighCPUUsage", "PodCPUHigh", "HighCPUUsage", "ContainerCPUSaturation"}


def quality(directory: Path, catalog) -> dict[str, dict[str, float]]:
    model, encoder, info = load_model(directory)
    splits = build_splits(catalog, encoder, 0, 8)
    escalate = encoder.functions.index(ESCALATE)
    test_examples, test = splits["test"]
    multi = [e for e in test_examples if e.family in MULTI_CONDITION]
    return {
        "test": evaluate(model, test, escalate),
        "test_multi_condition": evaluate(model, encode_examples(multi, catalog, encoder), escalate),
        "info": {"parameters": info["parameters"], "H_cycles": model.config.H_cycles, "L_cycles": model.config.L_cycles,
                 "hidden": model.config.hidden, "train_steps": info.get("step")},
    }


def latency(directory: Path, catalog, alerts: int = 200) -> dict[str, float]:
    started = time.perf_counter()
    predictor = Predictor.load(catalog, directory)
    load_s = time.perf_counter() - started
    examples = build_splits(catalog, predictor.encoder, 0, 8)["test"][0][:alerts]
    predictor.predict([examples[0].alert])  # warm-up
    times, steps = [], []
    for example in examples:
        started = time.perf_counter()
        steps.append(predictor.predict([example.alert])[0].steps)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    started = time.perf_counter()
    for i in range(0, len(examples), 32):
        predictor.predict([e.alert for e in examples[i : i + 32]])
    batched = len(examples) / (time.perf_counter() - started)
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        "mean_supervision_steps": round(statistics.mean(steps), 3),
        "single_alerts_per_s": round(1000 / statistics.mean(times), 1),
        "batch32_alerts_per_s": round(batched, 1),
        "load_s": round(load_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_DIR)
    parser.add_argument("--ablation", type=Path, nargs=2, metavar=("DIR_1x1", "DIR_3x6"))
    parser.add_argument("--write", type=Path, help="append a Markdown section to this file")
    args = parser.parse_args()
    catalog = load_catalog()
    report = {"model": quality(args.model, catalog), "latency": latency(args.model, catalog)}
    if args.ablation:
        report["ablation"] = {str(d): quality(d, catalog) for d in args.ablation}
    print(json.dumps(report, indent=1))
    if args.write:
        with args.write.open("a") as out:
            out.write(_markdown(report, " ".join(["python"] + sys.argv)))


def _markdown(report: dict, command: str) -> str:
    test, lat = report["model"]["test"], report["latency"]
    lines = [
        "\n## TRM selector\n",
        f"Command: `{command}` on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}.\n",
        "Models trained with `agent-sre trm train --out DIR --threads 1` (seed 0, default 2000 steps), the "
        "1x1 ablation with `--h-cycles 1 --l-cycles 1` added; the shipped one went in through the gate "
        "(`--ship`). The test split holds only alert names the model never saw in training.\n",
        "| metric (held-out test split) | value |", "|---|---|",
    ]
    for key in ("examples", "function_accuracy", "parameter_exact_match", "precision_at_0.7", "coverage_at_0.7",
                "ece", "escalate_to_active", "escalate_to_active_at_0.7", "mean_steps"):
        lines.append(f"| {key} | {test[key]:.4g} |")
    lines += ["", "| latency, one alert at a time | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in lat.items()]
    if "ablation" in report:
        lines += ["", "| ablation (same parameters, same steps) | params | test exact-match | multi-condition exact-match |",
                  "|---|---|---|---|"]
        for directory, result in report["ablation"].items():
            info = result["info"]
            lines.append(f"| H_cycles={info['H_cycles']} L_cycles={info['L_cycles']} ({directory}) | {info['parameters']} | "
                         f"{result['test']['parameter_exact_match']:.4f} | "
                         f"{result['test_multi_condition']['parameter_exact_match']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
