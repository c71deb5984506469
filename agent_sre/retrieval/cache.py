"""Embeddings cached on disk, keyed by a hash of the model and of every text embedded.

The key covers the texts themselves (not a file's name or date), so a changed runbook, a changed
example set or a changed way of writing the texts all miss the cache. A file that is unreadable,
truncated, of the wrong shape, or written for another key is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def cache_key(model_id: str, texts: list[str]) -> str:
    digest = hashlib.sha256(model_id.encode())
    for text in texts:
        encoded = text.encode()
        digest.update(len(encoded).to_bytes(8, "little"))  # lengths keep ["ab","c"] apart from ["a","bc"]
        digest.update(encoded)
    return digest.hexdigest()


class VectorCache:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory  # None: no caching at all

    def path(self, kind: str, key: str) -> Path | None:
        return self.directory / f"{kind}-{key[:32]}.npz" if self.directory else None

    def load_or_build(
        self, kind: str, texts: list[str], model_id: str, build: Callable[[list[str]], np.ndarray]
    ) -> np.ndarray:
        """The vectors of `texts` from the cache when it holds exactly them, else `build(texts)`, stored."""
        key = cache_key(model_id, texts)
        path = self.path(kind, key)
        if path is not None and path.exists():
            vectors = _read(path, key, len(texts))
            if vectors is not None:
                return vectors
            log.warning("embedding cache %s is corrupt or stale; rebuilding it", path)
        vectors = np.asarray(build(texts), dtype=np.float32)
        if path is not None:
            self._write(kind, path, key, vectors)
        return vectors

    def _write(self, kind: str, path: Path, key: str, vectors: np.ndarray) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write aside and rename, so that a crash or a concurrent reader never sees half a file.
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, key=np.array(key), vectors=vectors)
            os.replace(temporary, path)
            for old in path.parent.glob(f"{kind}-*.npz"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError as exc:  # a read-only or full disk costs start-up time, never a decision
            log.warning("cannot write embedding cache %s: %s", path, exc)


def _read(path: Path, key: str, rows: int) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            stored_key, vectors = str(data["key"]), np.asarray(data["vectors"], dtype=np.float32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if stored_key != key or vectors.ndim != 2 or vectors.shape[0] != rows or not np.isfinite(vectors).all():
        return None
    if rows and not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3):
        return None
    return vectors
