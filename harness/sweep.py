"""`bench sweep`: a grid of runs, Hydra-multirun style, from ordinary `key=value` arguments.

Every list-valued argument is an axis of the grid, except `method`, `seeds` and `task`, which
keep their meaning in a single run (every run already covers several methods and seeds):

    bench sweep suite=vision-vit method=[backprop,forward_forward] method.lr=[1e-3,3e-4] seeds=5
      -> 2 runs (lr 1e-3 and 3e-4), each with both methods and 5 seeds: 20 cells

To pass a list as one value of a key that takes lists (a hidden-layer shape), wrap it:
`tasks.mlp.mlp.hidden=[[256,256]]` is an axis with one value.
"""

from __future__ import annotations

import itertools

import yaml

from harness.typed_config import ConfigError, parse_overrides

RUN_LEVEL_LISTS = frozenset({"method", "seeds", "task"})


def _as_argument(key: str, value: object) -> str:
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def expand_grid(args: list[str]) -> list[list[str]]:
    """Argument lists, one per grid point, in a stable order (first axis varies slowest)."""
    fixed: list[str] = []
    axes: list[tuple[str, list[object]]] = []
    for arg, (key, value) in zip(args, parse_overrides(args)):
        if isinstance(value, list) and key not in RUN_LEVEL_LISTS:
            if not value:
                raise ConfigError(f"{arg} is an empty sweep axis: give it at least one value, e.g. {key}=[a,b].")
            axes.append((key, value))
        else:
            fixed.append(arg)
    if not axes:
        return [fixed]
    keys = [key for key, _ in axes]
    return [fixed + [_as_argument(k, v) for k, v in zip(keys, point)]
            for point in itertools.product(*(values for _, values in axes))]
