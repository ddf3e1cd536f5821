"""A decoder-only transformer language model, Llama-shaped, as a `BlockModel`.

One model family serves the LM suite (~1M to ~100M parameters, trained for real) and the
scale-1b memory suite (a ~1.1B-parameter shape, built on the meta device), so the memory
figures and the accuracy figures describe the same architecture.

Shape (Touvron et al., 2023, "LLaMA"; the 1B preset is TinyLlama's, Zhang et al., 2024):
pre-norm blocks with RMSNorm, rotary position embeddings (Su et al., 2021), causal
multi-head attention with optional grouped-query key/value heads (Ainslie et al., 2023),
and a SwiGLU MLP (Shazeer, 2020); no biases. Input and output embeddings are *not* tied:
the stem and the head stay separate modules, so local learning rules that train blocks
one by one see the same stem -> blocks -> head split as on the vision models.

Inputs are token ids [B, T] (int64); outputs are next-token logits [B, T, vocab].
Initialisation depends only on the generator the harness hands over (see
`vision_models._seeded`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.interface import BlockModel
from suites.tasks.vision_models import _seeded


@dataclass(frozen=True)
class DecoderConfig:
    """Width, depth and heads of the decoder; `preset` picks a named shape instead.

    hidden: the SwiGLU inner width; 0 means Llama's rule (8/3 * dim, rounded up to a
      multiple of 64).
    kv_heads: key/value heads for grouped-query attention; 0 means one per query head.
    """

    dim: int = 128
    depth: int = 4
    heads: int = 4
    kv_heads: int = 0
    hidden: int = 0
    context: int = 128  # longest sequence the model is trained on (rotary tables are built for it)
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for key in ("dim", "depth", "heads", "context"):
            if getattr(self, key) < 1:
                raise ValueError(f"decoder.{key} must be a positive integer, got {getattr(self, key)}.")
        if self.dim % self.heads:
            raise ValueError(f"decoder.dim={self.dim} is not divisible by decoder.heads={self.heads}.")
        if (self.dim // self.heads) % 2:
            raise ValueError(f"decoder.dim / decoder.heads = {self.dim // self.heads} must be even for rotary embeddings.")
        if self.kv_heads < 0 or (self.kv_heads and self.heads % self.kv_heads):
            raise ValueError(f"decoder.kv_heads={self.kv_heads} must divide decoder.heads={self.heads} (or be 0).")
        if self.hidden < 0:
            raise ValueError(f"decoder.hidden must be 0 (Llama's 8/3 rule) or positive, got {self.hidden}.")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def key_value_heads(self) -> int:
        return self.kv_heads or self.heads

    @property
    def mlp_hidden(self) -> int:
        return self.hidden or 64 * -(-(8 * self.dim // 3) // 64)


# Named shapes. "1b" is TinyLlama-1.1B's body (2048 wide, 22 blocks, 32 heads, 4 KV heads,
# SwiGLU 5632); with its 32,000-token vocabulary it holds 1.10B parameters.
DECODER_PRESETS: dict[str, DecoderConfig] = {
    "1m": DecoderConfig(dim=128, depth=4, heads=4, context=128),
    "10m": DecoderConfig(dim=384, depth=6, heads=6, context=256),
    "100m": DecoderConfig(dim=768, depth=12, heads=12, context=512),
    "1b": DecoderConfig(dim=2048, depth=22, heads=32, kv_heads=4, hidden=5632, context=2048),
}


def decoder_preset(name: str) -> DecoderConfig:
    """The named shape; a ValueError lists the names when `name` is not one."""
    try:
        return DECODER_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown decoder preset {name!r}; use one of {', '.join(DECODER_PRESETS)}.") from None


def decoder_parameter_count(config: DecoderConfig, vocab_size: int) -> int:
    """Parameters of `build_decoder(config, vocab_size)`, computed without building it."""
    d, kv = config.dim, config.key_value_heads * config.head_dim
    attention = d * d + 2 * d * kv + d * d  # q, k, v, out
    mlp = 3 * d * config.mlp_hidden  # gate, up, down
    block = attention + mlp + 2 * d  # two RMSNorm gains
    return vocab_size * d + config.depth * block + d + d * vocab_size  # embedding, blocks, final norm, head


def build_decoder(config: DecoderConfig, vocab_size: int, generator: torch.Generator) -> BlockModel:
    """Token embedding -> `depth` decoder blocks -> RMSNorm + Linear to the vocabulary.

    Build under `with torch.device("meta"):` to get the shapes without allocating them.
    """

    def make() -> BlockModel:
        stem = TokenEmbedding(vocab_size, config.dim)
        blocks = [DecoderBlock(config) for _ in range(config.depth)]
        return BlockModel(stem, blocks, LanguageModelHead(config.dim, vocab_size, config.norm_eps))

    return _seeded(make, generator)


class TokenEmbedding(nn.Module):
    """Token ids [B, T] -> vectors [B, T, dim]; positions enter through rotary attention."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.embedding(tokens)


class RMSNorm(nn.Module):
    """x / rms(x) * gain (Zhang & Sennrich, 2019); computed in float32 for stability."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class DecoderBlock(nn.Module):
    """x + Attn(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)); causal, rotary, bias-free."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = config.heads, config.key_value_heads, config.head_dim
        kv_width = self.kv_heads * self.head_dim
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.q = nn.Linear(config.dim, config.dim, bias=False)
        self.k = nn.Linear(config.dim, kv_width, bias=False)
        self.v = nn.Linear(config.dim, kv_width, bias=False)
        self.out = nn.Linear(config.dim, config.dim, bias=False)
        self.mlp_norm = RMSNorm(config.dim, config.norm_eps)
        self.gate = nn.Linear(config.dim, config.mlp_hidden, bias=False)
        self.up = nn.Linear(config.dim, config.mlp_hidden, bias=False)
        self.down = nn.Linear(config.mlp_hidden, config.dim, bias=False)
        cos, sin = rotary_tables(config.context, config.head_dim, config.rope_base)
        # Not parameters and not saved: a function of the config, rebuilt on load.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def attention(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        if tokens > self.rope_cos.shape[0]:
            raise ValueError(f"sequence of {tokens} tokens is longer than decoder.context={self.rope_cos.shape[0]}.")
        q = self.q(x).view(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(x).view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).view(batch, tokens, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rope_cos[:tokens].to(q.dtype), self.rope_sin[:tokens].to(q.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.kv_heads != self.heads:  # grouped-query: each KV head serves heads/kv_heads queries
            repeat = self.heads // self.kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(out.transpose(1, 2).reshape(batch, tokens, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.attention_norm(x))
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class LanguageModelHead(nn.Module):
    """Final RMSNorm -> Linear to next-token logits [B, T, vocab]."""

    def __init__(self, dim: int, vocab_size: int, eps: float) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, eps)
        self.linear = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.norm(x))


def rotary_tables(positions: int, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    """cos and sin tables [positions, head_dim/2] of the rotary angles pos * base^(-2i/d)."""
    inverse_frequency = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(positions, dtype=torch.float32), inverse_frequency)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate consecutive pairs (x[2i], x[2i+1]) of [B, H, T, head_dim] by the tables' angles."""
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2)
