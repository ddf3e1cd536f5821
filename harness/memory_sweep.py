"""Memory as a user pays it: the simulated peak of one training step against ViT depth.

For each depth (fixed width) and each method (forward_only, local_learning, and backprop plain,
bf16 autocast, activation-checkpointed and both), harness/loops/memory_only.measure_steps runs two
training steps of the method's own code on the meta device and reports
`meta_simulated_peak_bytes`: every storage an op creates, counted from its creation until its
last tensor dies (the meta analogue of `torch.cuda.max_memory_allocated`). It counts what the
ledger misses: forward activations of no-grad passes, logits, and checkpointing's recomputed
activations alive during the backward pass, so a checkpointed baseline is not flattered.

The ratio curve: the strongest baseline at a depth is the backprop variant with the least
peak; the ratio is that peak over the local method's. "10x less memory" holds from the first
depth where the ratio reaches 10, if any; past the sweep, the row says so.

Run: `python -m harness.memory_sweep` (options: `--help`). Fashion-MNIST's ViT shape from
suites/vision-vit.yaml (patch 7, dim 64, 4 heads, batch 128) unless told otherwise; the data
is read for one batch (meta tensors hold no values, but the batch's shape comes from it).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import torch

from harness.loops.memory_only import GPU_BYTES, META_STEPS, measure_steps
from harness.registry import get_method, get_task
from harness.typed_config import ConfigError, build_dataclass

MIB = 2**20
# (label, method, config overrides): the local methods and every backprop variant a memory claim is held against
VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("forward_only", "forward_only", {}),
    ("local_learning", "local_learning", {}),
    ("backprop", "backprop", {}),
    ("backprop bf16", "backprop", {"bf16": True}),
    ("backprop checkpoint", "backprop", {"checkpoint": True}),
    ("backprop checkpoint bf16", "backprop", {"checkpoint": True, "bf16": True}),
)
LOCAL = ("forward_only", "local_learning")


@dataclass(frozen=True)
class SweepConfig:
    task: str = "fashion_mnist"
    patch_size: int = 7
    dim: int = 64
    heads: int = 4
    mlp_ratio: float = 2.0
    batch_size: int = 128
    depths: tuple[int, ...] = (4, 8, 16, 32)
    seed: int = 0


def peak_bytes(cfg: SweepConfig, depth: int, method: str, overrides: dict[str, Any]) -> int:
    """Simulated peak of `META_STEPS` steps of `method` on a ViT of `depth` blocks (meta device)."""
    task_cls = get_task(cfg.task)
    task = task_cls(build_dataclass(task_cls.Config, {"model": "vit", "vit": {
        "patch_size": cfg.patch_size, "dim": cfg.dim, "depth": depth, "heads": cfg.heads,
        "mlp_ratio": cfg.mlp_ratio}}, f"task {cfg.task}"))
    method_cls = get_method(method)
    config = build_dataclass(method_cls.Config, overrides, f"method {method}")
    report = measure_steps(cfg.seed, cfg.batch_size, task, method_cls, config, torch.device("meta"), META_STEPS)
    return int(report["measured"]["meta_simulated_peak_bytes"])


def sweep(cfg: SweepConfig, variants: tuple[tuple[str, str, dict[str, Any]], ...] = VARIANTS
          ) -> dict[int, dict[str, int]]:
    """{depth: {variant label: peak bytes}}."""
    return {depth: {label: peak_bytes(cfg, depth, method, overrides) for label, method, overrides in variants}
            for depth in cfg.depths}


def ratios(peaks: dict[int, dict[str, int]]) -> dict[int, dict[str, float]]:
    """{depth: {local method: least backprop peak / its peak}}: above 1, the local method needs less."""
    out = {}
    for depth, row in peaks.items():
        baseline = min(v for k, v in row.items() if k.startswith("backprop"))
        out[depth] = {m: baseline / row[m] for m in LOCAL}
    return out


def ten_x_depth(curve: dict[int, dict[str, float]], method: str, factor: float = 10.0) -> int | None:
    """The first swept depth where `method` needs `factor` times less than the best backprop, else None."""
    return next((d for d in sorted(curve) if curve[d][method] >= factor), None)


def table(cfg: SweepConfig, peaks: dict[int, dict[str, int]]) -> str:
    labels = list(next(iter(peaks.values())))
    curve = ratios(peaks)
    lines = [f"Simulated peak MiB of one training step (meta device, step {META_STEPS}), ViT on {cfg.task} "
             f"(patch {cfg.patch_size}, dim {cfg.dim}, heads {cfg.heads}, batch {cfg.batch_size})", "",
             "| depth | " + " | ".join(labels) + " | " + " | ".join(f"best backprop / {m}" for m in LOCAL) + " |",
             "|---" * (1 + len(labels) + len(LOCAL)) + "|"]
    for depth in sorted(peaks):
        cells = [f"{peaks[depth][label] / MIB:.1f}" for label in labels]
        cells += [f"{curve[depth][m]:.2f}x" for m in LOCAL]
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    lines.append("")
    for m in LOCAL:
        hit = ten_x_depth(curve, m)
        lines.append(f"10x less memory than the best backprop variant, {m}: "
                     + (f"from depth {hit}" if hit is not None else f"at no depth up to {max(peaks)}"))
    return "\n".join(lines)


def gpus_table(cfg: SweepConfig, peaks: dict[int, dict[str, int]]) -> str:
    """Peak GB (1e9 bytes) per method and depth, and how many 80 GB GPUs hold it (the peak over
    80e9, rounded up: a lower bound, as if the step's memory split perfectly across them)."""
    lines = ["| depth | parameters | method | peak GB | 80 GB GPUs |", "|---|---|---|---|---|"]
    for depth in sorted(peaks):
        params = depth * (4 + 2 * cfg.mlp_ratio) * cfg.dim ** 2  # qkv + proj + MLP weights per block
        for label, peak in peaks[depth].items():
            lines.append(f"| {depth} | {params / 1e9:.1f}B | {label} | {peak / 1e9:,.0f} | {math.ceil(peak / GPU_BYTES)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.memory_sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fashion_mnist")
    parser.add_argument("--patch-size", type=int, default=7)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--mlp-ratio", type=float, default=2.0)
    parser.add_argument("--depths", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--gpus", action="store_true", help="also print peak GB and 80 GB GPUs per method")
    args = parser.parse_args(argv)
    cfg = SweepConfig(task=args.task, patch_size=args.patch_size, dim=args.dim, heads=args.heads,
                      mlp_ratio=args.mlp_ratio, batch_size=args.batch_size, depths=tuple(args.depths))
    try:  # bad sizes are the user's to fix: a one-line message, not a traceback
        peaks = sweep(cfg)
    except (ValueError, ConfigError) as exc:
        parser.error(str(exc))
    print(table(cfg, peaks))
    if args.gpus:
        print()
        print(gpus_table(cfg, peaks))


if __name__ == "__main__":
    main()
