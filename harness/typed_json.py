"""Strict JSON <-> frozen dataclasses, for the typed record (harness/record.py).

`decode(value, tp, path, error)` checks a JSON value against a type annotation (dataclasses,
unions, Literals, lists, dicts, scalars; NaN is not a number here) and builds the typed form;
every problem is `error(path, problem)`, where `path` names the place (`record.final.test`).
Unknown keys are refused: only what the harness writes is read. `encode(value)` is the inverse.
Field metadata: `key` (the JSON name, when it differs), `omit` (left out of the JSON when None).
A dataclass may define `_omitted()` (fields to leave out) and `_check_json(data, path, error)`
(extra checks on its JSON object before its fields are decoded).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

ErrorFactory = Callable[[str, str], Exception]


def what(value: Any) -> str:
    """How a JSON value is named in an error message."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}
    return "an object" if isinstance(value, Mapping) else names.get(type(value), type(value).__name__)


def describe(tp: Any) -> str:
    """How a type annotation is named in an error message."""
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return f"an object ({tp.__name__})"
    origin = typing.get_origin(tp)
    return {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(origin or tp, "any value")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(value: Any, tp: Any, path: str, error: ErrorFactory, override: dict[str, Any] | None = None) -> Any:
    """`value` checked against `tp` and built into it; `override` replaces the annotations of
    the top object's fields (e.g. the one `final` class a record's kind calls for)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1 and (dataclasses.is_dataclass(options[0]) or typing.get_origin(options[0])):
            return decode(value, options[0], path, error)  # a section or container: its own errors, deeper
        for option in options:  # scalars: the first that fits
            try:
                return decode(value, option, path, error)
            except Exception:  # noqa: BLE001 (the caller's error type: try the next option)
                continue
        raise error(path, f"expected {describe(tp)}, got {what(value)}")
    if origin is Literal:
        if value not in args or isinstance(value, bool):
            raise error(path, f"expected {describe(tp)}, got {value!r:.60}")
        return value
    if dataclasses.is_dataclass(tp):
        return _decode_object(value, tp, path, error, override or {})
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and math.isfinite(v)),
          str: lambda v: isinstance(v, str), type(None): lambda v: v is None,
          list: lambda v: isinstance(v, list), dict: lambda v: isinstance(v, Mapping)}[origin or tp]
    if not ok(value):
        raise error(path, f"expected {describe(tp)}, got {what(value)}")
    if origin is list:
        return [decode(v, args[0], f"{path}[{i}]", error) for i, v in enumerate(value)]
    if origin is dict:
        for key in value:
            if not isinstance(key, str):
                raise error(path, f"expected string keys, got {key!r:.40}")
        return {k: decode(v, args[1], f"{path}.{k}", error) for k, v in value.items()}
    return value


def _decode_object(value: Any, cls: type, path: str, error: ErrorFactory, override: dict[str, Any]) -> Any:
    if not isinstance(value, Mapping):
        raise error(path, f"expected an object ({cls.__name__}), got {what(value)}")
    fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in value if k not in fields)
    if unknown:
        raise error(f"{path}.{unknown[0]}", f"unknown field (a {cls.__name__} holds {', '.join(fields)})")
    for key, f in fields.items():
        if key not in value and not f.metadata.get("omit"):
            raise error(f"{path}.{key}", f"missing (expected {describe(_hints(cls)[f.name])})")
    check = getattr(cls, "_check_json", None)  # the dataclass's own rules on its JSON (see the docstring)
    if check is not None:
        check(value, path, error)
    kwargs = {f.name: decode(value[key], override.get(f.name, _hints(cls)[f.name]), f"{path}.{key}", error)
              for key, f in fields.items() if key in value}
    return cls(**kwargs)


def encode(value: Any) -> Any:
    """A dataclass tree -> the JSON value `decode` reads back."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        omitted = value._omitted() if hasattr(value, "_omitted") else set()
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name in omitted or (item is None and f.metadata.get("omit")):
                continue
            out[f.metadata.get("key", f.name)] = encode(item)
        return out
    if isinstance(value, Mapping):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value
