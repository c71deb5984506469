"""The `trm` selector with the model shipped in the package."""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest
import torch
from typer.testing import CliRunner

from agent_sre.cli import app
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.selectors.base import SelectorContext, create_selectors
from agent_sre.selectors.chain import Chain
from agent_sre.selectors.gates import Gates
from agent_sre.selectors.trm import TRMSelector
from agent_sre.trm import novelty
from agent_sre.trm.predict import Predictor
from agent_sre.settings import Settings

FLUX = {"alertname": "FluxReconciliationFailure", "name": "homepage", "namespace": "flux-system", "kind": "Kustomization"}
CRASH = {"alertname": "PodCrashLoopBackOff", "pod": "homepage-6d4cf56db6-x2x7q", "namespace": "web"}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture
async def selector(catalog):
    selector = TRMSelector(catalog)
    await selector.start()
    yield selector
    await selector.close()


async def test_shipped_model_answers_the_seed_examples(selector):
    flux = await selector.select(Alert(labels=FLUX))
    assert flux is not None and flux.lambda_function == "flux-reconcile-kustomization"
    assert flux.parameters == {"name": "homepage", "namespace": "flux-system"}
    assert flux.confidence >= 0.7 and flux.iterations >= 1
    crash = await selector.select(Alert(labels=CRASH))
    assert crash is not None and crash.lambda_function == "pod-restart"
    assert crash.parameters == {"name": CRASH["pod"], "namespace": "web"}


@pytest.mark.parametrize(
    "kind, function",
    [("HelmRelease", "flux-reconcile-helmrelease"), ("GitRepository", "flux-reconcile-gitrepository")],
)
async def test_the_kind_label_decides_a_generic_flux_alert(selector, kind, function):
    proposal = await selector.select(Alert(labels={**FLUX, "kind": kind}))
    assert proposal is not None and proposal.lambda_function == function


CPU = {"alertname": "PodCPUHigh", "pod": "shop-api-7d9f8b6c4-x2x7q", "namespace": "web"}


@pytest.mark.parametrize(
    "annotations, function",
    [
        ({"summary": "CPU usage is high, CPU at 91% and traffic is rising"}, "scale-pod"),
        ({"summary": "CPU at 85%, request rate growing 1000 req/s"}, "scale-pod"),
        ({"request_rate_change": "+150%"}, "scale-pod"),
        ({"summary": "CPU at 92% and traffic is flat"}, "pod-restart"),
        ({"request_rate_change": "+1%", "summary": "CPU of shop-api-7d9f8b6c4-x2x7q is high"}, "pod-restart"),
        ({}, "pod-restart"),
    ],
)
async def test_the_request_rate_trend_decides_a_cpu_alert(selector, annotations, function):
    # The seeds' multi-condition case: the same labels, and only the trend tells the answers apart.
    proposal = await selector.select(Alert(labels=CPU, annotations=annotations))
    assert proposal is not None and proposal.lambda_function == function, proposal
    assert proposal.parameters == {"name": CPU["pod"], "namespace": "web"}


UNSEEN_CRASH = {**CRASH, "alertname": "AppPodCrashLooping"}  # a name in no training data: App Pod Crash Looping


def test_a_trained_name_keeps_the_halting_heads_confidence_and_an_unseen_one_gets_the_novelty_map(catalog):
    # The shipped model carries a map fitted on held-out real sources (agent-sre trm calibrate).
    predictor = Predictor.load(catalog)
    plain = Predictor.load(catalog, novelty=False)
    assert predictor.novelty is not None
    assert "PodCrashLoopBackOff" in predictor.trained_names and UNSEEN_CRASH["alertname"] not in predictor.trained_names
    alerts = [Alert(labels=CRASH), Alert(labels=UNSEEN_CRASH)]
    (trained, unseen), (trained_plain, unseen_plain) = predictor.predict(alerts), plain.predict(alerts)

    assert trained == trained_plain
    assert (unseen.function, unseen.parameters, unseen.halt_logit) == (
        unseen_plain.function, unseen_plain.parameters, unseen_plain.halt_logit)
    assert unseen.confidence == pytest.approx(predictor.novelty(
        novelty.features(Alert(labels=UNSEEN_CRASH), unseen.function, unseen.halt_logit,
                         predictor.vocabulary, unseen.familiarity)))


def test_a_trained_name_keeps_the_halting_heads_word_only_for_the_answers_it_was_trained_with(catalog):
    # KubeHpaReplicasMismatch is a runbook escalate name. Read as scale-pod (its labels in a new
    # combination), that answer is new to the model: the novelty map judges it, not the halting head.
    predictor = Predictor.load(catalog)
    hpa = Alert(labels={"alertname": "KubeHpaReplicasMismatch", "namespace": "shop", "horizontalpodautoscaler": "api"})
    assert predictor.trained_answers["KubeHpaReplicasMismatch"] == {"escalate"}
    assert predictor.familiar(hpa, 1.0) and predictor.familiar(hpa, 1.0, "escalate")
    assert not predictor.familiar(hpa, 1.0, "scale-pod")
    assert not predictor.familiar(hpa, predictor.familiar_floor - 0.01, "escalate")


async def test_a_name_of_words_no_training_name_used_is_not_trusted(selector, catalog):
    # Nothing the model learned speaks for this alert: whatever it reads (here a sure escalate from
    # its halting head), it has no opinion to give, so it can neither decide nor veto.
    stranger = Alert(labels={"alertname": "ZorblaxQuuxFrobnicated", "pod": "api-7d9f", "namespace": "shop"})
    [prediction] = Predictor.load(catalog).predict([stranger])
    [plain] = Predictor.load(catalog, novelty=False).predict([stranger])
    assert prediction.strange and plain.confidence > TRMSelector.default_threshold, (prediction, plain)
    assert await selector.select(stranger) is None
    # A new name made of words the model knows is read, and judged by the novelty map.
    [known_words] = Predictor.load(catalog).predict([Alert(labels={**stranger.labels, "alertname": "AppPodCrashLooping"})])
    assert not known_words.strange


def test_a_sure_escalate_on_a_new_name_needs_a_catalog_with_nothing_else_to_offer(catalog):
    # Held out from training, whole source projects taught the novelty map this: where the gates and
    # the labels leave no action, escalate is the only answer; where one could act (a homelab's
    # gateway with a namespace and a service, pod-check-status), the model's escalate is a guess.
    gates = Gates(catalog, Settings())
    predictor = Predictor.load(catalog, admissible=gates.admissible)
    database = Alert(labels={"alertname": "CockroachdbNodeDown", "instance": "10.0.0.5:8080", "job": "cockroachdb"})
    gateway = Alert(labels={"alertname": "ZwaveGatewayUnreachable", "namespace": "home", "service": "zwave"})
    assert not {database.alertname, gateway.alertname} & predictor.trained_names
    sure, guess = predictor.predict([database, gateway])
    assert gates.admissible(database) == [] and sure.function == "escalate"
    assert sure.confidence >= TRMSelector.default_threshold, sure
    assert gates.admissible(gateway) == ["pod-check-status"] and guess.function == "escalate"
    assert guess.confidence < TRMSelector.default_threshold, guess
    # Without the gates' word every alert leaves room for another answer: the cautious reading.
    [unknown] = Predictor.load(catalog).predict([database])
    assert unknown.function == "escalate" and unknown.confidence < TRMSelector.default_threshold, unknown


async def test_a_sure_escalate_says_that_no_action_could_act(catalog):
    selector = TRMSelector(catalog, admissible=Gates(catalog, Settings()).admissible)
    database = Alert(labels={"alertname": "CockroachdbNodeDown", "instance": "10.0.0.5:8080", "job": "cockroachdb"})
    gateway = Alert(labels={"alertname": "ZwaveGatewayUnreachable", "namespace": "home", "service": "zwave"})
    try:
        sure, guess = await selector.select(database), await selector.select(gateway)
    finally:
        await selector.close()
    assert sure is not None and sure.lambda_function == "escalate"
    assert "no action of the catalog could act on this alert" in sure.reasoning
    assert guess is not None and "no action of the catalog" not in guess.reasoning


def test_a_raid_disk_failure_is_not_read_as_a_full_disk(catalog):
    # A held-out runbook escalate family in which "Disk" once outweighed "RAID". The real RAID and
    # SMART alerts the model now learns from say escalate; the evidence gate refuses the rest.
    predictor = Predictor.load(catalog)
    alerts = [Alert(labels={"alertname": "NodeRAIDDiskFailure", "instance": "10.0.0.5:9100", "device": "md0"}),
              Alert(labels={"alertname": "NodeRAIDDiskFailure", "node": "nas-01", "severity": "critical"})]
    for prediction in predictor.predict(alerts):
        assert prediction.function == "escalate", prediction


async def test_the_chain_publishes_the_trm_decision(catalog):
    settings = Settings(selectors=["trm", "rules"])
    chain = Chain(create_selectors(settings.selectors, SelectorContext(settings, catalog)), catalog, settings)
    decision = await chain.decide(Alert(labels=FLUX))
    assert decision.method == "trm" and decision.lambda_function == "flux-reconcile-kustomization"
    assert [p.selector for p in decision.phases] == ["trm"]
    await chain.selectors[0].close()


async def test_a_malformed_label_value_never_becomes_a_parameter(selector, catalog):
    alert = Alert(labels={**CRASH, "pod": "Homepage_Pod!"})
    proposal = await selector.select(alert)
    assert proposal is not None and "Homepage_Pod!" not in proposal.parameters.values()
    for value in proposal.parameters.values():
        assert value in alert.labels.values()
    chain = Chain([selector], catalog, Settings(selectors=["trm"]))
    decision = await chain.decide(alert)
    assert "Homepage_Pod!" not in decision.parameters.values()


async def test_concurrent_alerts_share_micro_batches(selector):
    calls = []
    predict = selector.predictor.predict
    selector.predictor.predict = lambda alerts: calls.append(len(alerts)) or predict(alerts)
    alerts = [Alert(labels={**CRASH, "pod": f"web-{i}"}) for i in range(12)]
    proposals = await asyncio.gather(*(selector.select(a) for a in alerts))
    assert sum(calls) == 12 and len(calls) < 12
    assert [p.parameters.get("name") for p in proposals] == [f"web-{i}" for i in range(12)]


async def test_a_cancelled_select_does_not_stop_the_selector(selector):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(selector.select(Alert(labels=FLUX)), timeout=0.0001)
    proposal = await asyncio.wait_for(selector.select(Alert(labels=FLUX)), timeout=5)
    assert proposal is not None and proposal.lambda_function == "flux-reconcile-kustomization"


def test_select_command_uses_the_shipped_model():
    # A low-risk function: trm alone may decide it (a pod restart would wait for a second selector).
    result = CliRunner().invoke(app, ["select", "--selectors", "trm", orjson.dumps({"labels": FLUX}).decode()])
    assert result.exit_code == 0, result.output
    decision = orjson.loads(result.output.strip().splitlines()[-1])
    assert decision["lambda_function"] == "flux-reconcile-kustomization" and decision["method"] == "trm"


async def test_every_model_runs_on_the_one_model_thread(catalog, tmp_path):
    # Torch keeps a thread team per calling OS thread; a second one slows every pass down (see
    # agent_sre/compute.py), so trm and the embedding model must share one thread, off the loop.
    from agent_sre.selectors.rag import RagSelector

    trm, rag = TRMSelector(catalog), RagSelector(catalog, tmp_path)
    await asyncio.gather(trm.start(), rag.start())
    threads: list[int] = []

    def recorded(function):
        def call(*args, **kwargs):
            threads.append(threading.get_ident())
            return function(*args, **kwargs)
        return call

    trm.predictor.predict = recorded(trm.predictor.predict)
    rag.embedder.encode = recorded(rag.embedder.encode)
    # a text no other test embedded: rag ranks an alert embedded already on the loop, with no model
    unembedded = Alert(labels=FLUX, annotations={"summary": "the one-model-thread probe"})
    proposals = await asyncio.gather(trm.select(Alert(labels=CRASH)), rag.select(unembedded),
                                     trm.select(Alert(labels=UNSEEN_CRASH)))
    assert all(p is not None for p in proposals)
    assert len(threads) >= 2 and len(set(threads)) == 1 and threading.get_ident() not in threads
    await trm.close()
    await rag.close()


def test_the_int8_model_decides_as_the_fp32_one(catalog):
    # The selector runs `net` with int8 Linear layers for speed; the answers must not change.
    fast, exact = Predictor.load(catalog), Predictor.load(catalog, quantize=False)
    assert "quantized" in type(fast.model.net[0].qkv).__module__
    assert type(exact.model.net[0].qkv) is torch.nn.Linear
    alerts = [Alert(labels=FLUX), Alert(labels=CRASH), Alert(labels=UNSEEN_CRASH),
              Alert(labels={"alertname": "NodeRAIDDiskFailure", "instance": "10.0.0.5:9100"}),
              Alert(labels=CPU, annotations={"summary": "CPU at 91% and traffic is rising"}),
              Alert(labels=CPU, annotations={"summary": "CPU at 92% and traffic is flat"})]
    for quick, slow in zip(fast.predict(alerts), exact.predict(alerts)):
        assert (quick.function, quick.parameters) == (slow.function, slow.parameters)
        assert quick.confidence == pytest.approx(slow.confidence, abs=0.05)
