"""`agent-sre trm train|calibrate|eval`: train the TRM selector's model, fit its novelty map, score it,
ship it past a gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AgentSreError
from ..knowledge.sources import FOLDS
from ..schemas.catalog import load_catalog
from .common import fail, load_settings

app = typer.Typer(help="Train and evaluate the TRM selector's model.", no_args_is_help=True)


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option(help="Run directory: checkpoint and exported model.")] = Path("runs/trm"),
    steps: Annotated[int, typer.Option(help="Optimiser steps (one per supervision step).")] = 2000,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (warm-up, then cosine decay).")] = 2e-3,
    seed: Annotated[int, typer.Option()] = 0,
    hidden: Annotated[int | None, typer.Option(help="Model width (default 128).")] = None,
    h_cycles: Annotated[int | None, typer.Option("--h-cycles", help="T: recursions per supervision step.")] = None,
    l_cycles: Annotated[int | None, typer.Option("--l-cycles", help="n: latent updates per recursion.")] = None,
    mixer: Annotated[str | None, typer.Option(help="Across positions: attention (default) or mlp (TRM-MLP).")] = None,
    threads: Annotated[int, typer.Option(help="Torch threads; 1 wastes less on a CPU shared with other work.")] = 2,
    resume: Annotated[bool, typer.Option(help="Continue from the run directory's checkpoint.")] = True,
    ship: Annotated[bool, typer.Option(help="Replace the shipped model if the new one is not worse on the test split.")] = False,
    real_per_alert: Annotated[int, typer.Option(help="Training alerts per line of the real-alert knowledge.")] = 6,
    hold_out: Annotated[str | None, typer.Option(help="Leave a fold of source projects out (one of "
                                                      f"{', '.join(sorted(FOLDS))}), to benchmark on them with "
                                                      "benchmarks/bench_real.py.")] = None,
    early_stop: Annotated[str | None, typer.Option(help="Keep a fold of source projects out of training too, and "
                                                        "export the checkpoint that does best on them.")] = None,
    sentences: Annotated[bool, typer.Option(help="Read the alert's MiniLM sentence embedding (names the model "
                                                 "never saw still mean something).")] = True,
) -> None:
    """Generate the data from docs/RUNBOOK.md and the real-alert knowledge, train with deep supervision,
    export the EMA model."""
    from ..trm.train import TrainConfig, train

    if mixer not in (None, "mlp", "attention"):
        fail("--mixer must be mlp or attention")
    overrides = {k: v for k, v in {"hidden": hidden, "H_cycles": h_cycles, "L_cycles": l_cycles, "mixer": mixer}.items() if v}
    for option, fold in (("--hold-out", hold_out), ("--early-stop", early_stop)):
        if fold is not None and fold not in FOLDS:
            fail(f"{option} must be one of {', '.join(sorted(FOLDS))}")
    if early_stop is not None and early_stop == hold_out:
        fail("--early-stop must be another fold than --hold-out: the held-out one is what the benchmark scores")
    if hold_out is not None and ship:
        fail("--ship takes a model trained on every source; drop --hold-out")
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, threads=threads, model=overrides,
                         real_per_alert=real_per_alert, hold_out=hold_out, early_stop=early_stop, sentences=sentences)
    catalog = _catalog()
    try:
        metrics = train(catalog, config, out, resume=resume,
                        memo_path=load_settings().retrieval_cache_dir / "trm-sentences.npz")
    except AgentSreError as exc:
        fail(str(exc))
    typer.echo(json.dumps(metrics, indent=1))
    if ship:
        _ship(out, catalog)


@app.command("calibrate")
def calibrate_command(
    on: Annotated[list[str], typer.Option(
        "--on", metavar="FOLD=DIR",
        help="A model trained with --hold-out FOLD; its answers on that fold's held-out sources are what "
             "the map is fitted on. Repeat for each fold.")],
    model: Annotated[Path | None, typer.Option(help="Model directory to write the map into "
                                                    "(default: the shipped model).")] = None,
    cross: Annotated[bool, typer.Option(help="Also give each --on model a map fitted on the other folds' "
                                             "answers (cross-fitting: what its benchmark needs).")] = False,
) -> None:
    """Fit the novelty map: the confidence an alert the model is not familiar with deserves, learned
    from fold models scored on the source projects they were trained without. For a fold model itself,
    fit on the other folds only (--cross), or its benchmark would be scored on what it was calibrated on."""
    from ..trm import novelty
    from ..trm.answers import held_out_answers
    from ..trm.export import CONFIG, SHIPPED_DIR, has_model

    folds: dict[str, Path] = {}
    for item in on:
        fold, _, directory = item.partition("=")
        if fold not in FOLDS or not directory:
            fail(f"--on takes FOLD=DIR with FOLD one of {', '.join(sorted(FOLDS))}; got {item!r}")
        if not has_model(Path(directory)):
            fail(f"--on {item}: no trained model in {directory} (agent-sre trm train --hold-out {fold} --out {directory})")
        folds[fold] = Path(directory)
    target = model or SHIPPED_DIR
    if not has_model(target):
        fail(f"--model {target}: no trained model there")
    own = json.loads((target / CONFIG).read_text()).get("train_config", {}).get("hold_out")
    if own in folds:
        fail(f"--model {target} was trained without fold {own!r}, which its benchmark scores it on: "
             f"fit its map on the other fold only")
    catalog = _catalog()
    try:
        admissible = _admissible(catalog)
        answers = {fold: held_out_answers(fold, directory, catalog, admissible) for fold, directory in folds.items()}
        maps = {target: (novelty.fit(list(answers.values())), folds)}
        if cross:
            for fold, directory in folds.items():
                others = {f: d for f, d in folds.items() if f != fold}
                maps[directory] = (novelty.fit([answers[f] for f in others]), others)
    except (AgentSreError, ValueError) as exc:
        fail(str(exc))
    for directory, (logistic, fitted_on) in maps.items():
        novelty.save(directory, logistic, fitted_on)
        typer.echo(json.dumps({"model": str(directory), "fitted_on": sorted(fitted_on), "novelty": logistic.to_dict()}))


@app.command("eval")
def eval_command(
    model: Annotated[Path | None, typer.Option(help="Model directory (default: the shipped model).")] = None,
    split: Annotated[str, typer.Option(help="test (held-out alert names) or val.")] = "test",
) -> None:
    """Function accuracy, parameter exact-match, precision at 0.7, calibration (ECE), escalate safety."""
    typer.echo(json.dumps(_evaluate(model, split, _catalog()), indent=1))


def _evaluate(directory: Path | None, split: str, catalog) -> dict[str, float]:
    """Scores of the model in `directory` as the `trm` selector uses it (novelty map included)."""
    from ..trm.dataset import build_splits
    from ..trm.evaluate import evaluate_predictor
    from ..trm.predict import Predictor

    if split not in ("test", "val"):
        fail("--split must be test or val")
    try:
        predictor = Predictor.load(catalog, directory, admissible=_admissible(catalog))
    except AgentSreError as exc:
        fail(str(exc))
    examples = build_splits(catalog, predictor.encoder, 0, 8)[split][0]
    return evaluate_predictor(predictor, examples, catalog)


def _ship(candidate: Path, catalog) -> None:
    """The evaluation gate: the shipped model is replaced only by one at least as good."""
    from ..trm.evaluate import score
    from ..trm.export import CONFIG, PROTOTYPES, SHIPPED_DIR, VOCABULARY, WEIGHTS, has_model

    new = _evaluate(candidate, "test", catalog)
    if has_model(SHIPPED_DIR):
        old = _evaluate(SHIPPED_DIR, "test", catalog)
        if score(new) < score(old):
            fail(f"not shipped: test score {score(new)} is worse than the shipped model's {score(old)}", code=1)
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, CONFIG, VOCABULARY):
        shutil.copyfile(candidate / name, SHIPPED_DIR / name)
    if (candidate / PROTOTYPES).exists():
        shutil.copyfile(candidate / PROTOTYPES, SHIPPED_DIR / PROTOTYPES)
    else:
        (SHIPPED_DIR / PROTOTYPES).unlink(missing_ok=True)  # an older kind of model: none of its own
    typer.echo(f"shipped to {SHIPPED_DIR}: {json.dumps(new)}")


def _admissible(catalog):
    """What the `trm` selector asks the gates: which actions could act on an alert at all."""
    from ..selectors.gates import Gates

    return Gates(catalog, load_settings()).admissible


def _catalog():
    try:
        return load_catalog(load_settings().catalog_path)
    except AgentSreError as exc:
        fail(str(exc))
