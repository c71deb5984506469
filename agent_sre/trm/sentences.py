"""The alert as the TRM reads it beside its tokens: the MiniLM sentence embedding of its text.

The text is `retrieval.text.alert_text`, the very one rag and fewshot embed, so in the chain the
embedder computes it once per alert and the others find it in its memory. Training embeds tens of
thousands of generated alerts; `SentenceMemo` keeps their vectors on disk, keyed by the model id
and each text's hash, so a second run (another fold, another seed) embeds only what is new.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..retrieval.embedder import Embedder
from ..retrieval.text import alert_text
from ..schemas.alert import Alert

log = logging.getLogger(__name__)
CHUNK = 256  # texts embedded between progress updates


def embed_alerts(alerts: list[Alert], embedder: Embedder) -> np.ndarray:
    """(len(alerts), embedder.dimension) unit vectors."""
    return embedder.encode([alert_text(alert) for alert in alerts])


class SentenceMemo:
    """Vectors of texts already embedded, on disk (`path`, an .npz) or only in memory (None)."""

    def __init__(self, path: Path | None, embedder: Embedder) -> None:
        self.path, self.embedder = path, embedder
        self.vectors: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    if str(data["model"]) == embedder.model_id:
                        self.vectors = dict(zip((str(k) for k in data["keys"]), np.asarray(data["vectors"], np.float32)))
            except (OSError, ValueError, KeyError, EOFError) as exc:
                log.warning("sentence memo %s is unreadable (%s); embedding afresh", path, exc)

    def embed(self, alerts: list[Alert], quiet: bool = False) -> np.ndarray:
        texts = [alert_text(alert) for alert in alerts]
        keys = [hashlib.sha1(text.encode()).hexdigest() for text in texts]
        missing = list(dict.fromkeys((key, text) for key, text in zip(keys, texts) if key not in self.vectors))
        progress = tqdm(total=len(missing), disable=quiet or not missing, desc="embed alerts", unit="alert")
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            for (key, _), vector in zip(chunk, self.embedder.encode([text for _, text in chunk])):
                self.vectors[key] = vector
            progress.update(len(chunk))
        progress.close()
        if missing:
            self._save()
        width = self.embedder.dimension
        return np.stack([self.vectors[key] for key in keys]) if keys else np.zeros((0, width), np.float32)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp.npz")
        np.savez(temporary, model=np.array(self.embedder.model_id), keys=np.array(list(self.vectors)),
                 vectors=np.stack(list(self.vectors.values())))
        temporary.replace(self.path)
