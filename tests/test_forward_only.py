"""Forward-only learns digits with no backward pass at all, keeps nothing for one, and its
local rules (not the head alone) make the difference."""

from __future__ import annotations

import pytest
import torch

from harness.config import ConfigError, resolve
from harness.interface import SetupContext
from harness.ledger import SavedTensorLedger
from harness.plan import plan
from harness.runner import run_cell
from methods.forward_only import ForwardOnly, ForwardOnlyConfig
from suites.tasks.image_classification import DigitsConfig, DigitsTask
from suites.tasks.vision_models import MLPConfig, ViTConfig


def _method(model: str, **config) -> tuple[ForwardOnly, DigitsTask]:
    task = DigitsTask(DigitsConfig(model=model, mlp=MLPConfig(hidden=(32, 32)),
                                   vit=ViTConfig(patch_size=4, dim=16, depth=2, heads=2)))
    method = ForwardOnly()
    method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(0)), task=task,
                              config=ForwardOnlyConfig(**config), device=torch.device("cpu"),
                              generator=torch.Generator().manual_seed(0), budget_fraction=lambda: 0.5))
    return method, task


@pytest.mark.parametrize("model", ["mlp", "vit"])
def test_a_step_needs_no_backward_and_saves_no_activation(model: str, monkeypatch) -> None:
    method, task = _method(model)
    before = {name: p.clone() for name, p in method.model.named_parameters()}

    def refuse(*args, **kwargs):
        raise AssertionError("forward_only called autograd")

    monkeypatch.setattr(torch.Tensor, "backward", refuse)
    monkeypatch.setattr(torch.autograd, "backward", refuse)
    monkeypatch.setattr(torch.autograd, "grad", refuse)
    batches = task.train_batches(32, torch.Generator().manual_seed(0))
    with SavedTensorLedger(method.model.parameters()) as ledger:
        losses = [method.step(next(batches)).loss for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(loss)) for loss in losses)
    assert ledger.peak["saved_activations"] == 0
    changed = {name for name, p in method.model.named_parameters() if not torch.equal(p, before[name])}
    names = {p: name for name, p in method.model.named_parameters()}
    for k, (hebb, clapp, _) in enumerate(method.layers):  # every block's local layers moved
        assert {names[hebb.weight], names[clapp.weight]} <= changed, f"block {k}"
    assert {"head.weight", "head.bias"} <= changed or {"head.linear.weight", "head.linear.bias"} <= changed


@pytest.mark.parametrize("config", [{}, {"context_error": False}, {"hebbian_weight": 0.0},
                                    {"contrastive_weight": 0.0}])
@pytest.mark.parametrize("model", ["mlp", "vit"])
def test_declared_cost_is_the_counted_flops(model: str, config: dict) -> None:
    """forward_equivalents is the step's matrix-multiply FLOPs over the forward pass's, as the
    meter counts them (it once said 2 for every model: the predictors and the second outer
    product made the MLP's step 5.2 forwards, the token-mean rules made the ViT's 1.3)."""
    from torch.utils.flop_counter import FlopCounterMode

    method, task = _method(model, **config)
    batch = next(task.train_batches(32, torch.Generator().manual_seed(0)))
    with torch.no_grad(), FlopCounterMode(display=False) as forward:
        method.model(batch.inputs)
    with FlopCounterMode(display=False) as step:
        declared = method.step(batch).forward_equivalents
    assert step.get_total_flops() / forward.get_total_flops() == pytest.approx(declared, rel=1e-6)
    assert declared > 1  # a forward and the updates


def reference_apply_error(self, k, kept, error) -> None:
    """The first implementation's gradients of block k (weight-sized temporaries, then summed)."""
    from methods._local import hebbian_update

    hebb, clapp, relu = self.layers[k]
    a, o = kept["clapp"]
    delta, inputs = (error * (o > 0), a) if relu else (error, a.mean(1))
    cw, hw = self.cfg.contrastive_weight, self.cfg.hebbian_weight
    grads = {clapp.weight: cw * delta.T @ inputs, clapp.bias: cw * delta.sum(0)} if cw > 0 else {}
    if hw > 0:
        x, u = kept["hebb"]
        grads[hebb.weight] = grads.get(hebb.weight, 0) - hw * hebbian_update(hebb, x, u, "softhebb", 1.0)
    for p, g in grads.items():
        p.grad = g if p.grad is None else p.grad + g


@pytest.mark.parametrize("model", ["mlp", "vit"])
def test_gradients_accumulated_in_place_match_the_reference(model: str, monkeypatch) -> None:
    """Accumulation by GEMMs that add (addmm into .grad, the SoftHebb decay by addcmul_) gives the weights of
    the first implementation's temporaries, to float rounding (SGD: AdamW would turn rounding in a
    zero gradient into lr-sized steps)."""
    runs = []
    for apply in (None, reference_apply_error):
        method, task = _method(model, optimizer="sgd", lr=0.05, hebbian_weight=0.5)
        if apply is not None:
            monkeypatch.setattr(method, "_apply_error", apply.__get__(method))
        batches = task.train_batches(32, torch.Generator().manual_seed(0))
        runs.append(([method.step(next(batches)).loss for _ in range(3)], method))
    (fast_losses, fast), (ref_losses, ref) = runs
    assert fast_losses == pytest.approx(ref_losses, rel=1e-5)
    start, _ = _method(model)
    for a, b, s in zip(fast.model.parameters(), ref.model.parameters(), start.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert any((a - s).abs().max() > 1e-3 for a, s in zip(fast.model.parameters(), start.model.parameters()))


def test_learns_digits_and_the_local_rules_beat_the_head_alone(tiny_suite) -> None:
    """Chance is 0.1; the head alone on the same (then untrained) blocks learns less."""
    def accuracy(*overrides: str) -> float:
        (cell,) = plan(resolve([f"suite={tiny_suite(steps=200, eval_every=200)}", "method=forward_only",
                                "tasks.mlp.mlp.hidden=[64,64]", *overrides]))
        record = run_cell(cell)
        assert record["status"] == "completed", record.get("traceback")
        return record["final"]["test"]["accuracy"]

    local = accuracy()
    head_only = accuracy("method.contrastive_weight=0", "method.hebbian_weight=0")
    print(f"forward_only digits MLP 64x64, 200 steps: local rules {local:.3f}, head alone {head_only:.3f}")
    assert local >= 0.85, local
    assert local >= head_only + 0.1, (local, head_only)


def test_bad_config_names_the_key(tiny_suite) -> None:
    with pytest.raises(ConfigError, match="margin"):
        resolve([f"suite={tiny_suite()}", "method=forward_only", "method.margin=0"])
    with pytest.raises(ConfigError, match="hebbian_weight"):
        resolve([f"suite={tiny_suite()}", "method=forward_only", "method.hebbian_weight=-1"])
