"""The meter: the ledger matches hand computations, FLOPs are counted, energy is never a made-up 0."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from harness import budget as budgets
from harness import energy as energy_mod
from harness.config import ConfigError, resolve
from harness.energy import EnergyMeter, Sampler, StepClock
from harness.interface import Batch, SetupContext, StepStats
from harness.loops.common import TrainLoop
from harness.meter import Meter, MeterConfig
from harness.plan import plan
from harness.runner import run_cell
from methods.backprop import Backprop, BackpropConfig
from suites.tasks.image_classification import FashionMNISTTask, ImageTaskConfig
from suites.tasks.vision_models import MLPConfig, ViTConfig, build_mlp, build_vit

BATCH = 128
FLOAT = 4


def _probe(model: torch.nn.Module, inputs: torch.Tensor, **config) -> dict:
    """Ledger and FLOPs of backprop's first two steps on `model`."""
    task = FashionMNISTTask(ImageTaskConfig())
    method = Backprop()
    method.setup(SetupContext(model=model, task=task, config=BackpropConfig(**config), device=torch.device("cpu"),
                              generator=torch.Generator().manual_seed(0), budget_fraction=lambda: 0.5))
    batch = Batch(inputs, torch.randint(0, 10, (inputs.shape[0],), generator=torch.Generator().manual_seed(1)))
    with Meter(torch.device("cpu"), model, method, MeterConfig(probe_steps=2)) as meter:
        for _ in range(2):  # AdamW creates its state in the first step: the second sees it
            meter.step(lambda: method.step(batch))
    return meter.report()


def _mlp() -> tuple[torch.nn.Module, torch.Tensor]:
    model = build_mlp(MLPConfig(hidden=(256, 256)), (1, 28, 28), 10, torch.Generator().manual_seed(0))
    return model, torch.randn(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(2))


def test_backprop_adamw_ledger_matches_hand_computation() -> None:
    model, inputs = _mlp()
    ledger = _probe(model, inputs)["ledger"]["bytes"]
    n_params = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    hand = {
        "parameters": n_params * FLOAT,
        "gradients": n_params * FLOAT,
        "optimizer_state": 2 * n_params * FLOAT,  # AdamW: first and second moments
        # saved for backward: the input, both ReLU outputs (each also the next Linear's input),
        # the log-softmax output and the int64 targets
        "saved_activations": (BATCH * 784 + 2 * BATCH * 256 + BATCH * 10) * FLOAT + BATCH * 8,
    }
    for key, expected in hand.items():
        assert ledger[key] == pytest.approx(expected, rel=0.05), key
    assert sum(ledger.values()) == pytest.approx(sum(hand.values()), rel=0.05)


def test_activation_checkpointing_shrinks_the_ledger() -> None:
    def saved(checkpoint: bool) -> int:
        model = build_vit(ViTConfig(patch_size=7, dim=32, depth=3, heads=2), (1, 28, 28), 10,
                          torch.Generator().manual_seed(0))
        inputs = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(2))
        return _probe(model, inputs, checkpoint=checkpoint)["ledger"]["bytes"]["saved_activations"]

    assert saved(checkpoint=True) < 0.6 * saved(checkpoint=False)


def test_bf16_autocast_roughly_halves_saved_activations() -> None:
    model, inputs = _mlp()
    full = _probe(model, inputs)["ledger"]["bytes"]
    model, inputs = _mlp()
    half = _probe(model, inputs, bf16=True)["ledger"]["bytes"]
    assert half["saved_activations"] / full["saved_activations"] == pytest.approx(0.5, rel=0.15)
    assert half["autocast_weight_copies"] > 0  # the bf16 weight copies are real memory, counted apart


def test_backprop_step_flops_match_hand_computation() -> None:
    model, inputs = _mlp()
    forward = 2 * BATCH * (784 * 256 + 256 * 256 + 256 * 10)
    # backward computes weight and input gradients (2 forwards' worth), except that the
    # first layer's input needs no gradient
    hand = forward + 2 * forward - 2 * BATCH * 784 * 256
    assert _probe(model, inputs)["flops"]["per_step"]["update"] == pytest.approx(hand, rel=0.01)


def test_cpu_attention_is_not_counted_as_free() -> None:
    q = k = v = torch.randn(2, 4, 16, 8)
    with FlopCounterMode(display=False) as counter:
        F.scaled_dot_product_attention(q, k, v)
    assert counter.get_total_flops() == 2 * (2 * 2 * 4 * 16 * 16 * 8)


def test_in_place_gemms_are_not_counted_as_free() -> None:
    """A weight update written as w.addmm_(u, x) or a batched baddbmm_ costs what its
    out-of-place twin costs: torch's counter alone says 0."""
    a, b = torch.randn(4, 5), torch.randn(5, 6)
    with FlopCounterMode(display=False) as counter:
        torch.zeros(4, 6).addmm_(a, b)
        torch.zeros(3, 4, 6).baddbmm_(torch.randn(3, 4, 5), torch.randn(3, 5, 6))
    assert counter.get_total_flops() == 2 * 4 * 5 * 6 + 3 * 2 * 4 * 5 * 6


def test_cpu_cell_records_null_energy_with_a_reason(tiny_suite) -> None:
    (cell,) = plan(resolve([f"suite={tiny_suite(steps=20, eval_every=10)}"]))
    record = run_cell(cell)
    assert record["status"] == "completed"
    assert record["energy"]["joules"] is None and record["energy"]["reason"]
    assert record["counters"]["joules"] is None
    assert record["memory"]["measured"]["process_peak_rss_bytes"] > 0
    assert record["memory"]["measured"]["cuda_max_allocated_bytes"] is None
    assert record["flops"]["total"] == pytest.approx(record["flops"]["per_step"]["update"] * 20)
    assert record["timing"]["probe_steps"] == 1 and record["timing"]["median_step_seconds"] > 0


def test_joules_budget_is_refused_without_an_energy_counter(tiny_suite, monkeypatch) -> None:
    monkeypatch.setattr(energy_mod, "POWERCAP", Path("/nonexistent"))
    with pytest.raises(ConfigError, match="budget.joules needs measured energy"):
        plan(resolve([f"suite={tiny_suite()}", "budget.joules=100"]))


def test_flops_budget_stops_when_the_counted_flops_are_spent(tiny_suite) -> None:
    (probe_cell,) = plan(resolve([f"suite={tiny_suite(steps=1, eval_every=1)}"]))
    per_step = run_cell(probe_cell)["flops"]["per_step"]["update"]
    (cell,) = plan(resolve([f"suite={tiny_suite(eval_every=100)}", f"budget.flops={per_step * 7.5}"]))
    record = run_cell(cell)
    assert record["counters"]["steps"] == 8


class _RecordedNVML:
    """Replays NVML readings recorded from a GPU: the energy counter in mJ, power in mW."""

    class NVMLError(Exception):
        pass

    def __init__(self, energy_mj: list[int]) -> None:
        self.energy_mj = iter(energy_mj)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle) -> int:
        return next(self.energy_mj)

    def nvmlDeviceGetPowerUsage(self, handle) -> int:
        return 300_000

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=5 * 2**30)


def test_nvml_energy_is_split_by_the_share_of_time_inside_steps(monkeypatch) -> None:
    """Each sampling interval's counter delta goes to the steps in proportion to the time in them."""
    nvml = _RecordedNVML([0, 0, 1_000_000, 3_000_000, 3_400_000])  # mJ: detection, start, three samples
    meter = EnergyMeter(torch.device("cpu"), _nvml=nvml, _handle=object())
    assert meter.source == "nvml_energy_counter" and not meter.per_step
    meter.before_step()
    assert meter.after_step() is None  # NVML is never read around a step: too slow, too coarse
    clock = StepClock()
    wall = iter([1.0, 2.0, 3.0])  # the three samples; the start reading is set by hand below
    monkeypatch.setattr(energy_mod.time, "perf_counter", lambda: next(wall))
    sampler = Sampler(meter, clock)
    sampler._last = (0.0, 0.0, nvml.nvmlDeviceGetTotalEnergyConsumption(None) / 1000)  # what start() reads
    clock.start(0.0), clock.stop(0.5)  # half of the first second inside a step
    sampler.sample()  # +1000 J over [0, 1]: 500 J to steps
    clock.start(1.0), clock.stop(2.0)  # all of the second
    sampler.sample()  # +2000 J over [1, 2]: all of it
    sampler.sample()  # +400 J over [2, 3], no step: none of it
    assert sampler.step_joules == pytest.approx(2500.0)
    assert sampler.loop_joules == pytest.approx(3400.0)


def test_step_clock_counts_a_step_in_progress() -> None:
    clock = StepClock()
    clock.start(1.0), clock.stop(1.5), clock.start(2.0)
    assert clock.total(2.25) == pytest.approx(0.75)


def test_rapl_counter_handles_wrap_around(tmp_path: Path, monkeypatch) -> None:
    domain = tmp_path / "intel-rapl:0"
    domain.mkdir()
    (domain / "max_energy_range_uj").write_text("1000000\n")
    (domain / "energy_uj").write_text("999000\n")
    monkeypatch.setattr(energy_mod, "POWERCAP", tmp_path)
    meter = EnergyMeter(torch.device("cpu"))
    assert meter.source == "rapl"
    meter.before_step()
    (domain / "energy_uj").write_text("1000\n")  # wrapped past the range
    assert meter.after_step() == pytest.approx(0.002)


def test_no_counter_means_null_not_zero(monkeypatch) -> None:
    monkeypatch.setattr(energy_mod, "POWERCAP", Path("/nonexistent"))
    meter = EnergyMeter(torch.device("cpu"))
    meter.before_step()
    assert meter.after_step() is None and not meter.available
    assert "no energy counter" in meter.reason


def _steps_under(device: torch.device, defer: bool, steps: int = 6) -> tuple[Meter, list[float]]:
    model = build_mlp(MLPConfig(hidden=(64,)), (1, 28, 28), 10, torch.Generator().manual_seed(0)).to(device)
    task = FashionMNISTTask(ImageTaskConfig())
    method = Backprop()
    method.setup(SetupContext(model=model, task=task, config=BackpropConfig(), device=device,
                              generator=torch.Generator().manual_seed(0), budget_fraction=lambda: 0.5))
    batch = Batch(torch.randn(32, 1, 28, 28).to(device), torch.randint(0, 10, (32,)).to(device))
    meter = Meter(device, model, method, MeterConfig(probe_steps=1, sampling=False), defer_timing=defer)
    with meter:
        costs = [meter.step(lambda: method.step(batch))[1].seconds for _ in range(steps)]
    return meter, costs


def test_cpu_steps_are_timed_as_they_run_even_when_deferral_is_asked() -> None:
    meter, costs = _steps_under(torch.device("cpu"), defer=True)
    # the probe (the first step) is charged by the step that settles it (test below)
    assert not meter.deferred and costs[0] == 0.0 and all(c > 0 for c in costs[1:])
    assert meter.flush() == 0.0
    assert meter.report()["time"]["train_seconds"] == pytest.approx(sum(costs))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-event timing needs a GPU")
def test_cuda_steps_are_timed_by_events_read_at_flush_without_a_sync_per_step(monkeypatch) -> None:
    syncs = []
    real = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: (syncs.append(1), real(*a, **k))[1])
    meter, costs = _steps_under(torch.device("cuda"), defer=True, steps=20)
    probe_syncs = len(syncs)  # the probe step (the first) still synchronises
    assert meter.deferred and costs == [0.0] * 20  # the probe too: its charge waits for the steps of its kind
    seconds = meter.flush()
    assert seconds > 0 and len(meter.step_seconds) == 19 and len(syncs) == probe_syncs
    report = meter.report()["time"]
    assert report["train_seconds"] == pytest.approx(seconds) and report["probe_seconds"] > 0
    synced, _ = _steps_under(torch.device("cuda"), defer=False, steps=20)
    assert not synced.deferred and len(syncs) > probe_syncs + 19  # the other path: a sync around every step


class _FakeClock:
    """`time.perf_counter` that moves only when a fake step says so: budget arithmetic without timing noise."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _TimedSteps:
    """A method whose steps take `seconds` each on the fake clock, except listed ones (by index)."""

    def __init__(self, clock: _FakeClock, seconds: float, slow: dict[int, tuple[float, str]] | None = None) -> None:
        self.clock, self.seconds, self.slow, self.index = clock, seconds, slow or {}, 0

    def step(self, batch: Batch) -> StepStats:
        took, kind = self.slow.get(self.index, (self.seconds, "update"))
        self.index += 1
        self.clock.now += took
        return StepStats(loss=1.0, examples=batch.size, forward_equivalents=1.0, kind=kind)

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs

    def memory_buffers(self) -> dict:
        return {}


class _NoTask:
    metric, higher_is_better = "loss", False

    def evaluate(self, predict, split, device) -> dict[str, float]:
        return {"loss": 0.0}

    def describe(self) -> dict:
        return {}


def _loop(monkeypatch, method: _TimedSteps, budget: budgets.Budget) -> dict:
    """Run TrainLoop (the loop every supervised cell runs) under the fake clock: the record's fields."""
    monkeypatch.setattr(time, "perf_counter", method.clock)
    model = torch.nn.Linear(1, 1)
    counters = budgets.Counters()
    cell = SimpleNamespace(device="cpu", eval_every=1000)
    batches = itertools.repeat(Batch(torch.zeros(2, 1), torch.zeros(2)))
    with Meter(torch.device("cpu"), model, method, MeterConfig(probe_steps=1, sampling=False)) as meter:
        loop = TrainLoop(cell, _NoTask(), method, meter, counters, budget, None)
        assert loop.run(batches, lambda: budgets.exhausted(budget, counters)) is None
    return loop.results()


def test_a_slow_probe_step_costs_a_seconds_budget_no_steps(monkeypatch) -> None:
    """The first step runs under the FLOP counter; its slowdown is the meter's. A method whose
    probe step takes 40 normal steps' time gets the same steps in a seconds budget as one
    whose probe is not slowed (within one), and every second is still accounted for."""
    budget = budgets.Budget("seconds", 1.0)
    plain = _loop(monkeypatch, _TimedSteps(_FakeClock(), 0.125), budget)
    slow = _loop(monkeypatch, _TimedSteps(_FakeClock(), 0.125, slow={0: (5.0, "update")}), budget)
    assert plain["counters"]["steps"] == 8
    assert abs(slow["counters"]["steps"] - plain["counters"]["steps"]) <= 1
    timing = slow["timing"]
    assert slow["counters"]["seconds"] == pytest.approx(timing["train_seconds"]) == pytest.approx(1.0)
    assert timing["probe_seconds"] == pytest.approx(5.0)  # the probe's own time stays in the record
    assert timing["phase_seconds"]["probe"] == pytest.approx(5.0 - 0.125)  # beyond its charge: one normal step
    assert timing["cell_seconds"] == pytest.approx(8 * 0.125 + 5.0 - 0.125)


def test_a_probe_whose_kind_never_recurs_is_charged_its_own_time(monkeypatch) -> None:
    """No un-probed step of its kind ever runs: its own (slowed) time is the only time known."""
    method = _TimedSteps(_FakeClock(), 0.125, slow={0: (2.0, "consolidate")})
    record = _loop(monkeypatch, method, budgets.Budget("steps", 5))
    # step 1 (consolidate) probed; step 2 is the first "update", run unprobed, so step 3 is its probe,
    # settled by step 4 at 0.125; the consolidation is charged its 2.0 at the loop's end
    assert record["counters"]["seconds"] == pytest.approx(2.0 + 4 * 0.125)
    assert record["timing"]["train_seconds"] == pytest.approx(record["counters"]["seconds"])
    assert record["timing"]["phase_seconds"]["probe"] == pytest.approx(0.0)
    assert record["flops"]["steps_per_kind"] == {"consolidate": 1, "update": 4}
