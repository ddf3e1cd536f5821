"""Memory of training steps at scale: the ledger on the meta device, measured on a GPU.

A task with `memory_only = True` (suites/tasks/synthetic_lm.py, e.g. suite scale-1b's
`llama_1b`) is run here instead of being trained to a metric (harness/runner.py dispatches).
For the cell's method config, and for every extra config the task lists in
`variants[method]`, this module:

- on every device: builds the model under `torch.device("meta")` (shapes and dtypes, no
  storage), sets the method up on it and runs the cell's steps (at most `META_STEPS`)
  through the same Meter as any cell, so the ledger (parameters, gradients, saved
  activations, autocast copies, declared buffers: harness/ledger.py) comes from the
  method's own code, not from a formula. FLOPs come from the meter's probe as usual.
  Four things make a step run on meta tensors as it would on a GPU: scalar reads
  (`loss.item()`, AdamW's step count) return 0 and random draws are skipped (`MetaStep`);
  `torch.autocast("meta")`, which torch refuses, is emulated above autograd with CUDA's
  cast lists (`MetaAutocast`; tests/test_scale_1b.py checks it against CPU autocast);
  `F.scaled_dot_product_attention` is routed to the fused (memory-efficient) attention
  kernel a GPU would pick, since the meta device otherwise takes the math path and would
  count a [B, heads, T, T] attention matrix no GPU run materialises; and an allocation
  tracker stands in for the CUDA allocator: every storage an op creates is counted from
  its creation until its last tensor dies (weak-reference finalisers), giving
  `meta_simulated_peak_bytes`, the meta analogue of `torch.cuda.max_memory_allocated`
  (it includes what the ledger does not: forward activations of no-grad passes, logits,
  one parameter's noise, the population's outputs);
- on a GPU (`device=cuda`) also: builds the real model, runs the same steps and records
  `torch.cuda.max_memory_allocated` beside the meta figures (an out-of-memory error is
  recorded as such: it answers "does it fit").

The record's `final.test.ledger_gib` is the cell's ledger total, so the results table
shows it; `scale.rows` holds every measured config, and harness/report/summary.py prints them as
a memory table with the ratio to mixed-precision backprop and the 80 GB verdicts.
"""

from __future__ import annotations

import contextlib
import gc
import dataclasses
import time
import weakref
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from harness import budget as budgets
from harness.typed_config import build_dataclass
from harness.interface import Batch, MemoryOnlyTask, SetupContext
from harness.ledger import declared_bytes, storage_bytes
from harness.loops.common import cell_generators, seed_everything
from harness.meter import Meter, MeterConfig
from harness.plan import Cell

GPU_BYTES = 80e9  # "one 80 GB GPU", as the claims state it (8e10 bytes)
# Steps run on the meta device: from the second step on, a step's memory repeats (state that
# is created lazily, like AdamW's moments, exists after the first; gradients of the previous
# step are alive during the second), so longer memory budgets (claims ask for 5) run 2 there,
# and a first step that leaves no gradients and creates no state (MeZO, ES) is the only one.
META_STEPS = 2
GIB = 2**30


_RANDOM_FILLS = frozenset({"normal_", "uniform_", "bernoulli_", "exponential_", "random_", "log_normal_",
                           "cauchy_", "geometric_"})
_RANDOM_FACTORIES = frozenset({"randn", "rand", "randint", "normal"})


class MetaStep(TorchDispatchMode):
    """Scalar reads of meta tensors return 0, random draws are skipped (a meta tensor holds no
    values; torch's reference decompositions of them take milliseconds each), and, with
    `track`, every storage created is tracked until freed.

    `peak` is the highest live total seen: the bytes alive when the step began (adopted
    through `adopt`) plus those created since and not yet freed.
    """

    def __init__(self, track: bool = True) -> None:
        super().__init__()
        self.track = track
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.live = 0
        self.peak = 0

    def adopt(self, tensors: Iterator[Tensor]) -> None:
        for t in tensors:
            if isinstance(t, Tensor):
                self._track(t)

    def _track(self, t: Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self.refs:
            self.refs[key] += 1
        else:
            self.refs[key], self.sizes[key] = 1, storage_bytes(t)
            self.live += self.sizes[key]
            self.peak = max(self.peak, self.live)
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.live -= self.sizes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta":
            return False if args[0].dtype == torch.bool else (0.0 if args[0].is_floating_point() else 0)
        if name in _RANDOM_FILLS and args[0].device.type == "meta":
            return args[0]
        if name in _RANDOM_FACTORIES and str(kwargs.get("device")) == "meta":
            size = next(a for a in args if isinstance(a, (list, tuple, torch.Size)))
            dtype = kwargs.get("dtype") or (torch.int64 if name == "randint" else torch.get_default_dtype())
            func, args, kwargs = torch.ops.aten.empty.memory_format, (size,), {"dtype": dtype, "device": "meta"}
        out = func(*args, **kwargs)
        if self.track:
            for t in tree_flatten(out)[0]:
                if isinstance(t, Tensor) and t.device.type == "meta":
                    self._track(t)
        return out


_LOWER_PRECISION = frozenset({F.linear, torch.matmul, torch.Tensor.matmul, torch.mm, torch.bmm, torch.addmm,
                              torch.baddbmm, F.conv1d, F.conv2d, F.conv3d})
_FULL_PRECISION = frozenset({F.softmax, F.log_softmax, F.cross_entropy, F.nll_loss, F.layer_norm, F.group_norm,
                             torch.rsqrt, torch.exp, torch.log, torch.pow, torch.Tensor.pow, torch.softmax,
                             torch.log_softmax, F.mse_loss})


class MetaAutocast(TorchFunctionMode):
    """`torch.autocast` for the meta device, which torch's autocast does not serve.

    Autocast's rule, as on CUDA: matrix products (and convolutions) run in `dtype`, their
    float32 inputs cast (weights too, so the casts autograd saves show up as
    `autocast_weight_copies`); numerically sensitive ops (softmax, log-softmax, losses,
    norms, exp/log/pow/rsqrt) run in float32; everything else follows its inputs. It works
    above autograd, like the real thing, so saved tensors have the dtypes a GPU run saves.
    A backward started inside it runs inside a fresh instance, so activation checkpointing
    recomputes under the same casts (as torch.utils.checkpoint restores autocast state).
    """

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def __enter__(self) -> MetaAutocast:
        if _SCOPES:
            _SCOPES[-1].dtype = self.dtype
        return super().__enter__()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is Tensor.backward:
            return _backward_under(self.dtype, args, kwargs)
        if func in _LOWER_PRECISION:
            args, kwargs = _cast(args, torch.float32, self.dtype), _cast(kwargs, torch.float32, self.dtype)
        elif func in _FULL_PRECISION:
            args, kwargs = _cast(args, self.dtype, torch.float32), _cast(kwargs, self.dtype, torch.float32)
        return func(*args, **kwargs)


class _StepScope(TorchFunctionMode):
    """Spans one meta step. A backward called after the step's autocast region has closed
    (backprop's `loss.backward()`) runs under that region's casts, so checkpointed blocks
    recompute as they computed, which torch.utils.checkpoint arranges on real devices."""

    def __init__(self) -> None:
        super().__init__()
        self.dtype: torch.dtype | None = None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is Tensor.backward and self.dtype is not None:
            return _backward_under(self.dtype, args, kwargs)
        return func(*args, **kwargs)


_SCOPES: list[_StepScope] = []


def _backward_under(dtype: torch.dtype, args: Any, kwargs: Any) -> None:
    """`Tensor.backward(*args, **kwargs)` with a fresh MetaAutocast active in the engine."""
    from torch.autograd.graph import _engine_run_backward

    output, gradient = args[0], kwargs.get("gradient", args[1] if len(args) > 1 else None)
    with MetaAutocast(dtype):
        _engine_run_backward((output,), (torch.ones_like(output) if gradient is None else gradient,),
                             bool(kwargs.get("retain_graph")), False, (), allow_unreachable=True,
                             accumulate_grad=True)


def _cast(tree: Any, source: torch.dtype, target: torch.dtype) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t.to(target) if isinstance(t, Tensor) and t.dtype == source else t, tree)


_autocast = torch.autocast


def _autocast_for(device_type: str, dtype: torch.dtype | None = None, enabled: bool = True, **kwargs: Any) -> Any:
    if device_type != "meta":
        return _autocast(device_type, dtype=dtype, enabled=enabled, **kwargs)
    return MetaAutocast(dtype or torch.bfloat16) if enabled else contextlib.nullcontext()


_sdpa = F.scaled_dot_product_attention


def _fused_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                     dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                     **kwargs: Any) -> Tensor:
    """On meta tensors, the memory-efficient kernel (saves O(T) per head, as on a GPU)."""
    if query.device.type != "meta" or attn_mask is not None or kwargs:
        return _sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                     scale=scale, **kwargs)
    return torch.ops.aten._scaled_dot_product_efficient_attention(
        query, key, value, None, torch.is_grad_enabled(), dropout_p, is_causal, scale=scale)[0]


@contextlib.contextmanager
def meta_kernels() -> Iterator[None]:
    """Fused attention and autocast on meta tensors, for the duration of a meta step."""
    F.scaled_dot_product_attention, torch.autocast = _fused_attention, _autocast_for  # type: ignore[assignment]
    scope = _StepScope()
    _SCOPES.append(scope)
    try:
        with scope:
            yield
    finally:
        _SCOPES.pop()
        F.scaled_dot_product_attention, torch.autocast = _sdpa, _autocast  # type: ignore[assignment]


def _static_tensors(model: torch.nn.Module, method: Any, batch: Batch) -> Iterator[Tensor]:
    """What is alive when a step begins: weights, buffers, gradients, declared buffers, the batch."""
    for p in model.parameters():
        yield p
        if p.grad is not None:
            yield p.grad
    yield from model.buffers()
    for value in method.memory_buffers().values():
        yield from ([value] if isinstance(value, Tensor) else value)
    yield batch.inputs
    yield batch.targets


def _declared(method: Any) -> dict[str, int]:
    return declared_bytes(method.memory_buffers())


def _steady(model: torch.nn.Module, method: Any, before: dict[str, int]) -> bool:
    """True when a step left no gradients and created no state: the next one is the same step."""
    return all(p.grad is None for p in model.parameters()) and _declared(method) == before


def _setup(seed: int, batch_size: int, task: Any, method_cls: type, config: Any, device: torch.device, steps: int,
           counters: budgets.Counters) -> tuple[Any, torch.nn.Module, Batch]:
    seed_everything(seed)
    init_gen, data_gen, method_gen = cell_generators(seed)
    if device.type == "meta":
        with torch.device("meta"), MetaStep(track=False):
            model = task.build_model(init_gen)
    else:
        model = task.build_model(init_gen).to(device)
    method = method_cls()
    budget = budgets.Budget("steps", steps)
    method.setup(SetupContext(model=model, task=task, config=config, device=device, generator=method_gen,
                              budget_fraction=lambda: budgets.spent_fraction(budget, counters),
                              planned_steps=steps))
    batch = next(task.train_batches(batch_size, data_gen)).to(device)
    return method, model, batch


def measure(cell: Cell, task: Any, method_cls: type, config: Any, device: torch.device, steps: int) -> dict[str, Any]:
    """Ledger, FLOPs and peak of `steps` steps of `method_cls(config)` on `device` (meta or cuda)."""
    return measure_steps(cell.seed, cell.batch_size, task, method_cls, config, device, steps)


def measure_steps(seed: int, batch_size: int, task: Any, method_cls: type, config: Any, device: torch.device,
                  steps: int) -> dict[str, Any]:
    """`measure` outside a cell: batches of `batch_size` drawn as a cell of `seed` draws them
    (harness/memory_sweep.py)."""
    # Tensors of an earlier measurement held only by reference cycles would otherwise die, or not,
    # whenever the collector runs, and the simulated peak moved with it (seen: 1.97 vs 1.82 MB).
    gc.collect()
    counters = budgets.Counters()
    method, model, batch = _setup(seed, batch_size, task, method_cls, config, device, steps, counters)
    meta = device.type == "meta"
    tracker = MetaStep() if meta else None
    start = time.perf_counter()
    # One probe step gives the ledger (state created lazily in step 1, e.g. AdamW's moments, is
    # declared after it); the peak needs the later steps too (step 2 holds step 1's gradients).
    with Meter(device, model, method, MeterConfig(probe_steps=1, sampling=False)) as meter:
        for index in range(steps):
            if index == 1 and meta and _steady(model, method, declared):
                break  # nothing carried over from step 1: step 2 would repeat it exactly
            declared = _declared(method)

            def run() -> Any:
                if tracker is None:
                    return method.step(batch)
                tracker.adopt(_static_tensors(model, method, batch))
                with meta_kernels(), tracker:
                    return method.step(batch)

            stats, cost = meter.step(run)
            counters.add(stats.examples, stats.forward_equivalents, cost.seconds)
            if tracker is not None:  # the next step adopts what is alive then, afresh
                peak = tracker.peak
                tracker = MetaStep()
                tracker.peak = peak
        counters.seconds += meter.flush(settle=True)  # a probe no later step settled: its own time
    report = meter.report()
    if tracker is not None:
        report["measured"]["meta_simulated_peak_bytes"] = tracker.peak
    report["seconds"] = time.perf_counter() - start
    report["counters"] = counters.as_dict()
    return report


def _row(label: str, method: str, overrides: dict[str, Any], meta: dict[str, Any],
         real: dict[str, Any] | None) -> dict[str, Any]:
    ledger = meta["ledger"]["bytes"]
    total = sum(ledger.values())
    peak = meta["measured"].get("meta_simulated_peak_bytes")
    row: dict[str, Any] = {
        "label": label, "method": method, "config": overrides, "ledger": ledger, "ledger_total": total,
        "meta_simulated_peak": peak, "fits_80gb_ledger": total <= GPU_BYTES,
        "fits_80gb_peak": None if peak is None else peak <= GPU_BYTES,
        "flops_per_step": next(iter(meta["flops"]["per_step"].values()), None),
        "cuda_max_allocated": None, "cuda_ledger_total": None, "cuda_error": None,
    }
    if real is not None:
        row["cuda_error"] = real.get("error")
        if real.get("error") is None:
            row["cuda_max_allocated"] = real["measured"]["cuda_max_allocated_bytes"]
            row["cuda_ledger_total"] = real["ledger"]["total_bytes"]
    return row


_SHORT = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def _label(method: str, overrides: dict[str, Any]) -> str:
    """`backprop bf16 checkpoint`, `evolution int8 bf16 population=8`: the config in few words."""
    words = []
    for key, value in overrides.items():
        if isinstance(value, bool):
            words.append(key if value else f"no-{key}")
        elif isinstance(value, str):
            words.append(_SHORT.get(value, value))
        else:
            words.append(f"{key}={value}")
    return " ".join([method, *words])


def _real(cell: Cell, task: Any, method_cls: type, config: Any, steps: int) -> dict[str, Any]:
    device = torch.device(cell.device)
    try:
        return measure(cell, task, method_cls, config, device, steps)
    except torch.cuda.OutOfMemoryError as exc:
        return {"error": f"CUDA out of memory: {str(exc).splitlines()[0]}"}
    finally:
        torch.cuda.empty_cache()


def run_memory_cell(cell: Cell, task: MemoryOnlyTask, method_cls: type) -> dict[str, Any]:
    """The record fields of a memory-only cell (see the module docstring)."""
    if cell.budget.kind != "steps":
        raise ValueError(f"memory-only task {cell.task.label} measures a few steps: set budget.steps (e.g. 2), "
                         f"not budget.{cell.budget.kind}")
    steps = int(cell.budget.value)
    task.check_available()
    own = {k: v for k, v in dataclasses.asdict(cell.method.config).items()
           if v != getattr(method_cls.Config(), k)}
    configs = [(own, cell.method.config)]
    for extra in task.variants.get(cell.method.name, []):
        merged = {**own, **extra}
        if merged != own:
            configs.append((merged, build_dataclass(method_cls.Config, {**dataclasses.asdict(cell.method.config),
                                                                        **extra}, f"variants.{cell.method.name}")))
    rows, main = [], None
    for overrides, config in configs:
        meta = measure(cell, task, method_cls, config, torch.device("meta"), min(steps, META_STEPS))
        real = _real(cell, task, method_cls, config, steps) if cell.device == "cuda" else None
        rows.append(_row(_label(cell.method.name, overrides), cell.method.name, overrides, meta, real))
        if main is None:
            main = (meta, real)
    assert main is not None
    meta, real = main
    source = real if real is not None and real.get("error") is None else meta
    ledger_gib = source["ledger"]["total_bytes"] / GIB
    measured = dict(meta["measured"])
    if real is not None:
        measured.update({k: v for k, v in (real.get("measured") or {}).items() if v is not None})
        measured["cuda_error"] = real.get("error")
    return {
        "status": "completed",
        "task_info": task.describe(),
        "counters": meta["counters"],
        "curve": [],
        "timing": {**meta["time"], "eval_seconds": 0.0},
        "memory": {"ledger": source["ledger"], "measured": measured,
                   "ledger_source": "cuda run" if source is real else "meta device"},
        "energy": meta["energy"],
        "flops": meta["flops"],
        "final": {"metric": "ledger_gib", "best_step": steps, "val": {"ledger_gib": ledger_gib},
                  "test": {"ledger_gib": ledger_gib}},
        "scale": {"rows": rows, "gpu_bytes": GPU_BYTES, "steps": steps},
    }
