"""The meter: time, memory, energy and FLOPs, measured the same way for every method.

Rules (what is measured, and how):

- Time: wall seconds inside `Method.step` only. CPU: `time.perf_counter` around the
  step. GPU: by default (`defer_timing`, which the supervised loop asks for unless the
  budget is seconds or joules, whose limit must be known after every step) a pair of
  CUDA events around each step, read in one go at the next evaluation boundary
  (`flush`), so no host synchronisation is added per step and the CPU may queue the
  next step while the device runs this one; the seconds are the device's time between
  the events. Otherwise `torch.cuda.synchronize` before starting and before stopping the
  clock. Evaluation is timed apart by the runner. Steps that carry a probe (below) are
  timed synchronously, kept out of the median step time, and their count and own
  seconds are recorded (`probe_seconds`), since probes slow a step.
- What a probe step is charged (the seconds budget and `train_seconds`): a probe is a
  real training step slowed by the FLOP counter and the ledger's hooks (seen: an int8 ES
  step of 5.9 s took 72 s under the counter), and the slowdown is the meter's, not the
  method's. So a probe step is charged nothing when it runs; the first un-probed step of
  the same kind settles it: it is charged the median of that kind's un-probed steps known
  then (that step's seconds; the median of those a `flush` reads, for deferred CUDA steps),
  capped at its own time, which the counter can only have lengthened. A probe whose kind never runs un-probed is charged its own
  time at `flush(settle=True)` (the end of a loop), the only time known for it. What the
  probes took beyond their charge is the record's `phase_seconds["probe"]`, beside the
  counters' set-up and reading, so every second of a cell is still accounted for. Effect:
  a seconds budget buys the same steps with or without a slow probe, within one step (the
  probe's charge arrives one step late). Energy is not re-attributed: joules are what the
  counter read, probes included.
- Probes: the first `probe_steps` steps, afterwards the next step whenever a step
  of a kind never probed has been seen (`StepStats.kind`), and a step the caller
  announced (`expect`) as of a kind never probed (a rare kind, e.g. a continual
  method's once-per-experience consolidation, which the step after could not probe), run under
  `FlopCounterMode` and the saved-tensor ledger. They give FLOPs per step of each
  kind, the saved-activation peak, gradients and declared buffers (harness/ledger.py).
- FLOPs: counted FLOPs of each step kind's probe, times the number of steps of that
  kind; `None` with the reason when a kind was never probed. CPU flash attention,
  which FlopCounterMode counts as 0, gets the standard SDPA formula registered here, and
  the in-place GEMMs (`addmm_`, `baddbmm_`), which it also counts as 0, their out-of-place
  twins' formulas.
- Memory, measured (named as what they are, never mixed with the ledger):
  `torch.cuda.max_memory_allocated` / `max_memory_reserved` (reset per cell), NVML
  device memory used (sampled; the whole device, all processes), and the process's
  peak resident set (`VmHWM`, reset per cell through /proc/self/clear_refs where the
  kernel allows it; otherwise the process-lifetime peak, marked as such).
- Energy: see harness/energy.py; joules spent inside steps (RAPL: read around each step;
  NVML: attributed by the sampler thread, since its counter moves every ~100 ms and a read
  costs milliseconds), the whole window's joules beside them, or `None` with a reason.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import (FlopCounterMode, addmm_flop, baddbmm_flop, register_flop_formula,
                                     sdpa_backward_flop_count, sdpa_flop_count)

from harness.energy import EnergyMeter, Sampler, StepClock
from harness.interface import StepStats
from harness.ledger import SavedTensorLedger, declared_bytes, model_bytes


def _register_cpu_attention_flops() -> None:
    """FlopCounterMode counts CPU flash attention as 0 FLOPs; give it the SDPA formula."""
    aten = torch.ops.aten
    try:
        @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)
        def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return sdpa_flop_count(query_shape, key_shape, value_shape)

        @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward)
        def _cpu_sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                               **kwargs) -> int:
            return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)
    except (AttributeError, ValueError, RuntimeError):  # already registered by torch, or op absent
        pass


def _register_in_place_gemm_flops() -> None:
    """FlopCounterMode counts the in-place GEMMs `addmm_` and `baddbmm_` as 0 FLOPs: a method
    updating a weight with `w.addmm_(u, x)` would spend compute the meter never sees, and so run
    more steps than its budget pays for. Give each the formula of its out-of-place twin (torch's
    exported formulas already take the tensors' shapes: registered raw)."""
    aten = torch.ops.aten
    for op, formula in ((aten.addmm_, addmm_flop), (aten.baddbmm_, baddbmm_flop)):
        try:
            register_flop_formula(op, get_raw=True)(formula)
        except (AttributeError, ValueError, RuntimeError):  # already registered by torch, or op absent
            pass


_register_cpu_attention_flops()
_register_in_place_gemm_flops()


@dataclass(frozen=True)
class MeterConfig:
    """Measurement settings; they change what is observed, never what is learned."""

    probe_steps: int = 1  # leading steps probed for FLOPs and the ledger (>= 1)
    sampling: bool = True  # background NVML sampling of memory and energy (GPU only; off: both null)

    def __post_init__(self) -> None:
        if self.probe_steps < 1:
            raise ValueError(f"probe_steps must be >= 1 (FLOPs and the ledger come from probes), got {self.probe_steps}")


@dataclass(frozen=True)
class StepCost:
    """`seconds`: what this call charges the seconds budget (its own step, 0 for a probe, plus
    any earlier probe of its kind it settles; module docstring); `step_seconds`: the step's own
    measured time (0 for a deferred CUDA step, whose time arrives at `flush`)."""

    seconds: float
    joules: float | None
    probed: bool
    step_seconds: float = 0.0


def _read_hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Meter:
    """Wraps every step of one cell; `report()` gives the record's measurement section."""

    def __init__(self, device: torch.device, model: torch.nn.Module, method: Any, config: MeterConfig,
                 defer_timing: bool = False) -> None:
        self.device, self.model, self.method, self.config = device, model, method, config
        self.energy = EnergyMeter(device)
        # CUDA events read at `flush` instead of a host sync per step (module docstring)
        self.deferred = defer_timing and device.type == "cuda" and not self.energy.per_step
        self._pending: list[tuple[Any, Any, str]] = []  # (start, end) CUDA events and kind of steps not yet read
        self.clock = StepClock()
        self.sampler = Sampler(self.energy, self.clock) if config.sampling else None
        self.step_seconds: list[float] = []  # un-probed steps' seconds
        self._kind_seconds: dict[str, list[float]] = {}  # the same, per step kind (what probes are charged from)
        self.probe_seconds: list[float] = []  # probe steps' own seconds, the counter's slowdown included
        self.probe_charged: list[float] = []  # what each settled probe step was charged (module docstring)
        self._unsettled: dict[str, list[float]] = {}  # own seconds of probes awaiting an un-probed step of their kind
        self._probe_setup_seconds = 0.0  # counting modes set up and read, outside the timed steps
        self.kind_counts: Counter[str] = Counter()
        self.flops_per_kind: dict[str, int] = {}
        self.expected: str | None = None  # the kind the caller announced for the next step
        self.ledger: dict[str, int] = {}
        self._hwm_reset = False

    def __enter__(self) -> Meter:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._hwm_reset = _reset_hwm()
        if self.sampler is not None:
            self.sampler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.sampler is not None:
            self.sampler.stop()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def expect(self, kind: str) -> None:
        """The next step will be of `kind`: probe it if that kind never was (its FLOPs are then known)."""
        self.expected = kind

    def _wants_probe(self) -> bool:
        steps = sum(self.kind_counts.values())
        expected, self.expected = self.expected, None
        return (steps < self.config.probe_steps or (expected is not None and expected not in self.flops_per_kind)
                or any(k not in self.flops_per_kind for k in self.kind_counts))

    def step(self, run_step: Callable[[], StepStats]) -> tuple[StepStats, StepCost]:
        """Run one step under the clock (and a probe when one is due). With deferred timing
        the returned seconds are 0 and the step's time arrives at the next `flush`."""
        probe = self._wants_probe()
        if self.deferred and not probe:
            return self._deferred_step(run_step)
        outer = time.perf_counter()
        with ExitStack() as stack:
            if probe:
                flops = stack.enter_context(FlopCounterMode(display=False))
                saved = stack.enter_context(SavedTensorLedger(self.model.parameters()))
            self._sync()
            self.energy.before_step()
            start = time.perf_counter()
            self.clock.start(start)
            stats = run_step()
            self._sync()
            end = time.perf_counter()
            self.clock.stop(end)
            seconds = end - start
            joules = self.energy.after_step()
        self.kind_counts[stats.kind] += 1
        if probe:
            self.probe_seconds.append(seconds)
            self._unsettled.setdefault(stats.kind, []).append(seconds)
            self.flops_per_kind.setdefault(stats.kind, flops.get_total_flops())
            self._update_ledger(saved)
            self._probe_setup_seconds += time.perf_counter() - outer - seconds  # counting modes set up, read
            return stats, StepCost(0.0, joules, True, seconds)
        self._add_step_seconds(stats.kind, seconds)
        return stats, StepCost(seconds + self._settle(stats.kind), joules, False, seconds)

    def _deferred_step(self, run_step: Callable[[], StepStats]) -> tuple[StepStats, StepCost]:
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self.clock.start(time.perf_counter())  # host-side interval: what NVML energy is attributed by
        begin.record()
        stats = run_step()
        end.record()
        self.clock.stop(time.perf_counter())
        self._pending.append((begin, end, stats.kind))
        self.kind_counts[stats.kind] += 1
        return stats, StepCost(0.0, None, False)

    def _add_step_seconds(self, kind: str, seconds: float) -> None:
        self.step_seconds.append(seconds)
        self._kind_seconds.setdefault(kind, []).append(seconds)

    def _settle(self, kind: str) -> float:
        """Charge the probes of `kind` still waiting the median of that kind's un-probed steps
        (capped at each probe's own time): the seconds added to the budget now."""
        waiting = self._unsettled.pop(kind, [])
        if not waiting:
            return 0.0
        typical = statistics.median(self._kind_seconds[kind])
        charges = [min(own, typical) for own in waiting]
        self.probe_charged.extend(charges)
        return sum(charges)

    def flush(self, settle: bool = False) -> float:
        """Read the deferred steps' CUDA events (one wait for the last of them): the seconds
        they add to the budget, probes they settle included. Called at evaluation boundaries
        and by `report`; 0.0 when nothing waits. `settle` (the end of a loop): a probe whose
        kind never ran un-probed is charged its own time, the only time known for it."""
        added = 0.0
        if self._pending:
            self._pending[-1][1].synchronize()
            for begin, end, kind in self._pending:
                seconds = begin.elapsed_time(end) / 1e3
                self._add_step_seconds(kind, seconds)
                added += seconds
            self._pending.clear()
            added += sum(self._settle(kind) for kind in list(self._unsettled) if kind in self._kind_seconds)
        if settle:
            for own in self._unsettled.values():
                self.probe_charged.extend(own)
                added += sum(own)
            self._unsettled.clear()
        return added

    @property
    def probe_overhead_seconds(self) -> float:
        """Seconds the probes cost beyond their charge: the counters' set-up and reading, and the
        probe steps' own time above what they were charged (unsettled probes: all of it)."""
        return self._probe_setup_seconds + sum(self.probe_seconds) - sum(self.probe_charged)

    def train_seconds(self) -> float:
        """Seconds charged to training so far: un-probed steps plus the settled probes' charges."""
        return sum(self.step_seconds) + sum(self.probe_charged)

    def _update_ledger(self, saved: SavedTensorLedger) -> None:
        params, grads = model_bytes(self.model)
        current = {"parameters": params, "gradients": grads, **saved.peak,
                   **declared_bytes(self.method.memory_buffers())}
        for key, value in current.items():
            self.ledger[key] = max(self.ledger.get(key, 0), value)

    def flops(self) -> float | None:
        """FLOPs spent so far (None while a kind of step has no probe yet)."""
        if any(k not in self.flops_per_kind for k in self.kind_counts):
            return None
        return float(sum(n * self.flops_per_kind[k] for k, n in self.kind_counts.items()))

    def joules(self) -> float | None:
        """Joules inside steps so far (NVML: up to one sampling interval behind)."""
        if not self.energy.available:
            return None
        if self.energy.per_step:
            return self.energy.joules
        return self.sampler.step_joules if self.sampler is not None else None

    def _loop_joules(self) -> float | None:
        if self.energy.per_step or not self.energy.available:
            return None  # RAPL is read around steps only
        return self.sampler.loop_joules if self.sampler is not None else None

    def report(self) -> dict[str, Any]:
        """The measurement section. It settles what is still open (`flush(settle=True)`): a loop
        that keeps its own seconds counter calls that itself first, to be charged the same."""
        self.flush(settle=True)
        times = self.step_seconds or self.probe_seconds
        unprobed = [k for k in self.kind_counts if k not in self.flops_per_kind]
        return {
            "time": {
                "train_seconds": self.train_seconds(),
                "median_step_seconds": statistics.median(times) if times else None,
                "median_from": "unprobed steps" if self.step_seconds else "probe steps (no other step ran)",
                "probe_steps": len(self.probe_seconds),
                "probe_seconds": sum(self.probe_seconds),
            },
            "ledger": {"bytes": dict(self.ledger), "total_bytes": sum(self.ledger.values()),
                       "rule": "sum of categories at their own peaks over probed steps"},
            "measured": self._measured(),
            "energy": self._energy_report(),
            "flops": {
                "per_step": dict(self.flops_per_kind),
                "steps_per_kind": dict(self.kind_counts),
                "total": self.flops(),
                "reason": f"step kinds never probed: {unprobed}" if unprobed else None,
            },
        }

    def _measured(self) -> dict[str, Any]:
        cuda = self.device.type == "cuda"
        hwm = _read_hwm()
        return {
            "cuda_max_allocated_bytes": torch.cuda.max_memory_allocated(self.device) if cuda else None,
            "cuda_max_reserved_bytes": torch.cuda.max_memory_reserved(self.device) if cuda else None,
            "nvml_device_used_peak_bytes": self.sampler.peak_device_used if self.sampler else None,
            "process_peak_rss_bytes": hwm,
            "process_peak_rss_scope": "cell" if self._hwm_reset else "process lifetime (clear_refs refused)",
            "why_null": None if cuda else "cuda and NVML figures exist only for cells on a GPU",
        }

    def _energy_report(self) -> dict[str, Any]:
        joules = self.joules()
        seconds = sum(self.step_seconds) + sum(self.probe_seconds)
        reason = self.energy.reason
        if self.energy.available and joules is None:
            reason = "meter.sampling=false: NVML energy is read by the sampler thread only"
        return {
            "joules": joules,
            "source": self.energy.source,
            "reason": reason,
            "attribution": ("read around each step" if self.energy.per_step else
                            "each sampling interval's energy times its share of time inside steps"
                            + (" (host-side step intervals: steps are timed by CUDA events without a sync)"
                               if self.deferred else "")),
            "window_seconds": seconds,
            "loop_joules": self._loop_joules(),  # steps and everything between them (evaluation, data)
            # NVML's counter and power readings update every ~20-100 ms: shorter windows are noise.
            "window_too_short": (seconds < 1.0) if joules is not None else None,
        }
