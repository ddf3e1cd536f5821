"""One registry for methods and one for tasks, filled by decorators.

A paradigm is one file in `methods/` that decorates its class with
`@register_method("name")`; a task is a class in `suites/tasks/` decorated with
`@register_task("name")`. The name is the one used for the file, the config key,
the results and the report column. Modules whose file name starts with "_"
(e.g. `methods/_template.py`) are not imported.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any, Callable, TypeVar

from harness.interface import REQUIRED_METHOD_MEMBERS, TASK_KINDS

T = TypeVar("T")

_METHODS: dict[str, type] = {}
_TASKS: dict[str, type] = {}
_discovered = False


class RegistryError(KeyError):
    """An unknown name; the message lists the closest known names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def did_you_mean(name: str, known: list[str]) -> str:
    """' Did you mean "x"?' for the closest known name, or '' when none is close."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f' Did you mean "{close[0]}"?' if close else ""


def _register(table: dict[str, type], kind: str, name: str,
              check: Callable[[Any, str], None] | None = None) -> Callable[[T], T]:
    def decorate(cls: T) -> T:
        if name in table and table[name] is not cls:
            raise ValueError(f"{kind} {name!r} is registered twice: {table[name]!r} and {cls!r}")
        if check is not None:
            check(cls, name)
        table[name] = cls  # type: ignore[assignment]
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def _check_method(cls: type, name: str) -> None:
    """Refuse, at import, a method that lacks part of the contract (harness/interface.py).

    `memory_buffers` is required because a method without it would leave its optimizer
    state out of the memory ledger silently.
    """
    missing = [m for m in REQUIRED_METHOD_MEMBERS if not hasattr(cls, m)]
    if not (hasattr(cls, "step") and hasattr(cls, "predict")) and not (hasattr(cls, "act") and hasattr(cls, "observe")):
        missing.append("step and predict (or act and observe, for control)")
    if missing:
        raise TypeError(f"method {name!r} ({cls.__module__}.{cls.__qualname__}) lacks {', '.join(missing)}: "
                        "see methods/_template.py for every member a method defines.")
    unknown = set(cls.supports) - set(TASK_KINDS)
    if unknown:
        raise TypeError(f"method {name!r} supports unknown task kinds {sorted(unknown)}; kinds: {', '.join(TASK_KINDS)}.")


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator: make a Method available under `name` (checked against the contract)."""
    return _register(_METHODS, "method", name, _check_method)


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator: make a Task available under `name`."""
    return _register(_TASKS, "task", name)


def discover() -> None:
    """Import every public module of `methods` and `suites.tasks` once."""
    global _discovered
    if _discovered:
        return
    for package_name in ("methods", "suites.tasks"):
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")
    _discovered = True


def _lookup(table: dict[str, type], kind: str, name: str) -> Any:
    discover()
    if name not in table:
        known = sorted(table)
        raise RegistryError(
            f"Unknown {kind} {name!r}.{did_you_mean(name, known)} Known {kind}s: {', '.join(known)}."
        )
    return table[name]


def get_method(name: str) -> type:
    return _lookup(_METHODS, "method", name)


def get_task(name: str) -> type:
    return _lookup(_TASKS, "task", name)


def method_names() -> list[str]:
    discover()
    return sorted(_METHODS)


def task_names() -> list[str]:
    discover()
    return sorted(_TASKS)
