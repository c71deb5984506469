"""The embeddings the package ships are exactly what rag and fewshot would build at start.

When one of these fails, the runbook, the examples, the text format or the model changed:
rebuild them with `python -m agent_sre.cli.ship_vectors` and commit agent_sre/retrieval/shipped/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent_sre.cli import ship_vectors as ship
from agent_sre.retrieval.cache import SHIPPED_DIR, VectorCache, cache_key, file_name, read_vectors
from agent_sre.retrieval.embedder import PRECISIONS, model_id, shared_embedder
from agent_sre.schemas.catalog import load_catalog
from agent_sre.selectors.fewshot import FewShotSelector
from agent_sre.selectors.rag import RagSelector


def test_every_packaged_text_has_its_vectors_in_every_precision_and_nothing_stale() -> None:
    assert ship.problems() == []
    assert len(list(SHIPPED_DIR.glob("*.npz"))) == 2 * len(PRECISIONS)  # rag and fewshot, each precision


def test_shipped_vectors_are_what_the_embedder_computes() -> None:
    # Given a few texts of each kind, embedded now by the process's embedder
    embedder = shared_embedder()
    for kind, texts in ship.packaged_texts().items():
        key = cache_key(embedder.model_id, texts)
        shipped = read_vectors(SHIPPED_DIR / file_name(kind, key), key, len(texts))
        assert shipped is not None
        rows = np.linspace(0, len(texts) - 1, 5).astype(int)
        fresh = embedder.encode([texts[i] for i in rows])
        # Then the shipped rows are those vectors (batched and padded then, one by one now)
        assert (shipped[rows] * fresh).sum(1).min() >= 0.9999


def test_a_fresh_start_embeds_nothing(tmp_path: Path) -> None:
    # Given an empty cache directory, as a new pod has
    catalog, cache = load_catalog(None), tmp_path / "cache"
    embedder = shared_embedder()
    before = embedder.texts_encoded
    rag, fewshot = RagSelector(catalog, cache), FewShotSelector(catalog, cache)
    # When both selectors load
    rag.load()
    fewshot.load()
    # Then nothing was embedded and nothing written: the package's vectors served both
    assert embedder.texts_encoded == before
    assert not cache.exists() or not any(cache.iterdir())
    assert rag.index is not None and len(rag.index.chunks) > 100
    assert fewshot.examples is not None and len(fewshot.examples) > 1000


def test_a_text_the_package_does_not_ship_is_embedded_and_cached(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.eye(2, 4, dtype=np.float32)

    cache = VectorCache(tmp_path)
    cache.load_or_build("rag-runbook", ["one", "two"], model_id("fp32"), encode)
    again = cache.load_or_build("rag-runbook", ["one", "two"], model_id("fp32"), encode)
    assert len(calls) == 1 and again.shape == (2, 4)
    assert [p.name for p in tmp_path.iterdir()] == [file_name("rag-runbook", cache_key(model_id("fp32"), ["one", "two"]))]
    assert len(list(SHIPPED_DIR.glob("*.npz"))) == 2 * len(PRECISIONS)  # the package's files untouched


@pytest.mark.parametrize("damage", [b"", b"not a zip file"])
def test_a_damaged_shipped_file_is_not_trusted(tmp_path: Path, damage: bytes) -> None:
    # Given a shipped directory whose file for these texts is damaged
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    key = cache_key("m", ["a"])
    (shipped / file_name("docs", key)).write_bytes(damage)
    # Then the vectors are built (and cached), never read from it
    vectors = VectorCache(tmp_path / "cache", shipped=shipped).load_or_build(
        "docs", ["a"], "m", lambda texts: np.ones((len(texts), 4), np.float32) / 2
    )
    assert np.allclose(vectors, 0.5)
