"""Hybrid retrieval over the runbook: BM25 plus dense cosine similarity, fused, ranked by function.

Each runbook section is cut into one chunk per alert name it lists, written as that name in
words, its condition, the labels its parameters come from, and the section's typical summaries.
A function's score is the fused score of its best chunk. Only the `alerts` field is indexed by
default: the `held out` names exist to measure generalisation to names never seen, and indexing
them would turn the held-out benchmark into a lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..schemas.catalog import Catalog
from ..knowledge.runbook import AlertPattern, RunbookEntry
from .bm25 import BM25
from .neighbours import cosines
from .text import split_words, tokenize

LEXICAL_WEIGHT = 0.35  # the rest is cosine similarity; tuned on the generator's val split
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Chunk:
    function: str
    pattern: str  # the runbook alert name this chunk stands for
    text: str


@dataclass(frozen=True)
class FunctionScore:
    function: str
    score: float  # fused score of the function's best chunk
    cosine: float
    lexical: float  # BM25 of that chunk over the best BM25 for the query, in [0, 1]
    pattern: str


def runbook_chunks(
    entries: dict[str, RunbookEntry], catalog: Catalog, include_held_out: bool = False
) -> list[Chunk]:
    """One chunk per (function, alert name) for every function the catalog knows."""
    chunks = []
    for function, entry in entries.items():
        if function not in catalog.by_name:
            continue
        sources = sorted({s.partition(":")[0] for p in catalog.by_name[function].parameters for s in p.sources})
        says = " ".join(_PLACEHOLDER.sub(r"\1", template) + "." for template in entry.says)
        patterns = entry.alerts + (entry.held_out if include_held_out else [])
        for pattern in patterns:
            parts = [_pattern_words(pattern)]
            if sources:
                parts.append("labels: " + " ".join(sources))
            parts.append(says)
            chunks.append(Chunk(function, pattern.name, ". ".join(parts)))
    return chunks


class RunbookIndex:
    def __init__(self, chunks: list[Chunk], vectors: np.ndarray, lexical_weight: float = LEXICAL_WEIGHT) -> None:
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        self.chunks = chunks
        self.vectors = vectors  # (N, C), unit rows
        self.bm25 = BM25([tokenize(chunk.text) for chunk in chunks])
        self.lexical_weight = lexical_weight
        self.vocabulary = frozenset(self.bm25.idf)

    def rank(self, query_text: str, query_vector: np.ndarray) -> list[FunctionScore]:
        """Every function with a chunk, best first."""
        cosine = cosines(self.vectors, query_vector)  # (N,)
        lexical = self.bm25.scores(tokenize(query_text))
        top = lexical.max(initial=0.0)
        lexical = lexical / top if top > 0 else lexical
        fused = self.lexical_weight * lexical + (1 - self.lexical_weight) * cosine
        best: dict[str, FunctionScore] = {}
        for i in np.argsort(-fused):
            chunk = self.chunks[i]
            if chunk.function not in best:
                best[chunk.function] = FunctionScore(
                    chunk.function, float(fused[i]), float(cosine[i]), float(lexical[i]), chunk.pattern
                )
        return list(best.values())


def _pattern_words(pattern: AlertPattern) -> str:
    words = split_words(pattern.name)
    if pattern.condition:
        key, value = pattern.condition
        words += f" ({key} {value})"
    return words
