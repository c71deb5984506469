"""TRM selector benchmark: quality on the held-out test split, the recursion ablation, CPU latency.

    python benchmarks/bench_trm.py [--model DIR] [--ablation DIR ...] [--write BENCHMARKS.md]

Quality: function accuracy, parameter exact-match, precision of decisions with confidence >= 0.7,
ECE, and how often an alert whose right answer is `escalate` gets an active function; the same
for the model in fp32, to show what the shipped int8 network costs. Latency:
one alert at a time through `Predictor.predict` (encoding, ACT inference, parameter copy), p50 and
p95; throughput with micro-batches of 32; model load time; peak RSS. Ablation: every run directory
given (e.g. 1x1 and 3x6 runs of several seeds), on the test split, on its multi-condition part (the
CPU alerts whose answer depends on the traffic trend) and on the hand-written probes.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from agent_sre.schemas.catalog import load_catalog
from agent_sre.trm.dataset import build_splits
from agent_sre.trm.evaluate import evaluate_predictor
from agent_sre.trm.export import SHIPPED_DIR
from agent_sre.trm.predict import Predictor

sys.path.insert(0, str(Path(__file__).parent))
from bench_worker import write_section  # noqa: E402
from probes import PROBES, right  # noqa: E402

MULTI_CONDITION = {"PodHighCPU", "ContainerHighCPUUsage", "PodCPUHigh", "HighCPUUsage", "ContainerCPUSaturation"}


def quality(directory: Path, catalog, quantize: bool = True) -> dict:
    """Scores through `Predictor.predict`, as the `trm` selector decides (novelty map included)."""
    predictor = Predictor.load(catalog, directory, quantize)
    model, info = predictor.model, json.loads((directory / "config.json").read_text())
    test = build_splits(catalog, predictor.encoder, 0, 8)["test"][0]
    multi = [e for e in test if e.family in MULTI_CONDITION]
    predictions = predictor.predict([alert for alert, _ in PROBES])
    decided = [p.function if p.confidence >= 0.7 else None for p in predictions]  # below 0.7 the chain goes on
    return {
        "test": evaluate_predictor(predictor, test, catalog),
        "test_multi_condition": evaluate_predictor(predictor, multi, catalog),
        "probes_right": sum(right(expected, chosen) for (_, expected), chosen in zip(PROBES, decided)),
        "probes": [(alert.alertname, dict(alert.annotations), expected, p.function, round(p.confidence, 3))
                   for (alert, expected), p in zip(PROBES, predictions)],
        "info": {"parameters": info["parameters"], "H_cycles": model.config.H_cycles, "L_cycles": model.config.L_cycles,
                 "hidden": model.config.hidden, "mixer": model.config.mixer, "train_steps": info.get("step")},
    }


def latency(directory: Path, catalog, alerts: int = 200) -> dict[str, float]:
    """One alert at a time: alerts of held-out names and of trained names; then the same in
    micro-batches of 32."""
    started = time.perf_counter()
    predictor = Predictor.load(catalog, directory)
    load_s = time.perf_counter() - started
    splits = build_splits(catalog, predictor.encoder, 0, 8)
    unseen, trained = splits["test"][0][:alerts], splits["val"][0][:alerts]
    predictor.predict([unseen[0].alert])  # warm-up
    report: dict[str, float] = {}
    for label, examples in (("unseen_names", unseen), ("trained_names", trained)):
        times, steps = [], []
        for example in examples:
            started = time.perf_counter()
            steps.append(predictor.predict([example.alert])[0].steps)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        report[f"{label}_p50_ms"] = round(statistics.median(times), 2)
        report[f"{label}_p95_ms"] = round(times[int(0.95 * (len(times) - 1))], 2)
        report[f"{label}_alerts_per_s"] = round(1000 / statistics.mean(times), 1)
        report[f"{label}_mean_supervision_steps"] = round(statistics.mean(steps), 3)
    for label, examples in (("unseen_names", unseen), ("trained_names", trained)):
        started = time.perf_counter()
        for i in range(0, len(examples), 32):
            predictor.predict([e.alert for e in examples[i : i + 32]])
        report[f"{label}_batch32_alerts_per_s"] = round(len(examples) / (time.perf_counter() - started), 1)
    report["load_s"] = round(load_s, 3)
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["threads"] = torch.get_num_threads()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_DIR)
    parser.add_argument("--ablation", type=Path, nargs="+", metavar="DIR", help="run directories to compare")
    parser.add_argument("--write", type=Path, help="update this Markdown file's section (e.g. BENCHMARKS.md)")
    args = parser.parse_args()
    catalog = load_catalog()
    report = {"model": quality(args.model, catalog), "latency": latency(args.model, catalog)}
    report["fp32"] = quality(args.model, catalog, quantize=False)["test"]  # what int8 costs, side by side
    if args.ablation:
        report["ablation"] = {str(d): quality(d, catalog) for d in args.ablation}
    print(json.dumps(report, indent=1))
    if args.write:
        write_section(args.write, _markdown(report, " ".join(["python"] + sys.argv)), key="bench_trm")


def _markdown(report: dict, command: str) -> str:
    model, lat = report["model"], report["latency"]
    test = model["test"]
    lines = [
        "## TRM selector (issue 3)",
        "",
        f"- Command: `{command}`",
        f"- Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"date {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        "- Models trained with `agent-sre trm train --out DIR --threads 1 --seed S` (default 2000 steps), the 1x1 "
        "runs with `--h-cycles 1 --l-cycles 1` added; the shipped model went in through the gate (`--ship`). The "
        "test split holds only alert names the model never saw in training.",
        "",
        "| shipped model, held-out test split | value |", "|---|---|",
    ]
    for key in ("examples", "function_accuracy", "parameter_exact_match", "precision_at_0.7", "coverage_at_0.7",
                "ece", "escalate_to_active", "escalate_to_active_at_0.7", "mean_steps"):
        lines.append(f"| {key} | {test[key]:.4g} |")
    lines.append(f"| multi-condition part: exact-match | {model['test_multi_condition']['parameter_exact_match']:.4g} |")
    lines.append(f"| hand-written probes right (benchmarks/probes.py) | {model['probes_right']}/{len(PROBES)} |")
    lines += ["", "| the same model in fp32 (not shipped), held-out test split | value |", "|---|---|"]
    lines += [f"| {key} | {report['fp32'][key]:.4g} |" for key in
              ("function_accuracy", "parameter_exact_match", "precision_at_0.7", "ece", "escalate_to_active")]
    lines += ["", "| latency, one alert at a time unless batch32 | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in lat.items()]
    worst_p95 = max(lat["unseen_names_p95_ms"], lat["trained_names_p95_ms"])
    targets = [
        ("function accuracy ≥ 95%", test["function_accuracy"] >= 0.95, f"{test['function_accuracy']:.1%}"),
        ("parameter exact-match ≥ 95%", test["parameter_exact_match"] >= 0.95, f"{test['parameter_exact_match']:.1%}"),
        ("precision of decisions with confidence ≥ 0.7 ≥ 98%", test["precision_at_0.7"] >= 0.98,
         f"{test['precision_at_0.7']:.1%}"),
        ("active remediation where escalate is right ≤ 2%", test["escalate_to_active"] <= 0.02,
         f"{test['escalate_to_active']:.1%}"),
        ("p50 and p95 ≤ 50 ms, one alert at a time", worst_p95 <= 50, f"worst p95 {worst_p95} ms"),
        ("load ≤ 1 s", lat["load_s"] <= 1, f"{lat['load_s']} s"),
    ]
    lines += ["", "Targets (issue 3):"]
    lines += [f"- {'PASS' if ok else 'FAIL'}: {what} — {value}" for what, ok, value in targets]
    lines += ["", "| probe | expected | trm | confidence |", "|---|---|---|---|"]
    lines += [f"| {name} {annotations or ''} | {expected or 'escalate or none'} | {chosen} | {confidence} |"
              for name, annotations, expected, chosen, confidence in model["probes"]]
    if "ablation" in report:
        lines += ["", "| ablation run (same parameters, same steps) | H×L, mixer | params | test exact-match | "
                  "multi-condition exact-match | probes right |", "|---|---|---|---|---|---|"]
        groups: dict[str, list[dict]] = {}
        for directory, result in report["ablation"].items():
            info = result["info"]
            shape = f"{info['H_cycles']}×{info['L_cycles']} {info['mixer']}"
            groups.setdefault(shape, []).append(result)
            lines.append(f"| {directory} | {shape} | {info['parameters']} | {result['test']['parameter_exact_match']:.4f} | "
                         f"{result['test_multi_condition']['parameter_exact_match']:.4f} | "
                         f"{result['probes_right']}/{len(PROBES)} |")
        for shape, results in groups.items():
            mean = {key: statistics.mean(r[key]["parameter_exact_match"] for r in results)
                    for key in ("test", "test_multi_condition")}
            lines.append(f"| **mean of {len(results)}** | {shape} | | {mean['test']:.4f} | "
                         f"{mean['test_multi_condition']:.4f} | "
                         f"{statistics.mean(r['probes_right'] for r in results):.1f}/{len(PROBES)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
