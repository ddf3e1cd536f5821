"""The memory ledger: exact bytes by category, independent of machine and allocator.

Categories:

- parameters: the model's parameters;
- gradients: the `.grad` tensors of those parameters after the step;
- saved_activations: tensors autograd keeps for backward, counted through
  `torch.autograd.graph.saved_tensors_hooks` as they are packed and released, so the
  figure is the *peak live* bytes within the step (a method that runs backward block
  by block frees each block's tensors before the next, and is credited for it);
- autocast_weight_copies: lower-precision copies of parameters that autocast makes
  and autograd saves (real memory under bf16, kept apart from activations);
- whatever a method declares through `Method.memory_buffers()` (optimizer state,
  predictive-coding value nodes, perturbation seeds, population noise, ...).

Tensors are counted by storage, once each: a view shares its base's bytes, and a
saved tensor that *is* a parameter (a Linear saves its weight) costs nothing extra.

The total is the sum of the categories at their own peaks: an upper bound that
ignores the overlap between activations freed and gradients created during backward,
the way the memory tables of ZeRO and of the MeZO paper count.

Known blind spots: transient forward buffers that autograd does not save (inference
activations, the recomputation inside activation checkpointing during backward) are
not in the ledger; the measured peaks (harness/meter.py) see them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


def storage_key(t: Tensor) -> tuple[str, int]:
    """Identity of a tensor's storage. Meta tensors (and empty ones) have no address: their
    StorageImpl's address (`_cdata`) is stable and shared by views, unlike the `id` of the
    Python wrapper, which is a fresh object on every call and whose id is soon reused."""
    storage = t.untyped_storage()
    ptr = storage.data_ptr()
    return (str(t.device), ptr if ptr else storage._cdata)


def storage_bytes(t: Tensor) -> int:
    return int(t.untyped_storage().nbytes())


def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors`."""
    seen: dict[tuple[str, int], int] = {}
    for t in tensors:
        if isinstance(t, Tensor):
            seen.setdefault(storage_key(t), storage_bytes(t))
    return sum(seen.values())


_VIEW_NODES = frozenset({"TBackward0", "TransposeBackward0", "PermuteBackward0", "ViewBackward0",
                         "UnsafeViewBackward0", "ExpandBackward0", "AliasBackward0", "UnsqueezeBackward0"})


def _is_parameter_cast(t: Tensor, parameter_ids: set[int]) -> bool:
    """True when `t` is (a view of) autocast's dtype copy of a parameter:
    grad_fn chain [views ->] ToCopyBackward0 -> AccumulateGrad(parameter)."""
    fn = t.grad_fn
    while fn is not None and type(fn).__name__ in _VIEW_NODES and fn.next_functions:
        fn = fn.next_functions[0][0]
    if fn is None or type(fn).__name__ != "ToCopyBackward0" or not fn.next_functions:
        return False
    source = fn.next_functions[0][0]
    return source is not None and id(getattr(source, "variable", None)) in parameter_ids


class _Held:
    """What a packed saved tensor becomes: releasing it returns its bytes to the ledger."""

    __slots__ = ("tensor", "ledger", "key", "category")

    def __init__(self, tensor: Tensor, ledger: SavedTensorLedger, key: tuple[str, int], category: str) -> None:
        self.tensor, self.ledger, self.key, self.category = tensor, ledger, key, category

    def __del__(self) -> None:
        self.ledger._release(self.key, self.category)


@dataclass
class SavedTensorLedger:
    """Context manager tracking live and peak bytes of tensors saved for backward."""

    parameters: Iterable[Tensor]
    live: dict[str, int] = field(default_factory=lambda: {"saved_activations": 0, "autocast_weight_copies": 0})
    peak: dict[str, int] = field(default_factory=lambda: {"saved_activations": 0, "autocast_weight_copies": 0})

    def __post_init__(self) -> None:
        params = list(self.parameters)
        self._param_keys = {storage_key(p) for p in params}
        self._param_ids = {id(p) for p in params}
        self._refs: dict[tuple[str, int], list[int]] = {}  # key -> [references, bytes]
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: Tensor) -> Any:
        key = storage_key(t)
        if key in self._param_keys:
            return t
        category = "autocast_weight_copies" if _is_parameter_cast(t, self._param_ids) else "saved_activations"
        ref = self._refs.get(key)
        if ref is None:
            self._refs[key] = [1, storage_bytes(t)]
            self.live[category] += storage_bytes(t)
            self.peak[category] = max(self.peak[category], self.live[category])
        else:
            ref[0] += 1
        return _Held(t, self, key, category)

    @staticmethod
    def _unpack(held: Any) -> Tensor:
        return held.tensor if isinstance(held, _Held) else held

    def _release(self, key: tuple[str, int], category: str) -> None:
        ref = self._refs.get(key)
        if ref is None:
            return
        ref[0] -= 1
        if ref[0] == 0:
            self.live[category] -= ref[1]
            del self._refs[key]

    def __enter__(self) -> SavedTensorLedger:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)


def model_bytes(model: nn.Module) -> tuple[int, int]:
    """(parameter bytes, gradient bytes) of a model right now."""
    params = list(model.parameters())
    return tensor_bytes(params), tensor_bytes(p.grad for p in params if p.grad is not None)


def declared_bytes(buffers: Mapping[str, Any]) -> dict[str, int]:
    """Bytes per category of what a method declares (a tensor, or an iterable of tensors)."""
    out = {}
    for name, value in buffers.items():
        tensors = [value] if isinstance(value, Tensor) else list(value)
        out[name] = tensor_bytes(tensors)
    return out
