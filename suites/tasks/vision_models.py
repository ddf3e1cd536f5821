"""Model builders for image classification: an MLP and a small Vision Transformer.

Both return a `BlockModel` (stem -> blocks -> head) so that global methods train them as
one module and local methods (forward-forward, predictive coding, local learning) can
read and train each block's output. Written here rather than taken from torchvision or
timm: torchvision does not import beside the pinned torch, and a local learning rule
needs to know exactly where one block ends.

Initialisation depends only on the generator the harness hands over: a seed is drawn
from it and the modules are built under a forked global RNG, so building a model never
disturbs (or depends on) anyone else's random state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.interface import BlockModel, seeded_init

InputShape = tuple[int, int, int]  # (channels, height, width)


@dataclass(frozen=True)
class MLPConfig:
    """Widths of the hidden layers; one block per hidden layer (Linear + ReLU)."""

    hidden: tuple[int, ...] = (256, 256)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))  # YAML gives lists
        if any(int(width) < 1 for width in self.hidden):
            raise ValueError(f"mlp.hidden must hold positive widths, got {list(self.hidden)}.")


@dataclass(frozen=True)
class ViTConfig:
    """A small pre-norm ViT: non-overlapping patches, no cls token, mean pooling."""

    patch_size: int = 7
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0

    def __post_init__(self) -> None:
        for key in ("patch_size", "dim", "depth", "heads"):
            if getattr(self, key) < 1:
                raise ValueError(f"vit.{key} must be a positive integer, got {getattr(self, key)}.")
        if self.mlp_ratio <= 0:
            raise ValueError(f"vit.mlp_ratio must be positive, got {self.mlp_ratio}.")
        if self.dim % self.heads:
            raise ValueError(
                f"vit.dim={self.dim} is not divisible by vit.heads={self.heads}; "
                f"pick heads among the divisors of dim (e.g. heads={_largest_divisor(self.dim, self.heads)})."
            )


def check_vit_fits(config: ViTConfig, input_shape: InputShape) -> None:
    """Raise a ValueError naming `vit.patch_size` when the patches do not tile the image."""
    _, height, width = input_shape
    if height % config.patch_size or width % config.patch_size:
        divisors = [p for p in range(1, min(height, width) + 1) if height % p == 0 and width % p == 0]
        raise ValueError(
            f"vit.patch_size={config.patch_size} does not divide the {height}x{width} images of this task; "
            f"use one of {divisors}."
        )


def build_mlp(config: MLPConfig, input_shape: InputShape, num_classes: int, generator: torch.Generator) -> BlockModel:
    """Flatten -> [Linear + ReLU] per hidden width -> Linear to the classes."""

    def make() -> BlockModel:
        width = input_shape[0] * input_shape[1] * input_shape[2]
        blocks = []
        for hidden in config.hidden:
            blocks.append(nn.Sequential(nn.Linear(width, hidden), nn.ReLU()))
            width = hidden
        return BlockModel(nn.Flatten(), blocks, nn.Linear(width, num_classes))

    return _seeded(make, generator)


def build_vit(config: ViTConfig, input_shape: InputShape, num_classes: int, generator: torch.Generator) -> BlockModel:
    """Patch embedding + position embedding -> `depth` transformer blocks -> pooled head."""
    check_vit_fits(config, input_shape)
    hidden = max(1, round(config.dim * config.mlp_ratio))

    def make() -> BlockModel:
        stem = PatchEmbedding(input_shape, config.patch_size, config.dim)
        blocks = [TransformerBlock(config.dim, config.heads, hidden) for _ in range(config.depth)]
        return BlockModel(stem, blocks, PooledHead(config.dim, num_classes))

    return _seeded(make, generator)


class PatchEmbedding(nn.Module):
    """Images [B, C, H, W] -> tokens [B, T, dim]: a strided conv is a per-patch Linear."""

    def __init__(self, input_shape: InputShape, patch_size: int, dim: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)
        tokens = (height // patch_size) * (width // patch_size)
        # Small init as in ViT/DeiT: the patch content should dominate at the start.
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2) + self.position


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), then x + MLP(LN(x)) with a GELU MLP."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def attention(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        # [B, T, 3*dim] -> three [B, heads, T, dim/heads] tensors
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PooledHead(nn.Module):
    """LayerNorm -> mean over tokens -> Linear to the classes."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.norm(x).mean(dim=1))


def _seeded(make: Callable[[], BlockModel], generator: torch.Generator) -> BlockModel:
    """`make()` with its parameters a function of `generator` alone (harness.interface.seeded_init)."""
    with seeded_init(generator):
        return make()


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)
