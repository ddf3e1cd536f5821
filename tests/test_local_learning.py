"""Local learning learns, never back-propagates between blocks, and holds one block's
activations at a time: its activation memory stays flat with depth where backprop's grows."""

from __future__ import annotations

import pytest
import torch

from harness.config import ConfigError, resolve
from harness.interface import Batch, SetupContext
from harness.meter import Meter, MeterConfig
from harness.plan import plan
from harness.registry import get_method
from harness.runner import run_cell
from methods._local import hebbian_update
from methods.local_learning import LocalLearning, LocalLearningConfig
from suites.tasks.image_classification import DigitsConfig, DigitsTask, FashionMNISTTask, ImageTaskConfig
from suites.tasks.vision_models import MLPConfig, ViTConfig


def _method(task, **config) -> LocalLearning:
    model = task.build_model(torch.Generator().manual_seed(0))
    method = LocalLearning()
    method.setup(SetupContext(model=model, task=task, config=LocalLearningConfig(**config),
                              device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                              budget_fraction=lambda: 0.5))
    return method


def test_local_learning_learns_digits(tiny_suite) -> None:
    (cell,) = plan(resolve([f"suite={tiny_suite(steps=150, eval_every=50)}", "method=local_learning",
                            "method.lr=0.01"]))
    record = run_cell(cell)
    assert record["status"] == "completed", record.get("traceback")
    assert record["final"]["test"]["accuracy"] > 0.9  # chance is 0.1
    assert record["memory"]["ledger"]["bytes"]["aux_heads"] == 2 * (64 * 10 + 10) * 4  # weights and gradients


@pytest.mark.parametrize("config", [{}, {"sim_weight": 0.5, "next_weight": 1.0}, {"hebbian": "softhebb"}])
@pytest.mark.parametrize("model", ["mlp", "vit"])
def test_no_gradient_crosses_a_block(model: str, config: dict) -> None:
    """A block's update is the same whatever the blocks above it, their heads and the final
    head are: no gradient from downstream reaches it. (With next_weight, block 1's output
    is block 0's regression target, a detached value: block 1 is left as it is then.)"""
    task = DigitsTask(DigitsConfig(model=model, mlp=MLPConfig(hidden=(32, 32, 32)),
                                   vit=ViTConfig(patch_size=4, dim=16, depth=3, heads=2)))
    batch = next(task.train_batches(32, torch.Generator().manual_seed(0)))
    plain, changed = _method(task, **config), _method(task, **config)
    first_scrambled = 2 if config.get("next_weight") else 1
    with torch.no_grad():  # scramble what lies above block 0
        for module in [*changed.model.blocks[first_scrambled:], *changed.aux[1:], *changed.predictors[1:], changed.model.head]:
            for p in module.parameters():
                p.mul_(-3.0).add_(0.5)
    plain.step(batch)
    changed.step(batch)
    below = [*plain.model.stem.parameters(), *plain.model.blocks[0].parameters(), *plain.aux[0].parameters()]
    below_changed = [*changed.model.stem.parameters(), *changed.model.blocks[0].parameters(),
                     *changed.aux[0].parameters()]
    for p, q in zip(below, below_changed):
        assert torch.equal(p.grad, q.grad)
    above, above_changed = next(plain.model.blocks[2].parameters()), next(changed.model.blocks[2].parameters())
    assert not torch.equal(above.grad, above_changed.grad)  # the scramble did change what it touched


def _ledger(method_name: str, depth: int) -> dict[str, int]:
    """Ledger of the second probed step (AdamW's state exists by then) on a Fashion-MNIST-shaped ViT."""
    task = FashionMNISTTask(ImageTaskConfig(model="vit", vit=ViTConfig(patch_size=7, dim=64, depth=depth, heads=4)))
    model = task.build_model(torch.Generator().manual_seed(0))
    cls = get_method(method_name)
    method = cls()
    method.setup(SetupContext(model=model, task=task, config=cls.Config(), device=torch.device("cpu"),
                              generator=torch.Generator().manual_seed(0), budget_fraction=lambda: 0.5))
    generator = torch.Generator().manual_seed(1)
    batch = Batch(torch.randn(128, 1, 28, 28, generator=generator), torch.randint(0, 10, (128,), generator=generator))
    with Meter(torch.device("cpu"), model, method, MeterConfig(probe_steps=2, sampling=False)) as meter:
        for _ in range(2):
            meter.step(lambda: method.step(batch))
    return meter.report()["ledger"]


def test_activation_memory_is_flat_in_depth_unlike_backprop(monkeypatch) -> None:
    monkeypatch.setattr(FashionMNISTTask, "describe", lambda self: {"num_classes": 10, "input_shape": (1, 28, 28)})
    local = {d: _ledger("local_learning", d)["bytes"]["saved_activations"] for d in (2, 8)}
    backprop = {d: _ledger("backprop", d)["bytes"]["saved_activations"] for d in (2, 8)}
    assert local[8] <= 1.5 * local[2], local
    assert backprop[8] >= 2.5 * backprop[2], backprop
    assert local[8] < backprop[8] / 3


def test_hebbian_rules_do_what_the_papers_say() -> None:
    """Oja's subspace rule makes the rows orthonormal (W W^T -> I); SoftHebb drives every
    neuron's weight vector to unit norm (Journé et al. 2023, their eq. 2 and appendix)."""
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(2000, 8, generator=generator) * torch.linspace(0.5, 2.0, 8)
    for rule in ("oja", "softhebb"):
        layer = torch.nn.Linear(8, 4, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(4, 8, generator=generator) * 0.3)
            for i in range(0, 2000 * 5, 100):
                x = data[i % 2000:i % 2000 + 100]
                layer.weight.add_(0.05 * hebbian_update(layer, x, layer(x), rule, tau=1.0))
        w = layer.weight
        if rule == "oja":
            assert torch.allclose(w @ w.T, torch.eye(4), atol=0.1), w @ w.T
        else:
            assert torch.allclose(w.norm(dim=1), torch.ones(4), atol=0.1), w.norm(dim=1)


def test_bad_config_names_the_key(tiny_suite) -> None:
    with pytest.raises(ConfigError, match="sim_weight"):
        resolve([f"suite={tiny_suite()}", "method=local_learning", "method.sim_weight=2"])
    with pytest.raises(ConfigError, match="hebbian"):
        resolve([f"suite={tiny_suite()}", "method=local_learning", "method.hebbian=hopfield"])
