"""all-MiniLM-L6-v2's BERT encoder as a dozen torch calls over its safetensors weights.

Why not `transformers.BertModel`: importing transformers and building the model cost about 3 s
and 200 MiB of a worker whose only use of it is this one small encoder (6 layers, 384 wide, a
post-LayerNorm BERT). The forward pass below is the same arithmetic in the same order (word +
token type + position embeddings, LayerNorm; per layer self-attention, dense, residual,
LayerNorm, GELU feed-forward, residual, LayerNorm), checked against the transformers model's
vectors in tests/test_embedder.py.

Memory. The weights file is memory-mapped. The word-embedding table (30,522 × 384, half the
model) stays in the file, in fp32: a pass touches only the rows of its tokens, and casting a row
after the lookup gives the very values of a cast table. The encoder layers run in `dtype`: in
fp32 they are used straight from the mapped file, in bfloat16 they are converted once (21 MiB).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# safetensors' dtype names, as its header spells them (https://github.com/huggingface/safetensors)
_NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


@dataclass(frozen=True)
class BertConfig:
    hidden: int
    heads: int
    layers: int
    intermediate: int
    max_positions: int
    eps: float

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        raw = json.loads(path.read_text())
        if raw.get("hidden_act", "gelu") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only an absolute-position BERT with exact GELU is supported")
        return cls(raw["hidden_size"], raw["num_attention_heads"], raw["num_hidden_layers"],
                   raw["intermediate_size"], raw["max_position_embeddings"], float(raw["layer_norm_eps"]))


class SafetensorsFile:
    """The tensors of a safetensors file, by name: mapped (no read, no copy) or read into memory.

    The format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
    shape and byte range, then the data.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as stream:
            length = int.from_bytes(stream.read(8), "little")
            self.header = json.loads(stream.read(length))
        self.start = 8 + length
        self._map: np.memmap | None = None

    def _layout(self, name: str) -> tuple[np.dtype, list[int], int, int]:
        info = self.header[name]
        begin, end = info["data_offsets"]
        return np.dtype(_NUMPY_DTYPES[info["dtype"]]), info["shape"], begin, end

    def mapped(self, name: str) -> torch.Tensor:
        """A view of the file (copy-on-write): only the pages a computation touches become resident."""
        dtype, shape, begin, end = self._layout(name)
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="c", offset=self.start)
        return torch.from_numpy(self._map[begin:end].view(dtype).reshape(shape))

    def read(self, name: str) -> torch.Tensor:
        """A private copy, read with a plain read: nothing of the file stays mapped or resident."""
        dtype, shape, begin, end = self._layout(name)
        array = np.fromfile(self.path, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=self.start + begin)
        return torch.from_numpy(array.reshape(shape))


class MiniLM:
    """`(ids, mask) -> hidden states`; inference only, on whatever thread calls it."""

    def __init__(self, directory: Path, dtype: torch.dtype = torch.float32) -> None:
        self.config = config = BertConfig.from_file(directory / "config.json")
        self.dtype = dtype
        weights = SafetensorsFile(directory / "model.safetensors")

        def take(name: str) -> torch.Tensor:
            # fp32: the mapped file itself; bf16: read, cast, and the fp32 copy freed at once
            return weights.mapped(name) if dtype == torch.float32 else weights.read(name).to(dtype)

        prefix = "embeddings."
        self.word = weights.mapped(prefix + "word_embeddings.weight")  # (V, C) fp32; rows cast on lookup
        self.token_type = take(prefix + "token_type_embeddings.weight")[0]  # (C,) every token is type 0
        self.position = take(prefix + "position_embeddings.weight")  # (P, C)
        self.norm = (take(prefix + "LayerNorm.weight"), take(prefix + "LayerNorm.bias"))
        self.blocks = []
        for i in range(config.layers):
            layer = f"encoder.layer.{i}."
            attention = layer + "attention."
            # query, key and value as one matrix: one matmul instead of three
            qkv_weight = torch.cat([take(f"{attention}self.{p}.weight") for p in ("query", "key", "value")])
            qkv_bias = torch.cat([take(f"{attention}self.{p}.bias") for p in ("query", "key", "value")])
            self.blocks.append((
                (qkv_weight, qkv_bias),
                (take(attention + "output.dense.weight"), take(attention + "output.dense.bias")),
                (take(attention + "output.LayerNorm.weight"), take(attention + "output.LayerNorm.bias")),
                (take(layer + "intermediate.dense.weight"), take(layer + "intermediate.dense.bias")),
                (take(layer + "output.dense.weight"), take(layer + "output.dense.bias")),
                (take(layer + "output.LayerNorm.weight"), take(layer + "output.LayerNorm.bias")),
            ))

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) token ids; mask (B, T) true for real tokens, None when nothing is padding.
        Returns the last hidden states (B, T, C) in `dtype`."""
        config = self.config
        B, T = ids.shape
        C, H = config.hidden, config.heads
        x = F.embedding(ids, self.word).to(self.dtype) + self.token_type  # (B, T, C)
        x = x + self.position[:T]
        x = F.layer_norm(x, (C,), *self.norm, eps=config.eps)
        # One sequence: its padding keys are cut off, so attention runs unmasked over exactly the
        # real tokens, as without padding (a mask takes another kernel, whose bf16 rounding moved
        # vectors by 5e-5 and flipped a few borderline fewshot confidences). Several sequences:
        # SDPA's boolean mask, True where a query may attend.
        keys = int(mask[0].sum()) if mask is not None and B == 1 else T
        attend = mask[:, None, None, :] if mask is not None and B > 1 else None  # (B, 1, 1, T)
        for qkv, out, norm1, up, down, norm2 in self.blocks:
            q, k, v = F.linear(x, *qkv).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # 3 × (B, H, T, D)
            k, v = k[:, :, :keys], v[:, :, :keys]  # (B, H, keys, D)
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)  # (B, H, T, D)
            attended = attended.transpose(1, 2).reshape(B, T, C)
            x = F.layer_norm(F.linear(attended, *out) + x, (C,), *norm1, eps=config.eps)
            hidden = F.gelu(F.linear(x, *up))  # (B, T, 4C)
            x = F.layer_norm(F.linear(hidden, *down) + x, (C,), *norm2, eps=config.eps)
        return x
