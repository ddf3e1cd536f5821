"""Pieces shared by the forward-only paradigms (methods/zeroth_order.py, methods/evolution.py).

Both replay their perturbations from integer seeds instead of storing noise, so both
need a generator that draws on the parameters' device, and both run the model in a
lower-precision dtype whose inputs must follow it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FloatName = Literal["float32", "bfloat16", "float16"]


def device_generator(device: torch.device) -> torch.Generator:
    """A generator that `torch.randn(..., device=device)` accepts.

    CUDA draws need a CUDA generator; the meta device (memory estimates) draws nothing
    and accepts a CPU one.
    """
    return torch.Generator(device=device) if device.type == "cuda" else torch.Generator()


def draw_seed(generator: torch.Generator) -> int:
    """A fresh 62-bit seed from the method's generator (the harness's only randomness path)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))


def mix(seed: int, index: int) -> int:
    """A seed for item `index` (a parameter, a layer) derived from a step's seed."""
    return (seed * 1_000_003 + 7919 * index + 1) % 2**62


def as_model_input(x: Tensor, dtype: torch.dtype) -> Tensor:
    """Float inputs (images) in the model's dtype; integer inputs (token ids) unchanged."""
    return x.to(dtype) if x.is_floating_point() else x
