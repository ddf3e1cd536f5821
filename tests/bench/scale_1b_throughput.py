"""Throughput and peak memory of real 1.1B-parameter training steps on this machine, against ES `chunk`.

    python tests/bench/scale_1b_throughput.py [--chunks 1,2,4,8] [--methods evolution,zeroth_order]
        [--seq-len 32] [--batch 1] [--steps 3] [--compute float32] [--json PATH] [key=value ...]

Each row is suite scale-1b's `llama_1b` (TinyLlama-1.1B's shape, 1.10B parameters, vocab
32,000) with the suite's method options, built for real on the CPU and stepped `--steps`
times through the harness's own meter (harness/loops/memory_only.py's `measure_steps`, the
code a GPU cell runs): the first step is the meter's FLOP/ledger probe, the later ones are
timed plainly, in wall seconds (the meter) and in the process's CPU seconds (one thread, so
core-seconds: on a shared machine the load inflates wall time, CPU time far less). Each row
also prints its steps' losses (the same batch each step). Every row runs in a fresh process, so its peak resident set (`VmHWM`, reset when
the steps begin) is that row's alone. Beside it, the meta-device simulated peak of the same
config at the same (short) shapes, and the suite's own shape (batch 4 x 2048 tokens) on meta.

What changes from the suite, and why (each printed in the table's header):
- a short batch (`--batch` x `--seq-len` tokens, default 1 x 32): one 1.1B forward is
  2 x 1.1e9 FLOPs per token, ~40 GFLOP/s on one core here;
- ES `compute` (default float32): this CPU has no bf16 matrix unit (bf16 GEMMs ran at
  ~7 GFLOP/s against fp32's ~39 on one core), so bf16 compute would time the CPU's emulation.
  The weights stay int8 either way; `--compute bfloat16` times the suite's exact config;
- MeZO keeps the suite's bf16 weights (that is what makes it a no-FP32 method);
- backprop (bf16 autocast, fp32 master weights and AdamW: ~20 GiB) runs only when asked
  (`--methods ...,backprop`) and when the machine's available memory exceeds its meta ledger by
  4 GiB; otherwise its row says why not.

Reports only; asserts nothing (timings on a shared machine are noise for a test). Run it when
the machine is quiet and give `uptime` beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: this checkout's code, not an installed copy's
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from harness.config import resolve
from harness.loops.common import build_task
from harness.loops.memory_only import measure_steps
from harness.plan import plan
from harness.registry import get_method

GIB = 2**30
BACKPROP_MARGIN = 4 * GIB  # what the machine must keep free beside backprop's ledger


def _overrides(method: str, chunk: int | None, args: argparse.Namespace, full_shape: bool = False) -> list[str]:
    out = ["suite=scale-1b", "device=cpu", "threads=1", f"method={method}", *args.overrides]
    if not full_shape:
        out += [f"tasks.llama_1b.seq_len={args.seq_len}", f"batch_size={args.batch}"]
    if method == "evolution":
        out += [f"method_options.evolution.chunk={chunk}", f"method_options.evolution.compute={args.compute}"]
    if method == "backprop":
        out += ["method_options.backprop.bf16=true"]
    return out


def _cell(overrides: list[str]) -> tuple[Any, Any, type]:
    (cell,) = plan(resolve(overrides))
    return cell, build_task(cell), get_method(cell.method.name)


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_timed(method_cls: type, cpu_seconds: list[float], losses: list[float | None]) -> type:
    """`method_cls` whose steps also record the process's CPU seconds (one thread: core-seconds,
    which a shared machine's load inflates far less than wall seconds) and their losses."""

    class CPUTimed(method_cls):  # type: ignore[valid-type, misc]
        def step(self, batch: Any) -> Any:
            start = time.process_time()
            stats = super().step(batch)
            cpu_seconds.append(time.process_time() - start)
            losses.append(stats.loss)
            return stats

    return CPUTimed


def one_row(overrides: list[str], steps: int) -> dict[str, Any]:
    """Real steps of one config on the CPU (run in its own process: see `main`)."""
    cell, task, method_cls = _cell(overrides)
    torch.set_num_threads(1)
    cpu_seconds: list[float] = []
    losses: list[float | None] = []
    report = measure_steps(cell.seed, cell.batch_size, task, _cpu_timed(method_cls, cpu_seconds, losses),
                           cell.method.config, torch.device("cpu"), steps)
    return {"time": report["time"], "measured": report["measured"], "flops": report["flops"],
            "counters": report["counters"], "ledger_total": report["ledger"]["total_bytes"],
            "seconds_with_setup": report["seconds"], "cpu_seconds": cpu_seconds, "losses": losses}


def meta_peak(overrides: list[str]) -> dict[str, Any]:
    """The meta device's simulated peak and ledger of the same config (no allocation)."""
    cell, task, method_cls = _cell(overrides)
    report = measure_steps(cell.seed, cell.batch_size, task, method_cls, cell.method.config, torch.device("meta"),
                           2)
    return {"simulated_peak": report["measured"]["meta_simulated_peak_bytes"],
            "population": getattr(cell.method.config, "population", None),
            "ledger_total": report["ledger"]["total_bytes"]}


def _in_subprocess(overrides: list[str], steps: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one", json.dumps(overrides), "--steps", str(steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(method: str, chunk: int | None, args: argparse.Namespace) -> dict[str, Any]:
    label = f"ES int8, chunk {chunk}" if method == "evolution" else {
        "zeroth_order": "MeZO bf16", "backprop": "backprop bf16 autocast + AdamW"}.get(method, method)
    small = meta_peak(_overrides(method, chunk, args))
    full = meta_peak(_overrides(method, chunk, args, full_shape=True))
    out: dict[str, Any] = {"label": label, "method": method, "chunk": chunk, "population": small["population"], "meta_peak": small["simulated_peak"],
                           "meta_peak_suite_shape": full["simulated_peak"], "meta_ledger": small["ledger_total"]}
    if method == "backprop" and small["ledger_total"] + BACKPROP_MARGIN > _mem_available():
        out["error"] = (f"not run: its ledger ({small['ledger_total'] / GIB:.1f} GiB) + {BACKPROP_MARGIN / GIB:.0f} GiB "
                        f"exceeds the available memory ({_mem_available() / GIB:.1f} GiB)")
        return out
    real = _in_subprocess(_overrides(method, chunk, args), args.steps)
    out.update(real)
    if "error" not in real:
        tokens = args.batch * args.seq_len
        seconds = real["time"]["median_step_seconds"]
        cpu = statistics.median(real["cpu_seconds"][1:])  # the first step is the probe
        per_step_fe = real["counters"]["forward_equivalents"] / real["counters"]["steps"]
        out.update({"step_seconds": seconds, "step_cpu_seconds": cpu, "tokens_per_cpu_second": tokens / cpu,
                    "forward_tokens_per_cpu_second": tokens * per_step_fe / cpu,
                    "peak_rss": real["measured"]["process_peak_rss_bytes"]})
    return out


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f}"


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"1.1B llama_1b on CPU, batch {args.batch} x {args.seq_len} tokens, {args.steps} steps per row "
             f"(the first is the FLOP probe; step s = median of the others), ES population "
             f"{next((r['population'] for r in rows if r['population']), '-')}, compute {args.compute}; torch threads 1",
             "| config | CPU s/step | wall s/step | data tokens per CPU s | forward tokens per CPU s | probe step "
             "wall s | peak RSS GiB | simulated peak GiB (same shapes) | simulated peak GiB (suite shape, 4 x 2048) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | {r['error']} | | | | | | {_gib(r['meta_peak'])} | "
                         f"{_gib(r['meta_peak_suite_shape'])} |")
            continue
        lines.append(f"| {r['label']} | {r['step_cpu_seconds']:.1f} | {r['step_seconds']:.1f} | "
                     f"{r['tokens_per_cpu_second']:.2f} | {r['forward_tokens_per_cpu_second']:.1f} | "
                     f"{r['time']['probe_seconds']:.1f} | {_gib(r['peak_rss'])} | {_gib(r['meta_peak'])} | "
                     f"{_gib(r['meta_peak_suite_shape'])} |")
    scopes = {r["measured"]["process_peak_rss_scope"] for r in rows if "measured" in r}
    lines.append(f"peak RSS scope: {', '.join(sorted(scopes)) or '-'} (whole process: weights, torch, Python)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", default="1,2,4,8", help="ES members per batched forward (population 8)")
    parser.add_argument("--methods", default="evolution,zeroth_order", help="comma-separated; add backprop to try it")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="steps per row (>= 2: the first is the probe)")
    parser.add_argument("--compute", default="float32", help="ES compute dtype (the weights stay int8)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one row's real steps, in a child process
    parser.add_argument("overrides", nargs="*", help="more suite overrides")
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_row(json.loads(args.one), args.steps)))
        return
    if args.steps < 2:
        parser.error("--steps must be >= 2: the first step is the meter's probe, timed apart")
    torch.set_num_threads(1)
    rows = []
    for method in args.methods.split(","):
        chunks = [int(c) for c in args.chunks.split(",")] if method == "evolution" else [None]
        for chunk in chunks:
            rows.append(row(method, chunk, args))
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("flops", "counters")}), flush=True)
    print(table(rows, args))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
