"""Okapi BM25 over a small, fixed set of documents (the runbook's chunks)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


class BM25:
    """Scores every document against a query's tokens; k1 and b are the usual Okapi constants."""

    def __init__(self, documents: list[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.frequencies = [Counter(doc) for doc in documents]
        self.lengths = np.array([len(doc) for doc in documents], dtype=np.float64)
        self.average_length = float(self.lengths.mean()) if documents else 0.0
        document_frequency: Counter[str] = Counter()
        for frequencies in self.frequencies:
            document_frequency.update(frequencies.keys())
        count = len(documents)
        # The "+1" form keeps idf positive for terms in more than half of the documents.
        self.idf = {
            term: math.log(1 + (count - n + 0.5) / (n + 0.5)) for term, n in document_frequency.items()
        }

    def __len__(self) -> int:
        return len(self.frequencies)

    def scores(self, query: list[str]) -> np.ndarray:
        """One score per document, 0 where no query term occurs; repeated query terms count once."""
        result = np.zeros(len(self.frequencies), dtype=np.float64)
        if not self.frequencies:
            return result
        norm = self.k1 * (1 - self.b + self.b * self.lengths / max(self.average_length, 1e-9))
        for term in set(query):
            idf = self.idf.get(term)
            if idf is None:
                continue
            tf = np.array([f.get(term, 0) for f in self.frequencies], dtype=np.float64)
            result += idf * tf * (self.k1 + 1) / (tf + norm)
        return result
