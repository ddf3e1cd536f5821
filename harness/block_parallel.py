"""Block-parallel training of decoupled-block methods, and DDP backprop on the same processes.

Why it can be fast: in local_learning and forward_only (with `context_error=false`) no
gradient and no error crosses a block boundary; a block's update reads only its input (the
block below's output), the batch's targets and its own weights. So the blocks split into P
contiguous stages, one process each (stage 0 also runs the stem, the last stage the head),
and a stage that has updated on batch t can take batch t+1 at once: stage s works on batch
t - s while stage s+1 works on batch t - s - 1 (PipeDream-style 1F1B without the backward,
hence no weight staleness and no flush). The pipeline's micro-batches are the method's own
batches; only activations travel, forward (torch.distributed send/recv over gloo, on CPUs;
NCCL with one GPU per process would carry the same calls, but that path is not written or
tested yet: every process runs on the CPU). It is the same learning as the sequential `step`:
stage s sees batch t exactly as the sequential step's blocks see it, because every block's
input at batch t was made by the block below's weights after batch t-1 in both
(tests/test_block_parallel.py checks the weights).
Each process draws the same seeded data order and reads the targets itself (as DDP ranks do),
so only activations are sent.

The baseline gets its own best use of the same processes: backprop under
DistributedDataParallel, each process a 1/P slice of every batch, gradients all-reduced, the
same learning as one process on the whole batch.

What is measured (wall seconds, `time.perf_counter`, between barriers): the run's wall time per
example; per stage, the seconds of each stage update (`compute`); the bytes sent per batch at
each boundary; and the one-way time of such a message and of an all-reduce of the gradients
(ping-pong and all_reduce timed in the same processes before the run).

The projection (docs/block-parallel.md), for B batches of b examples on P devices:

    pipeline:  wall = (B + P - 1) * max_s (T_s + c_in(s) + c_out(s)),   per example = wall / (B b)
    DDP:       wall = B * (T_1 / P + allreduce_P),  allreduce_P = 2 (P-1)/P * G / bw + 2 (P-1) * lat

T_s is stage s's update time (the sum of its blocks' times from a one-process per-block
profile when projecting, the measured stage time when checking), c the one-way transfer time of
the activation bytes crossing that boundary, T_1 one process's backprop step on the whole batch
(assumed to shrink as 1/P: generous to DDP), G the gradient bytes, bw and lat the link's
bandwidth and latency read off the timed messages. Blocks are grouped into P stages by the
contiguous split with the smallest slowest stage; P above the number of blocks is not projected.

Run: `python -m harness.block_parallel` (options: `--help`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from harness.interface import Batch, BlockModel, SetupContext, StagedMethod
from harness.loops.common import cell_generators, seed_everything
from harness.registry import get_method, get_task
from harness.typed_config import ConfigError, build_dataclass

Mode = Literal["sequential", "pipeline", "ddp", "profile"]
# fork: the processes inherit the imported torch and harness (spawn re-imports them, seconds each
# on a busy machine); every process sets its own thread count before any work.
START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


@dataclass(frozen=True)
class ParallelConfig:
    """One block-parallel measurement: a task and model, a method, a number of processes."""

    method: str = "local_learning"
    method_options: dict[str, Any] = field(default_factory=dict)
    # backprop as suites/vision-vit.yaml sets it (the DDP baseline and the one-process reference)
    backprop_options: dict[str, Any] = field(default_factory=lambda: {
        "optimizer": "adamw", "lr": 0.002, "weight_decay": 0.05, "warmup": 0.05})
    task: str = "digits"
    task_options: dict[str, Any] = field(default_factory=lambda: {
        "model": "vit", "vit": {"patch_size": 2, "dim": 64, "depth": 8, "heads": 4}})
    batch_size: int = 64
    steps: int = 40
    seed: int = 0
    processes: int = 2
    threads: int = 1  # torch threads per process

    def __post_init__(self) -> None:
        for key in ("batch_size", "steps", "processes", "threads"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}")


@dataclass
class RankReport:
    """What one process measured (seconds, bytes) and, for the tests, its final weights."""

    rank: int
    first: int = 0
    last: int = 0
    wall: float = 0.0
    compute: list[float] = field(default_factory=list)  # seconds of each update of this rank's range
    block_seconds: list[float] = field(default_factory=list)  # profile mode: mean seconds per block
    bytes_out: list[int] = field(default_factory=list)  # profile mode: bytes of each block's output
    message_seconds: float | None = None  # one-way time of one activation message (pipeline)
    latency_seconds: float | None = None  # one-way time of a one-number message (pipeline)
    allreduce_seconds: float | None = None  # one all-reduce of the gradients (DDP)
    gradient_bytes: int = 0
    losses: list[float] = field(default_factory=list)
    state: dict[str, Tensor] = field(default_factory=dict)


# ------------------------------------------------------------------ set-up shared by every mode


def build(cfg: ParallelConfig, method_name: str, options: dict[str, Any], steps_done: Callable[[], int]
          ) -> tuple[Any, BlockModel, Iterator[Batch]]:
    """Seeded task, model and method exactly as harness/loops/common.py sets a cell up."""
    task_cls = get_task(cfg.task)
    task = task_cls(build_dataclass(task_cls.Config, dict(cfg.task_options), f"task_options ({cfg.task})"))
    method_cls = get_method(method_name)
    config = build_dataclass(method_cls.Config, dict(options), f"method_options ({method_name})")
    seed_everything(cfg.seed)
    init_gen, data_gen, method_gen = cell_generators(cfg.seed)
    model = task.build_model(init_gen)
    method = method_cls()
    method.setup(SetupContext(model=model, task=task, config=config, device=torch.device("cpu"),
                              generator=method_gen, budget_fraction=lambda: min(1.0, steps_done() / cfg.steps),
                              planned_steps=cfg.steps))
    # Whole batches only, in every mode alike: a stage's receive buffer has a fixed shape, so an
    # epoch's partial last batch is skipped (by every process, which all draw the same order).
    batches = (b for b in task.train_batches(cfg.batch_size, data_gen) if b.size == cfg.batch_size)
    return method, model, batches


def split_blocks(seconds: list[float], parts: int) -> list[tuple[int, int]]:
    """Contiguous [first, last) ranges of len(seconds) blocks into `parts` stages, the slowest
    stage as fast as possible (exact dynamic programme; blocks are few)."""
    n = len(seconds)
    if not 1 <= parts <= n:
        raise ValueError(f"cannot split {n} blocks into {parts} stages: give 1 to {n} processes")
    prefix = [0.0]
    for s in seconds:
        prefix.append(prefix[-1] + s)
    best = {(0, 0): (0.0, [])}  # (blocks used, stages) -> (slowest stage, ranges)
    for stages in range(1, parts + 1):
        for used in range(stages, n - (parts - stages) + 1):
            options = []
            for start in range(stages - 1, used):
                if (start, stages - 1) in best:
                    slowest, ranges = best[(start, stages - 1)]
                    options.append((max(slowest, prefix[used] - prefix[start]), ranges + [(start, used)]))
            best[(used, stages)] = min(options, key=lambda o: o[0])
    return best[(n, parts)][1]


def check_staged(method: Any, model: BlockModel, batch: Batch, ranges: list[tuple[int, int]]) -> None:
    """Raise, before any process starts, when `method` cannot run these stages (on a throwaway copy)."""
    if not isinstance(method, StagedMethod):
        raise ValueError(f"{type(method).__name__} has no stage_step: block-parallel training serves methods "
                         f"whose blocks learn from their input alone (local_learning, forward_only)")
    h = batch.inputs
    for first, last in ranges:  # the method's own error names the option that couples its blocks
        h, _ = method.stage_step(first, last, h, batch)


def _state(model: BlockModel) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ the modes


def run_sequential(cfg: ParallelConfig, method_name: str, options: dict[str, Any]) -> RankReport:
    """The method's own `step` on one process: the reference learning and time."""
    torch.set_num_threads(cfg.threads)
    done = [0]
    method, model, batches = build(cfg, method_name, options, lambda: done[0])
    report = RankReport(rank=0, first=0, last=len(model.blocks))
    start = time.perf_counter()
    for _ in range(cfg.steps):
        batch = next(batches)
        t0 = time.perf_counter()
        stats = method.step(batch)
        report.compute.append(time.perf_counter() - t0)
        report.losses.append(float("nan") if stats.loss is None else stats.loss)
        done[0] += 1
    report.wall = time.perf_counter() - start
    report.state = _state(model)
    return report


def run_profile(cfg: ParallelConfig, method_name: str, options: dict[str, Any]) -> RankReport:
    """Seconds of each block's update alone (block 0 with the stem, the last with the head) and
    the bytes of each block's output: the inputs of the projection. One process."""
    torch.set_num_threads(cfg.threads)
    done = [0]
    method, model, batches = build(cfg, method_name, options, lambda: done[0])
    n = len(model.blocks)
    seconds: list[list[float]] = [[] for _ in range(n)]
    report = RankReport(rank=0, first=0, last=n)
    for step in range(cfg.steps):
        batch = next(batches)
        h = batch.inputs
        for k in range(n):
            t0 = time.perf_counter()
            h, _ = method.stage_step(k, k + 1, h, batch)
            if step > 0:  # the first step pays for lazy state (AdamW's moments)
                seconds[k].append(time.perf_counter() - t0)
            if step == 0:
                report.bytes_out.append(h.numel() * h.element_size())
        done[0] += 1
    report.block_seconds = [statistics.fmean(s) if s else 0.0 for s in seconds]
    return report


def _ping(tensor: Tensor, rank: int, repeats: int = 20) -> float:
    """One-way seconds of sending `tensor` between ranks 0 and 1 (half the mean round trip)."""
    dist.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        if rank == 0:
            dist.send(tensor, 1)
            dist.recv(tensor, 1)
        elif rank == 1:
            dist.recv(tensor, 0)
            dist.send(tensor, 0)
    return (time.perf_counter() - start) / (2 * repeats)


def _pipeline_rank(rank: int, cfg: ParallelConfig, ranges: list[tuple[int, int]], out: Path) -> None:
    done = [0]
    method, model, batches = build(cfg, cfg.method, cfg.method_options, lambda: done[0])
    first, last = ranges[rank]
    report = RankReport(rank=rank, first=first, last=last)
    shapes = _boundary_shapes(cfg, method, model, ranges)
    if cfg.processes > 1:
        report.latency_seconds = _ping(torch.zeros(1), rank)
        report.message_seconds = _ping(torch.zeros(shapes[0]), rank)
    dist.barrier()
    start = time.perf_counter()
    sending: dist.Work | None = None
    receiving = dist.irecv(buffer := torch.empty(shapes[rank - 1]), rank - 1) if rank > 0 else None
    for _ in range(cfg.steps):
        batch = next(batches)  # the same data order on every rank: the targets, and rank 0's inputs
        if receiving is not None:
            receiving.wait()
            inputs, buffer = buffer, torch.empty(shapes[rank - 1])
            if done[0] + 1 < cfg.steps:  # post the next receive before working
                receiving = dist.irecv(buffer, rank - 1)
            batch = Batch(inputs, batch.targets)
        else:
            inputs = batch.inputs
        t0 = time.perf_counter()
        h, loss = method.stage_step(first, last, inputs, batch)
        report.compute.append(time.perf_counter() - t0)
        if rank < len(ranges) - 1:
            if sending is not None:
                sending.wait()
            sending = dist.isend(h.contiguous(), rank + 1)
        if loss is not None:
            report.losses.append(loss)
        done[0] += 1
    if sending is not None:
        sending.wait()
    dist.barrier()
    report.wall = time.perf_counter() - start
    report.state = _state(model)
    torch.save(report, out / f"rank{rank}.pt")


def _boundary_shapes(cfg: ParallelConfig, method: Any, model: BlockModel, ranges: list[tuple[int, int]]
                     ) -> list[tuple[int, ...]]:
    """[batch, ...] shape of what each stage sends (every batch is whole: `build` skips an
    epoch's partial last batch, so one receive buffer shape serves every step)."""
    with torch.no_grad():
        was = model.training
        model.eval()
        outputs = model.block_outputs(torch.zeros(cfg.batch_size, *method.ctx.task.describe()["input_shape"]))
        model.train(was)
    return [tuple(outputs[last].shape) for _, last in ranges]


def _ddp_rank(rank: int, cfg: ParallelConfig, out: Path) -> None:
    done = [0]
    method, model, batches = build(cfg, "backprop", cfg.backprop_options, lambda: done[0])
    ddp = DistributedDataParallel(model)
    method.model = ddp  # backprop's own step, through the DDP wrapper (gradients all-reduced)
    report = RankReport(rank=rank, first=0, last=len(model.blocks))
    grads = [p for p in model.parameters() if p.requires_grad]
    report.gradient_bytes = sum(p.numel() * p.element_size() for p in grads)
    flat = torch.zeros(sum(p.numel() for p in grads))
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(10):
        dist.all_reduce(flat)
    report.allreduce_seconds = (time.perf_counter() - t0) / 10
    dist.barrier()
    start = time.perf_counter()
    for _ in range(cfg.steps):
        batch = next(batches)
        mine = Batch(batch.inputs[rank::cfg.processes], batch.targets[rank::cfg.processes])
        t0 = time.perf_counter()
        stats = method.step(mine)
        report.compute.append(time.perf_counter() - t0)
        report.losses.append(stats.loss)
        done[0] += 1
    dist.barrier()
    report.wall = time.perf_counter() - start
    report.state = _state(model)
    torch.save(report, out / f"rank{rank}.pt")


def _worker(rank: int, mode: Mode, cfg: ParallelConfig, ranges: list[tuple[int, int]], port: int, out: str) -> None:
    torch.set_num_threads(cfg.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=cfg.processes)
    try:
        if mode == "pipeline":
            _pipeline_rank(rank, cfg, ranges, Path(out))
        else:
            _ddp_rank(rank, cfg, Path(out))
    finally:
        dist.destroy_process_group()


def run_distributed(cfg: ParallelConfig, mode: Literal["pipeline", "ddp"],
                    ranges: list[tuple[int, int]] | None = None) -> list[RankReport]:
    """`cfg.processes` processes on this machine (gloo over loopback), one report per rank."""
    if mode == "pipeline":
        method, model, batches = build(cfg, cfg.method, cfg.method_options, lambda: 0)
        if ranges is None:
            ranges = split_blocks([1.0] * len(model.blocks), cfg.processes)
        if len(ranges) != cfg.processes:
            raise ValueError(f"{len(ranges)} stage ranges for {cfg.processes} processes")
        check_staged(method, model, next(batches), ranges)
    elif cfg.batch_size % cfg.processes:
        raise ValueError(f"DDP splits each batch of {cfg.batch_size} over {cfg.processes} processes: "
                         f"give a batch_size divisible by processes")
    with tempfile.TemporaryDirectory(prefix="block-parallel-") as out:
        mp.start_processes(_worker, args=(mode, cfg, ranges or [], _free_port(), out), nprocs=cfg.processes,
                           start_method=START_METHOD)
        return [torch.load(Path(out) / f"rank{r}.pt", weights_only=False) for r in range(cfg.processes)]


# ------------------------------------------------------------------ the projection


def pipeline_seconds(stage_seconds: list[float], message_seconds: list[float], batches: int) -> float:
    """Wall seconds of `batches` batches through stages taking `stage_seconds` each, a boundary
    message costing `message_seconds[s]` to both stage s and s+1: (B + P - 1) * slowest period."""
    P = len(stage_seconds)
    period = max(t + (message_seconds[s - 1] if s > 0 else 0.0) + (message_seconds[s] if s < P - 1 else 0.0)
                 for s, t in enumerate(stage_seconds))
    return (batches + P - 1) * period


def link(latency_seconds: float, message_seconds: float, message_bytes: int) -> tuple[float, float]:
    """(latency s, bandwidth B/s) of a link from a timed one-number message and a timed message of
    `message_bytes`: what the larger one took beyond the latency is its bytes over the bandwidth.
    When it took no longer (a busy machine: the round trip is scheduling delay), the bandwidth is
    unresolved and returned as inf: the whole message time is then counted as latency."""
    extra = message_seconds - latency_seconds
    return latency_seconds, message_bytes / extra if extra > 0 else math.inf


def ddp_seconds(one_process_step: float, gradient_bytes: int, processes: int, latency: float, bandwidth: float,
                batches: int) -> float:
    """Wall seconds of `batches` DDP steps on `processes`: compute shrinks as 1/P, plus a ring all-reduce."""
    P = processes
    allreduce = 0.0 if P == 1 else 2 * (P - 1) / P * gradient_bytes / bandwidth + 2 * (P - 1) * latency
    return batches * (one_process_step / P + allreduce)


@dataclass(frozen=True)
class Projection:
    devices: int
    pipeline_us_per_example: float | None
    ddp_us_per_example: float
    speedup: float | None  # DDP backprop time / pipelined time, per example
    note: str = ""


def project(profile: RankReport, backprop_step: float, gradient_bytes: int, latency: float, bandwidth: float,
            batch_size: int, batches: int, devices: list[int]) -> list[Projection]:
    """Pipeline and DDP time per example on each number of devices, from one-process measurements."""
    rows = []
    n = len(profile.block_seconds)
    for P in devices:
        ddp = ddp_seconds(backprop_step, gradient_bytes, P, latency, bandwidth, batches) / (batches * batch_size)
        if P > n:
            rows.append(Projection(P, None, ddp * 1e6, None, f"{n} blocks cannot fill {P} stages"))
            continue
        ranges = split_blocks(profile.block_seconds, P)
        stages = [sum(profile.block_seconds[a:b]) for a, b in ranges]
        messages = [latency + profile.bytes_out[b - 1] / bandwidth for _, b in ranges[:-1]]
        pipe = pipeline_seconds(stages, messages, batches) / (batches * batch_size)
        rows.append(Projection(P, pipe * 1e6, ddp * 1e6, ddp / pipe))
    return rows


# ------------------------------------------------------------------ the command


@dataclass(frozen=True)
class Measurement:
    """Everything `python -m harness.block_parallel` measures in one invocation."""

    config: ParallelConfig
    sequential_us: float  # the method's own step, one process, per example
    backprop_us: float  # backprop, one process, per example
    pipeline_us: float  # pipelined on cfg.processes processes, per example
    ddp_us: float  # DDP backprop on cfg.processes processes, per example
    pipeline_check_us: float  # the projection from this run's own stage times and message time
    projections: list[Projection]
    stage_seconds: list[float]
    ranges: list[tuple[int, int]]
    latency_us: float  # the link measured between the processes (gloo, loopback)
    bandwidth_mb_s: float
    assumed: tuple[float, float] | None = None  # (latency us, MB/s) given with --link
    assumed_projections: list[Projection] | None = None  # the projection on that link


def measure(cfg: ParallelConfig, devices: list[int], assumed_link: tuple[float, float] | None = None) -> Measurement:
    """Every run of the module docstring; with `assumed_link` = (latency s, bandwidth B/s) the
    projection is also made on that link (the 15% check always uses the measured message time)."""
    examples = cfg.steps * cfg.batch_size
    profile = run_profile(cfg, cfg.method, cfg.method_options)
    ranges = split_blocks(profile.block_seconds, cfg.processes)
    sequential = run_sequential(cfg, cfg.method, cfg.method_options)
    backprop = run_sequential(cfg, "backprop", cfg.backprop_options)
    pipe = run_distributed(cfg, "pipeline", ranges)
    ddp = run_distributed(cfg, "ddp")
    stage_seconds = [statistics.fmean(r.compute) for r in pipe]
    message = pipe[0].message_seconds or 0.0
    check = pipeline_seconds(stage_seconds, [message] * (cfg.processes - 1), cfg.steps) / examples
    latency, bandwidth = link(pipe[0].latency_seconds or 0.0, message, profile.bytes_out[ranges[0][1] - 1])
    backprop_step = statistics.fmean(backprop.compute[1:])
    projections = project(profile, backprop_step, ddp[0].gradient_bytes, latency, bandwidth, cfg.batch_size,
                          cfg.steps, devices)
    assumed = None if assumed_link is None else project(profile, backprop_step, ddp[0].gradient_bytes, *assumed_link,
                                                        cfg.batch_size, cfg.steps, devices)
    return Measurement(cfg, sequential.wall / examples * 1e6, backprop.wall / examples * 1e6,
                       max(r.wall for r in pipe) / examples * 1e6, max(r.wall for r in ddp) / examples * 1e6,
                       check * 1e6, projections, stage_seconds, ranges, latency * 1e6, bandwidth / 1e6,
                       None if assumed_link is None else (assumed_link[0] * 1e6, assumed_link[1] / 1e6), assumed)


def _table(m: Measurement) -> str:
    P = m.config.processes
    lines = [f"{m.config.method} on {m.config.task} {m.config.task_options}, batch {m.config.batch_size}, "
             f"{m.config.steps} steps, {P} processes, stages {m.ranges}",
             "",
             "| run | us per example |", "|---|---|",
             f"| {m.config.method}, 1 process (its own step) | {m.sequential_us:.0f} |",
             f"| backprop, 1 process | {m.backprop_us:.0f} |",
             f"| {m.config.method}, pipelined, {P} processes | {m.pipeline_us:.0f} |",
             f"| backprop, DDP, {P} processes | {m.ddp_us:.0f} |",
             f"| projection of the pipelined run from its own stage times {[round(s * 1e3, 2) for s in m.stage_seconds]} ms"
             f" | {m.pipeline_check_us:.0f} ({(m.pipeline_check_us / m.pipeline_us - 1) * 100:+.1f}%) |",
             "",
             f"speedup, pipelined {m.config.method} over DDP backprop on {P} processes: {m.ddp_us / m.pipeline_us:.2f}x",
             "",
             f"projection on the link measured between the processes: latency {m.latency_us:.0f} us, "
             + (f"bandwidth {m.bandwidth_mb_s:,.0f} MB/s" if math.isfinite(m.bandwidth_mb_s) else
                "bandwidth unresolved (a large message took no longer than a small one: the machine is busy, "
                "the latency is mostly scheduling delay)"), "", *_projection_rows(m.projections)]
    if m.assumed is not None and m.assumed_projections is not None:
        lines += ["", f"projection on an assumed link (--link): latency {m.assumed[0]:.0f} us, "
                  f"bandwidth {m.assumed[1]:,.0f} MB/s", "", *_projection_rows(m.assumed_projections)]
    return "\n".join(lines)


def _projection_rows(projections: list[Projection]) -> list[str]:
    rows = ["| devices | pipelined us/example | DDP backprop us/example | speedup |", "|---|---|---|---|"]
    for p in projections:
        pipe = "n/a" if p.pipeline_us_per_example is None else f"{p.pipeline_us_per_example:.0f}"
        speed = p.note if p.speedup is None else f"{p.speedup:.2f}x"
        rows.append(f"| {p.devices} | {pipe} | {p.ddp_us_per_example:.0f} | {speed} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.block_parallel", description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="local_learning", choices=["local_learning", "forward_only"])
    parser.add_argument("--depth", type=int, default=16, help="ViT depth (blocks); digits, patch 2, dim 64")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--devices", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--link", type=float, nargs=2, metavar=("LATENCY_US", "GB_PER_S"),
                        help="project with this link instead of the one measured between the processes")
    args = parser.parse_args(argv)
    options = {"context_error": False} if args.method == "forward_only" else {}
    try:  # bad sizes are the user's to fix: a one-line message, not a traceback
        cfg = ParallelConfig(method=args.method, method_options=options, batch_size=args.batch_size,
                             steps=args.steps, processes=args.processes,
                             task_options={"model": "vit", "vit": {"patch_size": 2, "dim": args.dim,
                                                                   "depth": args.depth, "heads": 4}})
        assumed = None if args.link is None else (args.link[0] * 1e-6, args.link[1] * 1e9)
        print(_table(measure(cfg, args.devices, assumed)))
    except (ValueError, ConfigError) as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
