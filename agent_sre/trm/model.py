"""The Tiny Recursive Model (arXiv 2510.04871), shaped for alerts: one config, a few modules, the
loss inside `forward`.

One small network `net` (2 post-norm blocks, no biases, no learned norm gain) does both jobs of
the paper's recursion. A block mixes positions with self-attention (the default) or, as TRM-MLP
does, with an MLP across positions; the channel MLP is SwiGLU either way. Attention won here: the
words that decide a multi-condition alert ("traffic is rising") sit anywhere in the summary, and
an MLP across positions must learn each word at each position (BENCHMARKS.md). Per supervision step:

    repeat T = H_cycles times (the first T-1 without gradient):
        repeat n = L_cycles times:  z = net(z + y + x)     # refine the latent from the alert
        y = net(y + z)                                      # refine the answer from the latent

x is the embedded alert, y the answer embedding, z the latent; y and z start as fixed random
vectors. With `sentence_dim` set, x's first (CLS) position also carries the frozen MiniLM sentence
embedding of the alert's text (the one rag and fewshot compute), projected to the model's width:
the words of a name the model never saw still mean something there, where a hashed piece means
nothing until training has seen it. Heads read y: the function from the first (CLS) position, one pointer per parameter
slot over the label positions (position 0 means "no label"), and a halting logit trained with a
BCE against "the current answer is fully correct". Deep supervision calls `forward` up to
`N_sup` times per batch, feeding back the detached carry; at inference `infer` stops a sample as
soon as its halting head is confident, which is also the decision's confidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .encode import CLS, IGNORE, LABEL, ROLES

Carry = tuple[torch.Tensor, torch.Tensor]  # (y, z), each (B, L, D)


@dataclass
class TRMConfig:
    seq_len: int = 48
    features: int = 16
    buckets: int = 16384
    functions: int = 12
    slots: int = 3
    hidden: int = 128
    layers: int = 2
    mixer: str = "attention"  # across positions: "attention" or "mlp" (TRM-MLP)
    expansion: float = 4.0  # SwiGLU inner size = expansion * hidden * 2/3, as in the paper
    token_expansion: float = 2.0  # the same, across the sequence axis
    H_cycles: int = 3
    L_cycles: int = 6
    N_sup: int = 16
    halt_loss_weight: float = 0.5
    halt_temperature: float = 1.0  # fitted on the validation split after training (calibration)
    sentence_dim: int = 0  # width of the alert's sentence embedding added at CLS; 0: none (older models)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Outputs:
    function_logits: torch.Tensor  # (B, functions)
    pointer_logits: torch.Tensor  # (B, slots, L), invalid positions masked to -1e4
    halt_logits: torch.Tensor  # (B,)

    def predictions(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.function_logits.argmax(-1), self.pointer_logits.argmax(-1)


def rms_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _inner(size: int, expansion: float) -> int:
    return max(16, round(expansion * size * 2 / 3 / 16) * 16)


class SwiGLU(nn.Module):
    def __init__(self, size: int, expansion: float) -> None:
        super().__init__()
        inner = _inner(size, expansion)
        self.gate_up = nn.Linear(size, 2 * inner, bias=False)
        self.down = nn.Linear(inner, size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class MixerBlock(nn.Module):
    """TRM-MLP: an MLP across positions in place of attention (the sequence has a fixed layout)."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.token_mlp = SwiGLU(config.seq_len, config.token_expansion)
        self.channel_mlp = SwiGLU(config.hidden, config.expansion)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = rms_norm(h + self.token_mlp(h.transpose(1, 2)).transpose(1, 2))  # mix along L
        return rms_norm(h + self.channel_mlp(h))  # (B, L, D)


class AttentionBlock(nn.Module):
    """The paper's other variant: self-attention in place of the token MLP. It reads a word the same
    wherever it sits in the summary, which a per-position token MLP has to learn position by position."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.heads = max(1, config.hidden // 64)
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden, bias=False)
        self.out = nn.Linear(config.hidden, config.hidden, bias=False)
        self.channel_mlp = SwiGLU(config.hidden, config.expansion)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, length, width = h.shape
        q, k, v = self.qkv(h).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        # QK-norm bounds the attention logits, which otherwise grow over ~40 applications per step
        mixed = F.scaled_dot_product_attention(rms_norm(q), rms_norm(k), v).transpose(1, 2).reshape(batch, length, width)
        h = rms_norm(h + self.out(mixed))
        return rms_norm(h + self.channel_mlp(h))


class TRM(nn.Module):
    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden
        self.piece_embedding = nn.Embedding(config.buckets, d, padding_idx=0)
        self.role_embedding = nn.Embedding(ROLES, d)
        self.position_embedding = nn.Parameter(torch.randn(config.seq_len, d) * 0.02)
        self.sentence_projection = nn.Linear(config.sentence_dim, d, bias=False) if config.sentence_dim else None
        block = AttentionBlock if config.mixer == "attention" else MixerBlock
        self.net = nn.Sequential(*[block(config) for _ in range(config.layers)])
        self.function_head = nn.Linear(d, config.functions, bias=False)
        self.pointer_head = nn.Linear(d, config.slots, bias=False)
        self.halt_head = nn.Linear(d, 1)
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("y_init", torch.randn(d, generator=generator), persistent=True)
        self.register_buffer("z_init", torch.randn(d, generator=generator), persistent=True)
        nn.init.normal_(self.piece_embedding.weight, std=config.features**-0.5)
        with torch.no_grad():
            self.piece_embedding.weight[0].zero_()
            # start out saying "not done", as the paper does
            self.halt_head.weight.zero_()
            self.halt_head.bias.fill_(-5.0)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, features: torch.Tensor, roles: torch.Tensor, sentence: torch.Tensor | None = None) -> torch.Tensor:
        x = self.piece_embedding(features).sum(2) + self.role_embedding(roles) + self.position_embedding  # (B, L, D)
        if self.sentence_projection is not None:
            if sentence is None:
                raise ValueError("this model reads the alert's sentence embedding: pass `sentence`")
            cls = x[:, :1] + self.sentence_projection(sentence).unsqueeze(1)  # (B, 1, D)
            x = torch.cat([cls, x[:, 1:]], dim=1)
        return rms_norm(x)

    def initial_carry(self, batch: int) -> Carry:
        shape = (batch, self.config.seq_len, self.config.hidden)
        return self.y_init.expand(shape).clone(), self.z_init.expand(shape).clone()

    def recursion(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> Carry:
        for _ in range(self.config.L_cycles):
            z = self.net(z + y + x)
        y = self.net(y + z)
        return y, z

    def supervision_step(self, x: torch.Tensor, carry: Carry, roles: torch.Tensor) -> tuple[Carry, Outputs]:
        y, z = carry
        with torch.no_grad():
            for _ in range(self.config.H_cycles - 1):
                y, z = self.recursion(x, y, z)
        y, z = self.recursion(x, y, z)  # only the last recursion is backpropagated, in full
        outputs = self._heads(y, roles)
        return (y.detach(), z.detach()), outputs

    def forward(
        self,
        features: torch.Tensor,
        roles: torch.Tensor,
        carry: Carry | None = None,
        targets: tuple[torch.Tensor, torch.Tensor] | None = None,
        sentence: torch.Tensor | None = None,
    ) -> tuple[Carry, Outputs, torch.Tensor | None]:
        """One supervision step. `targets` = (function (B,), pointers (B, slots) with IGNORE);
        `sentence` (B, sentence_dim) when the model reads it."""
        x = self.embed(features, roles, sentence)
        carry = carry if carry is not None else self.initial_carry(features.shape[0])
        carry, outputs = self.supervision_step(x, carry, roles)
        loss = None if targets is None else self.loss(outputs, *targets)
        return carry, outputs, loss

    def loss(self, outputs: Outputs, function: torch.Tensor, pointers: torch.Tensor) -> torch.Tensor:
        function_loss = F.cross_entropy(outputs.function_logits, function)
        pointer_loss = F.cross_entropy(outputs.pointer_logits.flatten(0, 1), pointers.flatten(), ignore_index=IGNORE)
        if not (pointers != IGNORE).any():
            pointer_loss = torch.zeros_like(function_loss)  # every function in the batch is parameterless
        correct = fully_correct(outputs, function, pointers).float()
        halt_loss = F.binary_cross_entropy_with_logits(outputs.halt_logits, correct)
        return function_loss + pointer_loss + self.config.halt_loss_weight * halt_loss

    def confidence(self, outputs: Outputs) -> torch.Tensor:
        """(B,) calibrated probability that the answer is fully right. Halting (logit > 0) does not
        depend on the temperature, so calibration never changes which step answers."""
        return torch.sigmoid(outputs.halt_logits / self.config.halt_temperature)

    @torch.inference_mode()
    def infer(
        self,
        features: torch.Tensor,
        roles: torch.Tensor,
        halt_threshold: float = 0.5,
        max_steps: int | None = None,
        sentence: torch.Tensor | None = None,
    ) -> tuple[Outputs, torch.Tensor]:
        """Run supervision steps until each sample's halting head is confident (ACT), at most N_sup.
        Returns each sample's outputs at the step it halted, and the steps it used (B,)."""
        max_steps = min(max_steps or self.config.N_sup, self.config.N_sup)
        x = self.embed(features, roles, sentence)
        y, z = self.initial_carry(features.shape[0])
        active = torch.arange(features.shape[0])  # rows still thinking; halted rows cost nothing
        steps = torch.zeros(features.shape[0], dtype=torch.long)
        final: Outputs | None = None
        for step in range(1, max_steps + 1):
            (y, z), outputs = self.supervision_step(x[active], (y, z), roles[active])
            halted = (torch.sigmoid(outputs.halt_logits) >= halt_threshold) | (step == max_steps)
            if final is None:
                final = outputs  # every row has an answer from step 1 on
            else:
                final = _scatter(final, active[halted], outputs, halted)
            steps[active[halted]] = step
            keep = ~halted
            if not bool(keep.any()):
                break
            active, y, z = active[keep], y[keep], z[keep]
        assert final is not None
        return final, steps

    def _heads(self, y: torch.Tensor, roles: torch.Tensor) -> Outputs:
        pointer_logits = self.pointer_head(y).transpose(1, 2)  # (B, L, S) -> (B, S, L)
        valid = (roles == LABEL) | (roles == CLS)  # a label, or position 0 meaning "none"
        pointer_logits = pointer_logits.masked_fill(~valid.unsqueeze(1), -1e4)
        return Outputs(self.function_head(y[:, 0]), pointer_logits, self.halt_head(y[:, 0]).squeeze(-1))


def fully_correct(outputs: Outputs, function: torch.Tensor, pointers: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the function and every pointer the function has are right."""
    predicted_function, predicted_pointers = outputs.predictions()
    pointers_right = ((predicted_pointers == pointers) | (pointers == IGNORE)).all(-1)
    return (predicted_function == function) & pointers_right


def _scatter(into: Outputs, rows: torch.Tensor, new: Outputs, mask: torch.Tensor) -> Outputs:
    """`into` with `rows` replaced by the `mask`ed rows of `new` (which holds only active rows)."""
    into.function_logits[rows] = new.function_logits[mask]
    into.pointer_logits[rows] = new.pointer_logits[mask]
    into.halt_logits[rows] = new.halt_logits[mask]
    return into
