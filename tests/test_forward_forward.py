"""Forward-forward: no gradient crosses a block, it learns digits, its options hold their promises."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.config import ConfigError, resolve
from harness.typed_config import build_dataclass
from harness.interface import SetupContext
from harness.plan import plan
from harness.runner import build_task, run_cell
from methods._labels import wrong_labels
from methods.forward_forward import ForwardForward, ForwardForwardConfig

VIT = ["tasks.mlp.model=vit", "tasks.mlp.vit.patch_size=4", "tasks.mlp.vit.dim=16", "tasks.mlp.vit.depth=3",
       "tasks.mlp.vit.heads=2"]


def _cell(tiny_suite, *overrides: str, steps: int = 12):
    args = [f"suite={tiny_suite(steps=steps, eval_every=steps)}", "method=forward_forward",
            "tasks.mlp.mlp.hidden=[32,32,32]", *overrides]
    (cell,) = plan(resolve(args))
    return cell


def _method(cell, seed: int = 0) -> tuple[ForwardForward, object]:
    task = build_task(cell)
    method = ForwardForward()
    method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(seed)), task=task,
                              config=cell.method.config, device=torch.device("cpu"),
                              generator=torch.Generator().manual_seed(seed), budget_fraction=lambda: 0.0))
    return method, task


def _batch(task, size: int = 32):
    return next(task.train_batches(size, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("model", ["mlp", "vit"])
def test_a_blocks_loss_leaves_the_blocks_below_untouched(model: str, tiny_suite) -> None:
    method, task = _method(_cell(tiny_suite, *(VIT if model == "vit" else [])))
    batch = _batch(task)
    labels = torch.cat([batch.targets, (batch.targets + 1) % 10])
    h = method.labels(method.model.stem(torch.cat([batch.inputs, batch.inputs])), labels)
    blocks = method.model.blocks
    _, h = method.local_loss(blocks[0], h, batch.size)
    loss1, _ = method.local_loss(blocks[1], h, batch.size)
    method.model.zero_grad(set_to_none=True)
    loss1.backward()
    below = [*method.model.stem.parameters(), *blocks[0].parameters(), *method.labels.parameters()]
    assert all(p.grad is None for p in below), "block 1's loss reached the stem, block 0 or the label embedding"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in blocks[1].parameters())
    assert all(p.grad is None for p in blocks[2].parameters())


@pytest.mark.parametrize("model", ["mlp", "vit"])
def test_a_step_updates_each_block_from_the_blocks_up_to_it_alone(model: str, tiny_suite) -> None:
    """Two copies that differ only in the last block: after one step, every block below
    it has made exactly the same update in both (its update never saw the last block)."""
    cell = _cell(tiny_suite, *(VIT if model == "vit" else []))
    method, task = _method(cell)
    other, before = copy.deepcopy(method), copy.deepcopy(method.model)
    with torch.no_grad():
        for p in other.model.blocks[-1].parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    batch = _batch(task)
    method.step(batch)
    other.step(batch)
    for name, p in method.model.named_parameters():
        if not name.startswith(f"blocks.{len(method.model.blocks) - 1}."):
            assert torch.equal(p, other.model.get_parameter(name)), f"{name} depends on the last block"
    for k in range(len(method.model.blocks)):
        moved = [not torch.equal(p, q) for p, q in zip(method.model.blocks[k].parameters(),
                                                       before.blocks[k].parameters())]
        assert any(moved), f"block {k} did not learn"


def test_learns_digits(tiny_suite) -> None:
    cell = _cell(tiny_suite, "tasks.mlp.mlp.hidden=[128,128]", "method.forward_forward.skip_first=false",
                 steps=300)
    record = run_cell(cell)
    assert record["status"] == "completed", record.get("traceback")
    assert record["final"]["test"]["accuracy"] > 0.8  # chance is 0.1; ~0.90 over seeds 0-2
    assert record["counters"]["forward_equivalents"] == 300 * 6


@pytest.mark.parametrize(("options", "forwards"), [
    (["method.forward_forward.predict=linear"], 7.0),
    (["method.forward_forward.negatives=hard"], 16.0),
    (["method.forward_forward.predict=linear", "method.forward_forward.negatives=hard"], 7.0),
])
def test_options_learn_and_count_their_extra_passes(options: list[str], forwards: float, tiny_suite) -> None:
    record = run_cell(_cell(tiny_suite, "tasks.mlp.mlp.hidden=[64,64]", "method.forward_forward.skip_first=false",
                            *options, steps=120))
    assert record["status"] == "completed", record.get("traceback")
    assert record["counters"]["forward_equivalents"] == 120 * forwards
    assert record["final"]["test"]["accuracy"] > 0.6


def test_predict_scores_every_label_without_learning(tiny_suite) -> None:
    method, task = _method(_cell(tiny_suite))
    inputs = _batch(task).inputs
    before = copy.deepcopy(method.model.state_dict())
    scores = method.predict(inputs)
    assert scores.shape == (len(inputs), 10) and torch.isfinite(scores).all()
    assert all(torch.equal(before[k], v) for k, v in method.model.state_dict().items())


@pytest.mark.parametrize("labels_per_forward", [10, 3, 1])
@pytest.mark.parametrize("model", ["mlp", "vit"])
def test_batched_label_sweep_equals_the_per_label_loop(model: str, labels_per_forward: int, tiny_suite,
                                                       monkeypatch) -> None:
    """Candidate labels batched into one forward (or groups), and the MLP's shared first layer, give
    each label's own goodness (to float rounding), hence the same predictions."""
    import methods.forward_forward as ff

    method, task = _method(_cell(tiny_suite, *(VIT if model == "vit" else [])))
    inputs = _batch(task).inputs
    stem_elements = method.model.stem(inputs).numel()
    monkeypatch.setattr(ff, "CPU_SWEEP_ELEMENTS", labels_per_forward * stem_elements)
    for _ in range(3):  # trained a little, so the labels' scores differ
        method.step(_batch(task, 64))
    method.model.eval()
    with torch.no_grad():
        stem_out = method.model.stem(inputs)
        loop = torch.stack([sum(method._goodness(method._block_outputs(stem_out, torch.full((len(inputs),), c))[k])
                                for k in method.scored) for c in range(10)], dim=1)
    batched = method.predict(inputs)
    assert torch.allclose(batched, loop, rtol=1e-5, atol=1e-4)
    assert torch.equal(batched.argmax(1), loop.argmax(1))
    # the MLP's sweep shares its first layer's label-free part across labels; the ViT's cannot
    assert (method._shared_first_layer(stem_out) is not None) == (model == "mlp")


def test_wrong_labels_are_wrong_and_hard_ones_follow_the_scores() -> None:
    labels = torch.arange(10).repeat(50)
    gen = torch.Generator().manual_seed(0)
    uniform = wrong_labels(labels, 10, gen)
    assert (uniform != labels).all() and set(uniform.tolist()) == set(range(10))
    scores = torch.zeros(len(labels), 10)
    scores[:, 3] = 20.0  # the model is sure it is a 3
    hard = wrong_labels(labels, 10, gen, scores)
    assert (hard != labels).all()
    assert (hard[labels != 3] == 3).all()  # the confusable label is the negative
    again = wrong_labels(labels, 10, torch.Generator().manual_seed(0))
    assert torch.equal(again, uniform), "negatives must come from the generator alone"


@pytest.mark.parametrize(("key", "value"), [("theta", 0.0), ("lr", -1.0), ("label_value", 0.0),
                                            ("momentum", 1.0), ("weight_decay", -0.1), ("negatives", "easy"),
                                            ("warmup", 1.0), ("schedule", "linear")])
def test_impossible_settings_name_their_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        build_dataclass(ForwardForwardConfig, {key: value}, "method.forward_forward")
