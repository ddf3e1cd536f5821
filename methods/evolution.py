"""Evolution strategies with low-rank perturbations (EGGROLL), optionally on int8 weights.

Paper: Sarkar et al. (2025). Evolution Strategies at the Hyperscale. arXiv:2511.16652
(EGGROLL: low-rank perturbations E = A B^T / sqrt(r), evaluated in one batched forward as
x W^T + (x B) A^T; integer training of int8 models). Background: Salimans et al. (2017),
Evolution Strategies as a Scalable Alternative to RL (antithetic sampling, fitness shaping).

One step on a batch (population P, antithetic: P/2 noise draws, each used with + and -):
- for every perturbed layer and pair i: A_i [out, r], B_i [in, r] ~ N(0, 1), drawn from a
  generator seeded by (step seed, layer); member i uses +sigma*E_i, member i + P/2 -sigma*E_i;
- all members see the same batch in one batched forward (chunks of `chunk` members when
  memory asks for it; on a CPU, cache-sized chunks by default, see CPU_FORWARD_ELEMENTS):
  a forward hook adds sigma * (x B_i) A_i^T / sqrt(r) to each perturbed Linear's output (and
  sigma * A_i[tokens] B_i^T / sqrt(r) to an Embedding's), so no member ever forms a
  full-rank noise matrix; the population costs P forwards of compute. Per layer that is x B
  for all members and one batched GEMM of inner size r accumulated into the layer's output
  in place (baddbmm), the bias noise folded in as one more rank ([x B_i, 1] [A_i, bias_i]^T):
  no extra full-size pass over the activations;
- fitness f = -task.loss(member's outputs, batch), z-scored across the population (or
  centred ranks in [-0.5, 0.5], `fitness: rank`);
- update theta += lr * g with g = 1/(P sigma) sum_i f_i eps_i = 1/(P sigma sqrt r)
  sum_pairs (f+_i - f-_i) A_i B_i^T, assembled layer by layer from the regenerated factors
  (one layer's [out, in] float update alive at a time).
Perturbed: Linear weights (low rank) and biases (plain Gaussian, rank is moot for vectors),
Embedding tables (low rank). Frozen at initialisation: everything else, i.e. LayerNorm/RMSNorm
gains and biases, the ViT's position embedding and its Conv2d patch embedding (a random
projection of a 2x2 or 7x7 patch into 64 dims loses nothing). No gradients exist at any time.

Integer mode (`weights: int8`, EGGROLL's integer training): every parameter tensor is stored
as int8 with float scales, per output row for matrices (`scale: row`) or per tensor;
the scales are fixed at setup to `headroom` x the initial absolute maximum / 127, so the
weights can grow to `headroom` x their initial range. Scales are quantisation metadata
(one float per row), not weights: they never change and are declared to the meter. There
is no float master copy once training starts (the harness's task builds the model in float;
setup quantises it parameter by parameter before the first step): a forward pre-hook dequantises each module's own
parameters to `compute` dtype just for that module's forward (as an inference kernel
would) and a forward hook puts the int8 tensors back. The update is applied in the integer
domain: q <- clamp(q + round(lr * g / scale), -127, 127) with stochastic rounding
(unbiased; `rounding: nearest` is deterministic and drops updates below half a step).

Deviations from the paper (every one, with the reason):
- Perturbations of the int8 model live in the float activations (x B) A^T rather than as
  int8 noise: the weights stay int8; only the transient product is float.
- Plain SGD on the ES gradient, no Adam: Adam's moments would be two float tensors of every
  weight's shape, i.e. the float copy the integer mode promises not to keep.
- Fixed per-row scales (no re-quantisation during training), for the same reason.
- Norm gains, position and patch embeddings frozen (above); the paper perturbs all matrices.
- `StepStats.loss` is the population's mean loss (the loss at theta would cost a forward more).
- Hyper-parameters were tuned on digits' validation split (below); the paper's were chosen
  for billion-parameter models with populations of 2^18 and more.

Tuning on digits (vision-vit's quick MLP 64-256-256-10, batch 64, 45,000 examples = 703 steps,
seed 0, rank 1; validation / test accuracy; wall seconds on a shared 2-core machine):
  float32, population 32, sigma 0.02: lr 0.005 0.833/0.825 <- chosen; 0.01 0.800/0.802;
    0.02 0.817/0.827; 0.05 0.856/0.766; 0.1 rank fitness 0.822/0.799; 0.2 0.806/0.791.
    sigma 0.05 (lr 0.1): 0.806/0.769. population 64 (lr 0.1): 0.872/0.819 at twice the forwards.
    lr 0.05 had the best validation accuracy by 4 of 180 examples, but its 3-seed run showed the
    population loss at 2e5 by the end (the ES step is a random walk that inflates the weights:
    argmax survives, the loss does not); lr 0.005 keeps it sane and is within noise on validation,
    so the suites use 0.005 (3 seeds at lr 0.05: test 0.766, 0.752, 0.763).
  int8, population 32, sigma 0.02: headroom 4: lr 0.1 0.161, 0.02 0.161, 0.01 0.244, 0.003
    0.589/0.552 (weight decay 1.0: 0.567); headroom 16: lr 0.01 0.511, 0.003 0.783/0.744
    <- the defaults (headroom 16); headroom 32, lr 0.02: 0.556. The ES step is a random walk
    that grows weights; a 4x range clamps them (saturated rows), a wider range with coarser
    steps (stochastic rounding keeps them unbiased) learns.
  Decoder LM (tests): lr 1e-3 (lr 3e-3 and above diverge: the LM's 0.02-std embeddings are
    smaller than its Linear weights), population 16, int8 headroom 4: 3.61 -> 3.03 in 80 steps.
The defaults below are these digits values except where marked.

Memory: the int8 weights, one float scale per row, the step's seed and P losses; transiently one
module's dequantised weights, one layer's factors and update, and the activations of `chunk`
members at once (the population size itself costs compute, not memory).

forward_equivalents per step: P (the population's forwards; the low-rank terms are extra
FLOPs, counted by the meter's FLOP probe, and small at rank 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.interface import Batch, SetupContext, StepStats
from harness.registry import register_method
from methods._forward_only import DTYPES, as_model_input, device_generator, draw_seed, mix

# chunk 0 on a CPU: members per forward such that the largest perturbed layer's output holds at
# most this many elements (2 MB in float32). A forward of the whole population makes
# activations that leave the CPU's caches and, with glibc's default malloc, tensors whose
# memory is handed back to the system after each forward and faulted in again on the next:
# on vision-vit's quick ViT (196,608 elements a member in its qkv layer) the whole population
# per forward cost 1.4-1.6x backprop's CPU time per forward-equivalent, 2-3 members 1.15-1.25x,
# 4-10 members 1.0-1.1x in a process whose malloc thresholds had grown and 1.45-1.9x in a fresh
# one (tests/bench/method_cost.py and one-off scripts, 2-core shared machine). So: 2 members
# on that ViT; its MLP (16,384 a member) keeps the whole population of 32.
# GPUs (and the meta device's memory estimates of them) get the whole population.
CPU_FORWARD_ELEMENTS = 2**19


@dataclass(frozen=True)
class EvolutionConfig:
    population: int = 32  # members per step, antithetic pairs: must be even
    rank: int = 1  # rank r of each perturbation (the paper: r = 1 already works)
    sigma: float = 0.02  # perturbation scale, in weight units (tuned on digits, above)
    lr: float = 0.005  # step size on the ES gradient estimate (digits, float32; int8: 0.003, LMs: 1e-3)
    fitness: Literal["zscore", "rank"] = "zscore"
    weight_decay: float = 0.0  # decoupled, on matrices
    schedule: Literal["constant", "cosine"] = "constant"
    chunk: int = 0  # members per batched forward; 0 = the whole population (on a CPU: a cache-sized part, below)
    weights: Literal["float32", "bfloat16", "int8"] = "float32"
    compute: Literal["float32", "bfloat16"] = "float32"  # int8 only: the dtype weights are dequantised to
    scale: Literal["row", "tensor"] = "row"  # int8 only: one scale per output row, or per tensor
    headroom: float = 16.0  # int8 only: representable range / initial absolute maximum
    rounding: Literal["stochastic", "nearest"] = "stochastic"  # int8 only

    def __post_init__(self) -> None:
        if self.population < 2 or self.population % 2:
            raise ValueError(f"population must be an even number >= 2 (antithetic pairs), got {self.population}")
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.sigma <= 0 or self.lr <= 0:
            raise ValueError(f"sigma and lr must be > 0, got sigma={self.sigma}, lr={self.lr}")
        if self.chunk < 0:
            raise ValueError(f"chunk must be >= 0 (0: the whole population per forward), got {self.chunk}")
        if self.headroom < 1:
            raise ValueError(f"headroom must be >= 1 (the int8 range covers the initial weights), got {self.headroom}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        for key, allowed in (("fitness", ("zscore", "rank")), ("schedule", ("constant", "cosine")),
                             ("weights", ("float32", "bfloat16", "int8")), ("compute", ("float32", "bfloat16")),
                             ("scale", ("row", "tensor")), ("rounding", ("stochastic", "nearest"))):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")


def _times_factor(x: Tensor, b: Tensor) -> Tensor:
    """x B for every member, [c, N, in] x [c, in, r] -> [c, N, r]. On a CPU a batched GEMM with
    a handful of output columns runs at about 1 GFLOP/s (4-7x slower than r dot products per
    row, measured on vision-vit's layer shapes); elsewhere, for a larger rank, or for one
    member (a plain GEMM then: 3-4x faster than the dot products on the ViT's shapes), bmm."""
    if x.device.type != "cpu" or b.shape[-1] > 4 or x.shape[0] == 1:  # one member: bmm is one GEMM
        return torch.bmm(x, b)
    return torch.stack([torch.linalg.vecdot(x, b[:, None, :, j]) for j in range(b.shape[-1])], dim=-1)


def shape_fitness(fitness: Tensor, how: str) -> Tensor:
    """z-scores, or centred ranks in [-0.5, 0.5] (Salimans et al. 2017), of a population's fitness."""
    if how == "rank":
        ranks = torch.empty_like(fitness)
        ranks[fitness.argsort()] = torch.arange(len(fitness), dtype=fitness.dtype, device=fitness.device)
        return ranks / (len(fitness) - 1) - 0.5
    return (fitness - fitness.mean()) / (fitness.std() + 1e-8)


class Int8Store:
    """int8 parameters with fixed float scales, dequantised per module only while it runs."""

    def __init__(self, model: nn.Module, cfg: EvolutionConfig) -> None:
        self.compute = DTYPES[cfg.compute]
        self.scales: dict[Tensor, Tensor] = {}  # keyed by the int8 parameter
        self.hooks = []
        for module in model.modules():
            names = [n for n, p in module._parameters.items() if p is not None]
            if not names:
                continue
            for name in names:
                p = module._parameters[name]
                dims = tuple(range(1, p.dim())) if cfg.scale == "row" and p.dim() >= 2 else tuple(range(p.dim()))
                absmax = p.detach().abs().amax(dim=dims, keepdim=True) if dims else p.detach().abs()
                scale = (cfg.headroom * absmax.clamp_min(0.02) / 127).float()
                q = torch.round(p.detach().float() / scale).clamp_(-127, 127).to(torch.int8)
                module._parameters[name] = nn.Parameter(q, requires_grad=False)
                module.register_buffer(f"{name}_scale", scale)
                self.scales[module._parameters[name]] = scale
            self.hooks.append(module.register_forward_pre_hook(self._dequantise))
            self.hooks.append(module.register_forward_hook(self._restore))

    def _dequantise(self, module: nn.Module, args: Any) -> None:
        module._int8 = dict(module._parameters)  # type: ignore[assignment]
        for name, q in module._int8.items():  # type: ignore[attr-defined]
            if q is not None:
                module._parameters[name] = q.to(self.compute) * getattr(module, f"{name}_scale").to(self.compute)

    @staticmethod
    def _restore(module: nn.Module, args: Any, output: Any) -> None:
        module._parameters.update(module._int8)  # type: ignore[attr-defined]
        del module._int8

    def scale_of(self, p: Tensor) -> Tensor:
        return self.scales[p]


@register_method("evolution")
class Evolution:
    supports = frozenset({"classify", "lm"})
    Config = EvolutionConfig

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.cfg = ctx, ctx.config
        model = ctx.model
        model.requires_grad_(False)
        self.int8: Int8Store | None = None
        if self.cfg.weights == "int8":
            self.int8 = Int8Store(model, self.cfg)
            self.dtype = self.int8.compute
        else:
            self.dtype = DTYPES[self.cfg.weights]
            model.to(self.dtype)
        self.model = model
        self.layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))]
        for index, layer in enumerate(self.layers):
            layer.register_forward_hook(self._perturbation_hook(index))
        self.noise = device_generator(ctx.device)
        self.seed = torch.zeros(1, dtype=torch.int64)  # the step's seed: every perturbation replays from it
        self.losses = torch.zeros(self.cfg.population)
        self._members: Tensor | None = None  # member ids of the chunk being evaluated (None: no perturbation)
        # the step's signed factors of the whole population per layer, while a step's population
        # runs in several CPU chunks (None: drawn per chunk; see _member_factors)
        self._step_factors: dict[int, tuple[Tensor, Tensor, Tensor | None]] | None = None
        self._largest_output = 0  # elements of the largest perturbed layer output seen (sizes the CPU chunks)
        self._elements_per_example: int | None = None
        self._seed = 0

    # ------------------------------------------------------------------ noise

    def _factors(self, index: int, layer: nn.Module) -> tuple[Tensor, Tensor, Tensor | None]:
        """(A [pairs, out, r], B [pairs, in, r], bias noise [pairs, out] or None) of one layer."""
        pairs, r = self.cfg.population // 2, self.cfg.rank
        out_features, in_features = layer.weight.shape
        self.noise.manual_seed(mix(self._seed, index))
        device = layer.weight.device
        draw = lambda *shape: torch.randn(shape, generator=self.noise, device=device, dtype=self.dtype)  # noqa: E731
        a, b = draw(pairs, out_features, r), draw(pairs, in_features, r)
        bias = draw(pairs, out_features) if getattr(layer, "bias", None) is not None else None
        return a, b, bias

    def _member_factors(self, index: int, layer: nn.Module) -> tuple[Tensor, Tensor, Tensor | None]:
        """The chunk's members' factors, with the antithetic sign folded into A (and the bias noise).
        When the population runs in CPU chunks, the whole population's are made once per layer
        and step and each chunk takes its slice (the same numbers; drawing them again for every
        chunk and layer was ~10% of a ViT step of 32 one-member chunks)."""
        assert self._members is not None
        cache = self._step_factors
        if cache is not None:
            if index not in cache:
                cache[index] = self._signed_factors(index, layer, torch.arange(self.cfg.population))
            first, last = int(self._members[0]), int(self._members[-1]) + 1  # chunks are contiguous ranges
            a, b, bias = cache[index]
            return a[first:last], b[first:last], None if bias is None else bias[first:last]
        return self._signed_factors(index, layer, self._members)

    def _signed_factors(self, index: int, layer: nn.Module, members: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        pairs = self.cfg.population // 2
        a, b, bias = self._factors(index, layer)
        members = members.to(a.device)
        which, sign = members % pairs, torch.where(members < pairs, 1.0, -1.0).to(self.dtype)
        a, b = a[which] * sign[:, None, None], b[which]
        bias = None if bias is None else bias[which] * sign[:, None]
        return a, b, bias

    def _perturbation_hook(self, index: int) -> Any:
        def hook(layer: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> Tensor | None:
            if self._members is None:
                return None
            a, b, bias = self._member_factors(index, layer)
            c, x, r = len(self._members), args[0], self.cfg.rank
            scale = self.cfg.sigma / math.sqrt(r)
            out = output.contiguous()
            self._largest_output = max(self._largest_output, out.numel())
            rows = out.view(c, -1, out.shape[-1])  # member-major: member j's rows are a block
            if isinstance(layer, nn.Embedding):  # E_i[tokens] = A_i[tokens] B_i^T
                left = torch.gather(a, 1, x.reshape(c, -1, 1).expand(-1, -1, r))
                right = b * scale
            else:  # x E_i^T = (x B_i) A_i^T, the bias noise as one more rank: [x B_i, 1] [A_i, bias_i]^T
                left = _times_factor(x.reshape(c, -1, x.shape[-1]).to(self.dtype), b)
                right = a * scale
                if bias is not None:
                    left = torch.cat([left, left.new_ones(left.shape[:-1] + (1,))], dim=-1)
                    right = torch.cat([right, self.cfg.sigma * bias[:, :, None]], dim=-1)
            # one batched GEMM of inner size r (+1) per layer, accumulated into the output in place
            rows.baddbmm_(left.to(out.dtype), right.transpose(1, 2).to(out.dtype))
            return out

        return hook

    # ------------------------------------------------------------------ the step

    def _chunk(self, n: int) -> int:
        """Members per batched forward: `chunk`, or (0) the whole population, except on a CPU,
        where as many members as keep the largest perturbed layer's output within
        CPU_FORWARD_ELEMENTS (the first forward, of one member, measures it)."""
        if self.cfg.chunk:
            return self.cfg.chunk
        if self.ctx.device.type != "cpu":
            return self.cfg.population
        if self._elements_per_example is None:
            return 1
        return max(1, CPU_FORWARD_ELEMENTS // (self._elements_per_example * n))

    def _population_losses(self, batch: Batch) -> Tensor:
        population, n = self.cfg.population, batch.size
        x = as_model_input(batch.inputs, self.dtype)
        losses, start = [], 0
        # auto-sized CPU chunks (not a `chunk` the config sets, e.g. for memory): factors made once per step
        self._step_factors = {} if self.ctx.device.type == "cpu" and not self.cfg.chunk else None
        while start < population:
            members = torch.arange(start, min(population, start + self._chunk(n)))
            start += len(members)
            self._members = members
            try:
                outputs = self.model(x.repeat(len(members), *([1] * (x.dim() - 1))))
            finally:
                self._members = None
            if self._elements_per_example is None:
                self._elements_per_example = math.ceil(self._largest_output / (len(members) * n))
            losses += [self.ctx.task.loss(outputs[j * n:(j + 1) * n].float(), batch) for j in range(len(members))]
        self._step_factors = None
        return torch.stack(losses).float()

    def _lr(self) -> float:
        if self.cfg.schedule == "constant":
            return self.cfg.lr
        return self.cfg.lr * 0.5 * (1 + math.cos(math.pi * self.ctx.budget_fraction()))

    def _apply(self, p: Tensor, delta: Tensor) -> None:
        """p += delta, in the integer domain for int8 weights (delta in weight units)."""
        if self.int8 is None:
            p.add_(delta.to(p.dtype))
            return
        steps = delta.float() / self.int8.scale_of(p)
        if self.cfg.rounding == "stochastic":
            steps = torch.floor(steps + torch.rand(steps.shape, generator=self.noise, device=steps.device))
        else:
            steps = torch.round(steps)
        updated = p.to(torch.int16) + steps.clamp_(-254, 254).to(torch.int16)
        p.copy_(updated.clamp_(-127, 127).to(torch.int8))

    def _weight(self, p: Tensor) -> Tensor:
        return p if self.int8 is None else p.float() * self.int8.scale_of(p)

    @torch.no_grad()
    def step(self, batch: Batch) -> StepStats:
        if self.model.training:
            self.model.eval()
        cfg, pairs = self.cfg, self.cfg.population // 2
        self._seed = draw_seed(self.ctx.generator)
        self.seed[0] = self._seed
        losses = self._population_losses(batch)
        self.losses = losses
        shaped = shape_fitness(-losses, cfg.fitness).to(self.dtype)
        weights = (shaped[:pairs] - shaped[pairs:]).to(self.dtype)  # f+ - f- per pair
        lr = self._lr()
        coefficient = lr / (cfg.population * cfg.sigma)
        self.noise.manual_seed(mix(self._seed, len(self.layers)))  # stochastic rounding draws
        for index, layer in enumerate(self.layers):
            a, b, bias = self._factors(index, layer)
            weights_dev = weights.to(a.device)
            delta = torch.einsum("p,por,pir->oi", weights_dev, a, b) * (coefficient / math.sqrt(cfg.rank))
            if cfg.weight_decay:
                delta -= lr * cfg.weight_decay * self._weight(layer.weight).to(delta.dtype)
            self.noise.manual_seed(mix(self._seed, len(self.layers) + 1 + index))
            self._apply(layer.weight, delta)
            if bias is not None:
                self._apply(layer.bias, coefficient * (weights_dev @ bias))
        return StepStats(loss=float(losses.mean()), examples=batch.size, forward_equivalents=float(cfg.population))

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> Tensor:
        self.model.eval()
        return self.model(as_model_input(inputs, self.dtype)).float()

    def memory_buffers(self) -> dict[str, Any]:
        buffers: dict[str, Any] = {"perturbation_seed": self.seed, "population_losses": self.losses}
        if self.int8 is not None:
            buffers["int8_scales"] = list(self.int8.scales.values())
        return buffers

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])


def parameters_of(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """Every parameter and buffer of `model` by name (for tests that audit dtypes)."""
    yield from model.named_parameters()
    yield from model.named_buffers()
