"""MeZO: it learns with forward passes only, keeps no gradients, and needs inference's memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from harness.config import resolve
from harness.interface import Batch, SetupContext, StepStats
from harness.plan import plan
from harness.runner import build_task, run_cell
from harness.loops.memory_only import measure
from methods.zeroth_order import ZerothOrder, ZerothOrderConfig
from suites.tasks.language_models import DecoderConfig
from suites.tasks.synthetic_lm import SyntheticLMConfig, SyntheticLMTask


def lm_suite(tmp_path: Path, method: str, steps: int = 2, **options) -> str:
    """A small synthetic-LM suite file (decoder dim 64, vocab 256, 16 x 64 tokens per batch)."""
    suite = {"tasks": {"lm": {"task": "synthetic_lm", "vocab_size": 256, "seq_len": 64, "n_train": 64,
                              "decoder": {"dim": 64, "depth": 2, "heads": 4, "kv_heads": 2, "context": 64}}},
             "method": method, "method_options": {method: options}, "seeds": 1, "budget": {"steps": steps},
             "batch_size": 16, "eval_every": steps, "device": "cpu", "threads": 1}
    path = tmp_path / f"lm-{method}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return str(path)


def test_mezo_learns_digits_from_forward_passes(tiny_suite) -> None:
    (cell,) = plan(resolve([f"suite={tiny_suite(steps=200, eval_every=100)}", "method=zeroth_order",
                            "method.n=4", "method.lr=5e-3"]))
    record = run_cell(cell)
    assert record["status"] == "completed", record.get("traceback")
    assert record["final"]["test"]["accuracy"] >= 0.5  # chance is 0.1
    assert record["counters"]["forward_equivalents"] == 200 * 2 * 4  # 2n per step
    assert record["memory"]["ledger"]["bytes"]["gradients"] == 0
    assert record["memory"]["ledger"]["bytes"]["saved_activations"] == 0


def test_mezo_lowers_a_language_models_loss() -> None:
    task = SyntheticLMTask(SyntheticLMConfig(vocab_size=32, seq_len=16, n_train=64,
                                             decoder=DecoderConfig(dim=32, depth=1, heads=2, context=16)))
    method = ZerothOrder()
    method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(0)), task=task,
                              config=ZerothOrderConfig(lr=1e-2, n=4), device=torch.device("cpu"),
                              generator=torch.Generator().manual_seed(0), budget_fraction=lambda: 0.0))
    start = task.evaluate(method.predict, "val", torch.device("cpu"))["loss"]
    batches = task.train_batches(32, torch.Generator().manual_seed(0))
    for _ in range(100):
        method.step(next(batches))
    assert task.evaluate(method.predict, "val", torch.device("cpu"))["loss"] < start - 0.3  # from ~log(32)


def test_the_perturbation_is_replayed_exactly_and_leaves_no_state(tmp_path: Path) -> None:
    """+eps, -2eps, +eps restores the weights (float32) and nothing but the seeds is kept."""
    (cell,) = plan(resolve([f"suite={lm_suite(tmp_path, 'zeroth_order')}"]))
    task = build_task(cell)
    method = ZerothOrder()
    method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(0)), task=task,
                              config=ZerothOrderConfig(lr=1e-3), device=torch.device("cpu"),
                              generator=torch.Generator().manual_seed(0), budget_fraction=lambda: 0.0))
    before = [p.clone() for p in method.params]
    method._perturb(123, 1e-3)
    method._perturb(123, -2e-3)
    method._perturb(123, 1e-3)
    assert all(torch.allclose(a, p, atol=1e-7) for a, p in zip(before, method.params))
    batch = next(task.train_batches(16, torch.Generator().manual_seed(0)))
    stats = method.step(batch)
    assert isinstance(stats, StepStats) and stats.forward_equivalents == 2
    assert all(p.grad is None and not p.requires_grad for p in method.params)
    assert set(method.memory_buffers()) == {"perturbation_seeds"}
    # the update moved every parameter along the replayed noise: theta_new - theta = -lr*g*z
    moved = [p - a for a, p in zip(before, method.params)]
    assert all(m.abs().sum() > 0 for m in moved)


class _Inference:
    """Inference alone (a no-grad forward and the loss), the yardstick of MeZO's memory."""

    Config = ZerothOrderConfig

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.model = ctx, ctx.model.requires_grad_(False)

    @torch.no_grad()
    def step(self, batch: Batch) -> StepStats:
        loss = self.ctx.task.loss(self.model(batch.inputs).float(), batch)
        return StepStats(loss=float(loss), examples=batch.size, forward_equivalents=1)

    def memory_buffers(self) -> dict[str, Any]:
        return {}  # nothing kept besides the weights


def test_mezo_memory_is_within_ten_percent_of_inference(tmp_path: Path) -> None:
    """Ledger and (meta-device simulated) peak of MeZO vs a plain no-grad forward, same model and batch.

    On a GPU the same comparison holds for torch.cuda.max_memory_allocated (checked with
    `bench run suite=scale-1b device=cuda`); the meta peak stands in for it here.
    """
    (cell,) = plan(resolve([f"suite={lm_suite(tmp_path, 'zeroth_order')}"]))
    task = build_task(cell)
    mezo = measure(cell, task, ZerothOrder, ZerothOrderConfig(n=2), torch.device("meta"), 2)
    inference = measure(cell, task, _Inference, ZerothOrderConfig(), torch.device("meta"), 2)
    ledger, base = mezo["ledger"]["total_bytes"], inference["ledger"]["total_bytes"]
    assert base == sum(p.numel() * 4 for p in task.build_model(torch.Generator()).parameters())
    assert ledger <= 1.1 * base, (ledger, base)
    peak, base_peak = (r["measured"]["meta_simulated_peak_bytes"] for r in (mezo, inference))
    assert base < base_peak and peak <= 1.1 * base_peak, (peak, base_peak)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="eps"):
        ZerothOrderConfig(eps=0)
    with pytest.raises(ValueError, match="n must be"):
        ZerothOrderConfig(n=0)


def test_kept_noise_gives_the_replayed_steps_bit_for_bit_and_is_declared() -> None:
    """noise=keep draws each z once per step instead of four times: the same z, the same arithmetic."""
    task = SyntheticLMTask(SyntheticLMConfig(vocab_size=32, seq_len=16, n_train=64,
                                             decoder=DecoderConfig(dim=32, depth=1, heads=2, context=16)))
    methods = []
    for noise in ("replay", "keep"):
        method = ZerothOrder()
        method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(0)), task=task,
                                  config=ZerothOrderConfig(lr=1e-2, n=3, weight_decay=0.1, noise=noise),
                                  device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                                  budget_fraction=lambda: 0.0))
        batches = task.train_batches(8, torch.Generator().manual_seed(0))
        losses = [method.step(next(batches)).loss for _ in range(3)]
        methods.append((method, losses))
    (replay, replay_losses), (keep, keep_losses) = methods
    assert replay_losses == keep_losses
    assert all(torch.equal(a, b) for a, b in zip(replay.params, keep.params))
    kept = keep.memory_buffers()["kept_noise"]
    assert sum(z.numel() for z in kept) == 3 * sum(p.numel() for p in keep.params)  # n copies of z, declared
    with pytest.raises(ValueError, match="noise"):
        ZerothOrderConfig(noise="cache")


def test_steps_match_the_scale_then_add_reference(monkeypatch) -> None:
    """The one-pass perturbation (add_ with alpha) gives the weights of the first implementation,
    which scaled z into a temporary and then added it (two roundings), to float tolerance."""
    task = SyntheticLMTask(SyntheticLMConfig(vocab_size=32, seq_len=16, n_train=64,
                                             decoder=DecoderConfig(dim=32, depth=1, heads=2, context=16)))

    def reference(self, seed, scale, kept=None):
        for index, p in enumerate(self.params):
            z = self._draw(seed, index, p) if kept is None else kept[index].clone()
            p.add_(z.mul_(scale))

    runs = []
    for perturb in (None, reference):
        method = ZerothOrder()
        method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(0)), task=task,
                                  config=ZerothOrderConfig(lr=1e-2, n=3, weight_decay=0.1),
                                  device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                                  budget_fraction=lambda: 0.0))
        if perturb is not None:
            monkeypatch.setattr(method, "_perturb", perturb.__get__(method))
        batches = task.train_batches(8, torch.Generator().manual_seed(0))
        runs.append(([method.step(next(batches)).loss for _ in range(3)], method.params))
    (fast_losses, fast), (ref_losses, ref) = runs
    assert fast_losses == pytest.approx(ref_losses, rel=1e-5)
    # compared as updates: g = (L+ - L-) / 2eps moves by ~1e-4 per ulp of the loss (eps 1e-3),
    # so the estimator itself amplifies rounding; the updates must agree to 1e-3 of their size
    start = torch.cat([p.flatten() for p in task.build_model(torch.Generator().manual_seed(0)).parameters()])
    fast_update = torch.cat([p.flatten() for p in fast]) - start
    ref_update = torch.cat([p.flatten() for p in ref]) - start
    assert ref_update.norm() > 0.01
    assert (fast_update - ref_update).norm() < 1e-3 * ref_update.norm()
