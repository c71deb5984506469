"""The TRM's sentence embeddings: the same vectors rag and fewshot use, memoised on disk for training."""

from __future__ import annotations

import numpy as np

from agent_sre.retrieval.embedder import shared_embedder
from agent_sre.retrieval.text import alert_text
from agent_sre.schemas.alert import Alert
from agent_sre.trm.sentences import SentenceMemo, embed_alerts

ALERTS = [
    Alert(labels={"alertname": "KubePodCrashLooping", "pod": "api-1", "namespace": "shop"}),
    Alert(labels={"alertname": "PostgresqlReplicationLag", "instance": "db-0:9187"},
          annotations={"summary": "replication lag is 40s"}),
]


def test_the_memo_gives_the_embedders_vectors_and_embeds_a_text_once_across_runs(tmp_path) -> None:
    embedder = shared_embedder()
    path = tmp_path / "memo.npz"
    direct = embedder.encode([alert_text(a) for a in ALERTS])

    first = SentenceMemo(path, embedder).embed(ALERTS, quiet=True)
    before = embedder.texts_encoded
    again = SentenceMemo(path, embedder).embed(ALERTS + ALERTS[:1], quiet=True)  # a new run, from disk

    assert np.allclose(first, direct, atol=1e-6) and np.allclose(embed_alerts(ALERTS, embedder), direct, atol=1e-6)
    assert embedder.texts_encoded == before  # nothing embedded a second time
    assert np.allclose(again, np.vstack([direct, direct[:1]]), atol=1e-6)


def test_a_memo_written_by_another_model_or_broken_is_not_trusted(tmp_path) -> None:
    embedder = shared_embedder()
    stale, broken = tmp_path / "stale.npz", tmp_path / "broken.npz"
    np.savez(stale, model=np.array("another-model"), keys=np.array(["x"]), vectors=np.zeros((1, 384), np.float32))
    broken.write_bytes(b"not a zip file")

    assert SentenceMemo(stale, embedder).vectors == {}
    assert SentenceMemo(broken, embedder).vectors == {}
