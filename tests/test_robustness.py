"""The alert-text parsers on the decide path never raise, and read huge values in linear time.

Issue 20's crash came from two readings of one sentence: a regex over the raw text found "traffic"
inside a pod name, the word list did not, and the distance to the nearest traffic word was a
minimum over nothing. tests/test_properties.py drives the same parsers with generated input.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_sre.knowledge.context import metric_context
from agent_sre.retrieval.batcher import MicroBatcher
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.selectors.gates import MAX_SIGNAL_CHARS, Gates
from agent_sre.settings import Settings
from agent_sre.trm.encode import EncoderConfig, encode_alert

CATALOG = load_catalog()
HUGE = 200_000  # characters: a fifth of the largest event the worker takes


def alert(annotations: dict[str, str] | None = None, **labels: str) -> Alert:
    return Alert(labels={"alertname": "PodCPUHigh", **labels}, annotations=annotations or {})


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("The restart counter of demo-netpol/traffic-gen-b690cfc0a-d29wb keeps climbing.", set()),
        ("traffic-gen-7f9c-x2 keeps climbing", set()),
        ("shop/load-balancer-0 is up", set()),
        ("Requests grew 150.5% in an hour", {"traffic=rising"}),
        ("request-rate is rising", {"traffic=rising"}),
        ("Traffic (+150%) on shop/api", {"traffic=rising"}),
        ("traffic/", set()),
        ("/traffic rising", set()),
        ("", set()),
    ],
)
def test_a_word_inside_a_name_is_no_traffic_word(text: str, tokens: set[str]) -> None:
    assert metric_context(alert({"description": text})) == tokens


@pytest.mark.parametrize(
    "annotations",
    [
        {"summary": "traffic " + "1" * HUGE},
        {"request_rate_change": "1" * HUGE},
        {"memory_usage": "9" * HUGE + " / " + "9" * HUGE},
        {"load" * (HUGE // 4) + "_trend": "rising"},
        {"description": "traffic up " * (HUGE // 11)},
        {"rps": "1e309", "memory": "nan%", "traffic_change": "12%\n"},
    ],
)
def test_huge_or_odd_annotations_are_read_at_once(annotations: dict[str, str]) -> None:
    started = time.perf_counter()
    tokens = metric_context(alert(annotations))
    assert time.perf_counter() - started < 0.5
    assert tokens <= {"traffic=rising", "traffic=flat", "traffic=falling", "traffic=high", "memory=high"}


def test_a_name_too_long_to_read_is_refused_at_once() -> None:
    gates = Gates(CATALOG, Settings())
    started = time.perf_counter()
    # these patterns have `.*` between two words: searched over 80 000 characters they took minutes
    refusals = [gates.refusal(function, Alert(labels={"alertname": word * 20_000}))
                for function, word in [("certificate-renew", "cert"), ("node-disk-cleanup", "disk")]]
    assert time.perf_counter() - started < 0.5
    assert all(f"over {MAX_SIGNAL_CHARS} characters" in refusal for refusal in refusals)


def test_a_name_of_ordinary_length_is_still_read() -> None:
    gates = Gates(CATALOG, Settings())
    target = alert(node="worker-1")
    assert gates.refusal("node-disk-cleanup", target.model_copy(update={"labels": {
        "alertname": "NodeFilesystemSpaceFillingUp", "node": "worker-1"}})) is None
    assert gates.refusal("node-disk-cleanup", target) is not None


@pytest.mark.parametrize("value", ["9" * 400, "-" + "9" * 400 + "%", "12%\n", "+1.5%", "0", "1e309", "nan"])
def test_the_trm_encodes_any_number(value: str) -> None:
    config = EncoderConfig.from_catalog(CATALOG)
    target = alert({"traffic_change": value, "summary": f"traffic {value} now"}, replicas=value, pod="api-1")
    encoded = encode_alert(target, config)
    assert len(encoded.features) == config.seq_len


async def test_one_item_a_batch_cannot_compute_fails_alone() -> None:
    # Given a model that cannot read one item of a batch
    def compute(items: list[str]) -> list[str]:
        if "bad" in items:
            raise ValueError("cannot read 'bad'")
        return [item.upper() for item in items]

    batcher: MicroBatcher[str, str] = MicroBatcher(compute, max_batch=8, window_s=0.01)
    # When three callers arrive within one window
    results = await asyncio.gather(batcher("a"), batcher("bad"), batcher("c"), return_exceptions=True)
    await batcher.close()
    # Then only that item's caller fails
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)
