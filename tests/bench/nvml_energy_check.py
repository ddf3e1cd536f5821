"""NVML energy attribution check, on a GPU: `python -m tests.bench.nvml_energy_check` (repo root).

Prints what one energy-counter read costs, how often the counter moves, and, for steps with and
without idle gaps between them, the joules the meter's sampler attributes to steps beside the
whole window's. On an H100 (2026-11-23): a read took 2.8 ms and the counter moved every 100 ms;
bf16 matmul bursts with 1-s idle gaps were attributed 688 W against 699 W steady, while the
window averaged 462 W (harness/energy.py's docstring explains the design this checks).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch

from harness.energy import EnergyMeter, Sampler, StepClock


def counter_read_cost(meter: EnergyMeter) -> None:
    reads = []
    for _ in range(2000):
        start = time.perf_counter()
        meter.counter_joules()
        reads.append(time.perf_counter() - start)
    reads.sort()
    print(f"counter read: median {statistics.median(reads) * 1e6:.1f} us, p90 {reads[1800] * 1e6:.1f} us")
    changes, last, start = [], meter.counter_joules(), time.perf_counter()
    while time.perf_counter() - start < 1.0:
        value = meter.counter_joules()
        if value != last:
            changes.append(time.perf_counter())
            last = value
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    print(f"counter moved {len(changes)} times in 1 s" + (f", median gap {statistics.median(gaps) * 1e3:.1f} ms"
                                                          if gaps else ""))


def attribute(meter: EnergyMeter, name: str, step: Callable[[], None], steps: int, idle_s: float = 0.0,
              every: int = 1) -> None:
    """Run `steps` steps (sleeping `idle_s` after every `every`) and print the sampler's attribution."""
    clock, in_steps = StepClock(), 0.0
    sampler = Sampler(meter, clock)
    first, wall_start = meter.counter_joules(), time.perf_counter()
    sampler.start()
    for i in range(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        clock.start(start)
        step()
        torch.cuda.synchronize()
        end = time.perf_counter()
        clock.stop(end)
        in_steps += end - start
        if idle_s and (i + 1) % every == 0:
            time.sleep(idle_s)
    sampler.stop()
    wall, total = time.perf_counter() - wall_start, meter.counter_joules() - first
    print(f"{name}: {in_steps:.2f} s in steps of {wall:.2f} s; attributed to steps {sampler.step_joules:.1f} J "
          f"({sampler.step_joules / in_steps:.0f} W); window {total:.1f} J ({total / wall:.0f} W)")


def main() -> int:
    if not torch.cuda.is_available():
        print("this check needs a CUDA GPU with NVML", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    meter = EnergyMeter(device)
    if meter.source != "nvml_energy_counter":
        print(f"no NVML energy counter here: {meter.reason or meter.source}", file=sys.stderr)
        return 2
    counter_read_cost(meter)
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10)).to(device)
    optimizer = torch.optim.AdamW(mlp.parameters())
    x, y = torch.randn(128, 784, device=device), torch.randint(0, 10, (128,), device=device)
    big = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)

    def mlp_step() -> None:
        loss = torch.nn.functional.cross_entropy(mlp(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def matmul_step() -> None:
        for _ in range(4):
            big @ big

    for _ in range(50):  # warm-up: kernels chosen, clocks up
        mlp_step(), matmul_step()
    attribute(meter, "tiny MLP, no gaps", mlp_step, 3000)
    attribute(meter, "bf16 matmuls, no gaps", matmul_step, 1000)
    attribute(meter, "bf16 matmuls, 5-ms gaps", matmul_step, 600, idle_s=0.005)
    attribute(meter, "bf16 matmuls in 1-s bursts, 1-s idle gaps", matmul_step, 1000, idle_s=1.0, every=200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
