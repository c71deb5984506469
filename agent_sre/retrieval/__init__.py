"""Retrieval shared by the `rag` and `fewshot` selectors: offline sentence embeddings, BM25, the
runbook index, nearest-neighbour voting, the on-disk embedding cache and confidence calibration."""
