"""Pure retrieval parts: text building, BM25, the embedding cache, calibration, voting, audit examples."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from agent_sre.retrieval.audit_examples import confirmed_examples
from agent_sre.worker.audit import AuditLog
from agent_sre.retrieval.bm25 import BM25
from agent_sre.retrieval.cache import VectorCache
from agent_sre.retrieval.calibration import Logistic, fit_logistic
from agent_sre.retrieval.neighbours import ExampleSet, LabelledText
from agent_sre.retrieval.text import MAX_ANNOTATION_CHARS, alert_text, known_share, split_words, tokenize
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog


def test_names_are_split_into_words() -> None:
    assert split_words("KubePodCrashLooping") == "Kube Pod Crash Looping"
    assert split_words("etcdNoLeader") == "etcd No Leader"
    assert tokenize("KubeAPIDown job_name") == ["kube", "api", "down", "job", "name"]


def test_alert_text_caps_annotations_and_reads_the_traffic_trend() -> None:
    alert = Alert(
        labels={"alertname": "PodHighCPU", "pod": "web-1", "namespace": "apps", "severity": "warning"},
        annotations={"summary": "x" * 100_000, "traffic_change": "+140%"},
    )
    text = alert_text(alert)
    assert len(text) < MAX_ANNOTATION_CHARS + 200
    assert "Pod High CPU" in text and "traffic rising" in text
    assert "severity" not in text  # a label every alert has says nothing
    many = Alert(labels={"alertname": "A" * 100_000, **{f"label_{i}": "v" * 1000 for i in range(2000)}})
    assert len(alert_text(many)) < 3 * MAX_ANNOTATION_CHARS
    flat = Alert(labels={"alertname": "PodHighCPU"}, annotations={"request_rate_change": "-3%"})
    assert "traffic flat" in alert_text(flat)


def test_bm25_prefers_the_document_with_the_rare_query_term() -> None:
    index = BM25([tokenize(t) for t in ["pod crash looping", "node disk full", "pod not ready", "disk pressure"]])
    scores = index.scores(tokenize("disk almost full"))
    assert scores.argmax() == 1
    assert scores[0] == 0.0 and scores[2] == 0.0
    assert index.scores(["unknownword"]).sum() == 0.0


def test_known_share_counts_the_name_words_seen_before() -> None:
    vocabulary = {"pod", "crash", "looping"}
    assert known_share(Alert(labels={"alertname": "PodCrashLooping"}), vocabulary) == 1.0
    assert known_share(Alert(labels={"alertname": "PodXyzzy"}), vocabulary) == 0.5
    assert known_share(Alert(labels={"alertname": "Qwrtp"}), vocabulary) == 0.0


class _CountingEncoder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        vectors = np.random.default_rng(len(texts)).normal(size=(len(texts), 8)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_cache_is_written_reused_and_rebuilt_when_texts_change(tmp_path) -> None:
    cache, encode = VectorCache(tmp_path), _CountingEncoder()
    first = cache.load_or_build("docs", ["a", "b"], "model-1", encode)
    again = cache.load_or_build("docs", ["a", "b"], "model-1", encode)
    assert encode.calls == 1 and np.array_equal(first, again)
    cache.load_or_build("docs", ["a", "b", "c"], "model-1", encode)
    cache.load_or_build("docs", ["a", "b", "c"], "model-2", encode)  # another model is another key
    assert encode.calls == 3
    assert len(list(tmp_path.glob("docs-*.npz"))) == 1  # superseded files are removed


@pytest.mark.parametrize("damage", [b"not a zip file", b""])
def test_a_corrupt_cache_file_is_rebuilt_not_trusted(tmp_path, damage: bytes) -> None:
    cache, encode = VectorCache(tmp_path), _CountingEncoder()
    cache.load_or_build("docs", ["a"], "m", encode)
    (path,) = tmp_path.glob("docs-*.npz")
    path.write_bytes(damage)
    vectors = cache.load_or_build("docs", ["a"], "m", encode)
    assert encode.calls == 2 and vectors.shape == (1, 8)
    assert cache.load_or_build("docs", ["a"], "m", encode).shape == (1, 8) and encode.calls == 2


def test_logistic_fit_orders_confidence_by_evidence() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 400)
    correct = rng.uniform(0, 1, 400) < scores  # P(right) = score
    fitted = fit_logistic(["score"], [{"score": float(s)} for s in scores], list(correct))
    low, high = fitted({"score": 0.1}), fitted({"score": 0.9})
    assert low < 0.3 < 0.7 < high
    assert Logistic.from_dict(fitted.to_dict())({"score": 0.9}) == pytest.approx(high, abs=1e-4)


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_vote_agreement_drops_when_neighbours_disagree() -> None:
    vectors = np.stack([_unit(1, 0.1, 0), _unit(1, 0.12, 0), _unit(1, 0.15, 0), _unit(0, 0, 1)])
    agreeing = ExampleSet([LabelledText(str(i), "pod-restart", "train") for i in range(3)] +
                          [LabelledText("far", "escalate", "train")], vectors)
    split = ExampleSet([LabelledText("0", "pod-restart", "train"), LabelledText("1", "job-retry", "train"),
                        LabelledText("2", "job-retry", "train"), LabelledText("far", "escalate", "train")], vectors)
    query = _unit(1, 0.11, 0)
    unanimous, contested = agreeing.vote(query, 3), split.vote(query, 3)
    assert unanimous is not None and contested is not None
    assert unanimous.function == "pod-restart" and unanimous.agreement == pytest.approx(1.0)
    assert contested.agreement < 0.8 and contested.margin < unanimous.margin
    assert ExampleSet([], np.zeros((0, 3), dtype=np.float32)).vote(query, 3) is None


def test_only_published_decisions_that_worked_become_examples(tmp_path) -> None:
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(log)

    def published(trigger: str, function: str, method: str = "trm", alertname: str = "BackupBroken") -> None:
        decision = {"lambda_function": function, "parameters": {"name": "evil"}, "method": method, "confidence": 0.9}
        audit.write({"action": "published", "alertname": alertname, "labels": {"job_name": "borg"},
                     "decision": decision, "trigger_id": trigger})

    def outcome(trigger: str, result: str) -> None:
        audit.write({"action": "outcome", "outcome": result, "trigger_id": trigger, "function": "x"})

    published("t1", "job-retry")
    outcome("t1", "resolved")
    published("t2", "job-retry")  # the same alert and function again adds nothing
    outcome("t2", "succeeded")
    published("t3", "pod-restart", method="static")  # the operator's annotation, but never seen to work
    published("t4", "check-pvc-status")
    outcome("t4", "succeeded")
    outcome("t4", "failed")  # and then said otherwise
    published("t5", "scale-pod")
    outcome("t5", "not_resolved")
    published("t6", "rm-rf")  # not in the catalog
    outcome("t6", "resolved")
    audit.write({"action": "no_decision", "alertname": "BackupBroken", "trigger_id": "t7"})
    outcome("t7", "resolved")
    audit.close()
    with log.open("ab") as stream:
        stream.write(b"{not json\n" + orjson.dumps({"action": "published", "someone": "else"}) + b"\n")
    examples = confirmed_examples(log, load_catalog())
    assert [e.function for e in examples] == ["job-retry"]
    assert examples[0].origin == "audit" and examples[0].text.startswith("Backup Broken")
    assert confirmed_examples(tmp_path / "missing.jsonl", load_catalog()) == []
