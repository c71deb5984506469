"""Embeddings cached on disk, keyed by a hash of the model and of every text embedded.

The key covers the texts themselves (not a file's name or date), so a changed runbook, a changed
example set or a changed way of writing the texts all miss the cache. A file that is unreadable,
truncated, of the wrong shape, or written for another key is rebuilt, never trusted.

Before the cache directory, the package's own copy is looked at (`agent_sre/retrieval/shipped`,
written by `python -m agent_sre.cli.ship_vectors`): the vectors of the packaged runbook and
examples, in both precisions, so that a fresh pod with an empty cache embeds nothing at start.
It is read-only and keyed the same way, so a changed text or model simply misses it.
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

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def cache_key(model_id: str, texts: list[str]) -> str:
    digest = hashlib.sha256(model_id.encode())
    for text in texts:
        encoded = text.encode()
        digest.update(len(encoded).to_bytes(8, "little"))  # lengths keep ["ab","c"] apart from ["a","bc"]
        digest.update(encoded)
    return digest.hexdigest()


def file_name(kind: str, key: str) -> str:
    return f"{kind}-{key[:32]}.npz"


class VectorCache:
    def __init__(self, directory: Path | None, shipped: Path | None = SHIPPED_DIR) -> None:
        self.directory = directory  # None: no caching at all
        self.shipped = shipped  # looked at first, never written; None: not at all

    def path(self, kind: str, key: str) -> Path | None:
        return self.directory / file_name(kind, key) if self.directory else None

    def load_or_build(
        self, kind: str, texts: list[str], model_id: str, build: Callable[[list[str]], np.ndarray]
    ) -> np.ndarray:
        """The vectors of `texts` from the cache when it holds exactly them, else `build(texts)`, stored."""
        key = cache_key(model_id, texts)
        if self.shipped is not None and (shipped := self.shipped / file_name(kind, key)).exists():
            vectors = read_vectors(shipped, key, len(texts))
            if vectors is not None:
                return vectors
            log.warning("the package's embeddings %s are corrupt; using the cache directory", shipped)
        path = self.path(kind, key)
        if path is not None and path.exists():
            vectors = read_vectors(path, key, len(texts))
            if vectors is not None:
                return vectors
            log.warning("embedding cache %s is corrupt or stale; rebuilding it", path)
        if self.shipped is not None:
            log.info("embedding %d %s texts: the package ships no vectors for them under %s", len(texts), kind, model_id)
        vectors = np.asarray(build(texts), dtype=np.float32)
        if path is not None:
            self._write(kind, path, key, vectors)
        return vectors

    def _write(self, kind: str, path: Path, key: str, vectors: np.ndarray) -> None:
        try:
            write_vectors(kind, path, key, vectors)
        except OSError as exc:  # a read-only or full disk costs start-up time, never a decision
            log.warning("cannot write embedding cache %s: %s", path, exc)


def write_vectors(kind: str, path: Path, key: str, vectors: np.ndarray, keep: frozenset[Path] = frozenset()) -> None:
    """Write `vectors` under `key` at `path`, then remove the other files of `kind` (but `keep`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write aside and rename, so that a crash or a concurrent reader never sees half a file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as stream:
        np.savez(stream, key=np.array(key), vectors=vectors)
    os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide a shipped file from the image's user
    os.replace(temporary, path)
    for old in path.parent.glob(f"{kind}-*.npz"):
        if old != path and old not in keep:
            old.unlink(missing_ok=True)


def read_vectors(path: Path, key: str, rows: int) -> np.ndarray | None:
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
