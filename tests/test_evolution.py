"""Evolution strategies (EGGROLL): the batched low-rank population is the population it claims to be,
its update follows the gradient, it learns, and in int8 mode no float copy of a weight ever exists."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import resolve
from harness.interface import SetupContext
from harness.plan import plan
from harness.runner import run_cell
from methods.evolution import Evolution, EvolutionConfig
from suites.tasks.image_classification import DigitsTask
from suites.tasks.language_models import DecoderConfig
from suites.tasks.synthetic_lm import SyntheticLMConfig, SyntheticLMTask
from suites.tasks.vision_models import MLPConfig, ViTConfig
from suites.tasks.image_classification import DigitsConfig


def _setup(task, config: EvolutionConfig, seed: int = 0) -> Evolution:
    method = Evolution()
    method.setup(SetupContext(model=task.build_model(torch.Generator().manual_seed(seed)), task=task, config=config,
                              device=torch.device("cpu"), generator=torch.Generator().manual_seed(seed),
                              budget_fraction=lambda: 0.0))
    return method


def _digits(hidden=(32,)) -> DigitsTask:
    return DigitsTask(DigitsConfig(mlp=MLPConfig(hidden=hidden)))


def _lm() -> SyntheticLMTask:
    return SyntheticLMTask(SyntheticLMConfig(vocab_size=32, seq_len=16, n_train=64,
                                             decoder=DecoderConfig(dim=32, depth=1, heads=2, context=16)))


def _explicit_losses(method: Evolution, model: nn.Module, batch) -> list[float]:
    """Each member's loss with its full-rank perturbed weights written into a plain copy of the model."""
    cfg, pairs = method.cfg, method.cfg.population // 2
    losses = []
    for member in range(cfg.population):
        clone = copy.deepcopy(model)
        layers = [m for m in clone.modules() if isinstance(m, (nn.Linear, nn.Embedding))]
        sign = 1.0 if member < pairs else -1.0
        for index, (layer, original) in enumerate(zip(layers, method.layers)):
            a, b, bias = method._factors(index, original)
            pair = member % pairs
            layer.weight.data += sign * cfg.sigma * (a[pair] @ b[pair].T) / math.sqrt(cfg.rank)
            if bias is not None:
                layer.bias.data += sign * cfg.sigma * bias[pair]
        with torch.no_grad():
            losses.append(float(method.ctx.task.loss(clone(batch.inputs), batch)))
    return losses


def _vit() -> DigitsTask:
    return DigitsTask(DigitsConfig(model="vit", vit=ViTConfig(patch_size=4, dim=16, depth=1, heads=2)))


@pytest.mark.parametrize(("make_task", "rank", "population"), [
    (_digits, 2, 6),  # Linear with biases
    (_lm, 1, 6),  # Embedding + bias-free Linear
    # the ViT's Linears see [members * N, tokens, width] activations: the in-place batched low-rank
    # term (bias noise folded in as one more rank) must be each member's own perturbation
    (_vit, 2, 4),
])
def test_batched_low_rank_population_equals_explicit_members(make_task, rank: int, population: int) -> None:
    task = make_task()
    method = _setup(task, EvolutionConfig(population=population, rank=rank, sigma=0.05))
    plain = copy.deepcopy(method.model)
    batch = next(task.train_batches(8, torch.Generator().manual_seed(1)))
    method._seed = 1234
    batched = method._population_losses(batch).tolist()
    explicit = _explicit_losses(method, plain, batch)
    assert torch.allclose(torch.tensor(batched), torch.tensor(explicit), atol=1e-4), (batched, explicit)


def test_chunked_evaluation_equals_one_batched_forward() -> None:
    task = _lm()
    batch = next(task.train_batches(8, torch.Generator().manual_seed(1)))
    whole, chunked = _setup(task, EvolutionConfig(population=6)), _setup(task, EvolutionConfig(population=6, chunk=4))
    whole._seed = chunked._seed = 7
    assert torch.allclose(whole._population_losses(batch), chunked._population_losses(batch), atol=1e-5)


def test_cpu_sized_chunks_give_the_whole_populations_losses(monkeypatch) -> None:
    """chunk 0 on a CPU splits the population so activations stay cache-sized; the losses (and
    the member each belongs to) are those of one forward of the whole population."""
    import methods.evolution as evolution

    task = _lm()
    batch = next(task.train_batches(8, torch.Generator().manual_seed(1)))
    monkeypatch.setattr(evolution, "CPU_FORWARD_ELEMENTS", 3 * 8 * 16 * 128)  # 3 members: 8 x 16 tokens x 128 (MLP)
    auto, whole = _setup(task, EvolutionConfig(population=8)), _setup(task, EvolutionConfig(population=8, chunk=8))
    auto._seed = whole._seed = 5
    losses = auto._population_losses(batch)
    assert auto._chunk(batch.size) == 3  # after the first forward (one member) measured the activations
    assert torch.allclose(losses, whole._population_losses(batch), atol=1e-5)


@pytest.mark.parametrize("make_task", [_lm, _vit])
def test_one_member_chunks_give_each_members_explicit_loss(make_task, monkeypatch) -> None:
    """The ViT's CPU chunks hold one member (x B is then one GEMM, and every layer's factors
    of the whole population are made once per step and sliced per chunk): each member's loss
    is still that of its own full-rank perturbed copy of the model."""
    import methods.evolution as evolution

    task = make_task()
    monkeypatch.setattr(evolution, "CPU_FORWARD_ELEMENTS", 1)  # one member per forward
    method = _setup(task, EvolutionConfig(population=6, rank=1, sigma=0.05))
    plain = copy.deepcopy(method.model)
    batch = next(task.train_batches(8, torch.Generator().manual_seed(1)))
    method._seed = 99
    drawn = []
    monkeypatch.setattr(method, "_factors", lambda *args, f=method._factors: drawn.append(args[0]) or f(*args))
    batched = method._population_losses(batch).tolist()
    assert method._chunk(batch.size) == 1 and sorted(drawn) == list(range(len(method.layers)))  # once per layer
    explicit = _explicit_losses(method, plain, batch)
    assert torch.allclose(torch.tensor(batched), torch.tensor(explicit), atol=1e-4), (batched, explicit)


def test_the_update_points_down_the_gradient() -> None:
    """With a large population the ES step has a clearly positive cosine with -grad of the batch loss."""
    task = _digits(hidden=(16,))
    method = _setup(task, EvolutionConfig(population=512, sigma=0.01, lr=1e-3))
    batch = next(task.train_batches(128, torch.Generator().manual_seed(1)))
    reference = copy.deepcopy(method.model).requires_grad_(True)
    F.cross_entropy(reference(batch.inputs), batch.targets).backward()
    before = [p.clone() for p in method.model.parameters()]
    method.step(batch)
    step = torch.cat([(p - b).flatten() for p, b in zip(method.model.parameters(), before)])
    gradient = torch.cat([p.grad.flatten() for p in reference.parameters()])
    assert F.cosine_similarity(step, -gradient, dim=0) > 0.2


def test_es_learns_digits(tiny_suite) -> None:
    (cell,) = plan(resolve([f"suite={tiny_suite(steps=200, eval_every=100)}", "method=evolution",
                            "method.population=16", "method.lr=0.02"]))
    record = run_cell(cell)
    assert record["status"] == "completed", record.get("traceback")
    assert record["final"]["test"]["accuracy"] >= 0.5  # chance is 0.1
    assert record["counters"]["forward_equivalents"] == 200 * 16  # the population, per step


def test_int8_weights_stay_int8_with_no_float_copy_and_learn() -> None:
    task = _digits()
    method = _setup(task, EvolutionConfig(population=16, lr=3e-3, weights="int8", headroom=16))
    model = method.model
    weight_shapes = {tuple(p.shape) for p in model.parameters() if p.dim() >= 1}
    float_modules: list[int] = []

    def count_float(module: nn.Module, args) -> None:  # runs after the dequantising pre-hook
        float_modules.append(sum(1 for m in model.modules()
                                 if any(p is not None and p.is_floating_point() for p in m._parameters.values())))

    for m in model.modules():
        if m._parameters:
            m.register_forward_pre_hook(count_float)

    def audit() -> None:
        assert all(p.dtype == torch.int8 for p in model.parameters())
        found = []
        seen: set[int] = set()

        def walk(obj, where: str, depth: int = 0) -> None:
            if id(obj) in seen or depth > 4:
                return
            seen.add(id(obj))
            if isinstance(obj, torch.Tensor):
                if obj.is_floating_point() and tuple(obj.shape) in weight_shapes:
                    found.append(where)
            elif isinstance(obj, dict):
                for k, v in obj.items():
                    walk(v, f"{where}[{k!r}]", depth + 1)
            elif isinstance(obj, (list, tuple)):
                for i, v in enumerate(obj):
                    walk(v, f"{where}[{i}]", depth + 1)
            elif hasattr(obj, "__dict__") and not isinstance(obj, (nn.Module, torch.Generator)):
                walk(vars(obj), where, depth + 1)

        walk({k: v for k, v in vars(method).items() if k not in ("model", "layers", "ctx")}, "method")
        for name, buffer in model.named_buffers():
            walk(buffer, f"model buffer {name}")
        assert not found, f"float tensors of a weight's shape: {found}"

    audit()
    batches = task.train_batches(64, torch.Generator().manual_seed(0))
    for _ in range(150):
        method.step(next(batches))
        audit()
    assert max(float_modules) == 1  # one module's weights dequantised at a time, only while it runs
    assert task.evaluate(method.predict, "val", torch.device("cpu"))["accuracy"] >= 0.4  # chance is 0.1
    rows = sum(p.shape[0] if p.dim() >= 2 else 1 for p in model.parameters())
    assert sum(t.numel() for t in method.memory_buffers()["int8_scales"]) == rows  # metadata: a float per row


def test_int8_es_lowers_a_language_models_loss() -> None:
    task = _lm()
    method = _setup(task, EvolutionConfig(population=16, lr=1e-3, weights="int8", headroom=4))
    start = task.evaluate(method.predict, "val", torch.device("cpu"))["loss"]
    batches = task.train_batches(32, torch.Generator().manual_seed(0))
    for _ in range(80):
        method.step(next(batches))
    assert all(p.dtype == torch.int8 for p in method.model.parameters())
    assert task.evaluate(method.predict, "val", torch.device("cpu"))["loss"] < start - 0.3
