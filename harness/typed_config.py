"""Plain values (YAML, `key=value` arguments) -> typed, validated, frozen dataclasses.

The generic machinery under every configuration of the harness (suites, claims, methods' and
tasks' Config dataclasses): `parse_overrides` reads `key=value` arguments as YAML values,
`build_dataclass` builds a dataclass strictly (unknown keys refused with a did-you-mean, values
coerced to the declared type by `coerce`, NaN and infinity refused for every float, a field's
`metadata["range"] = (low, high)` checked, its `__post_init__` errors turned into ConfigError),
and every problem is one `ConfigError` naming the key and the fix. It is apart from
harness/config.py, which knows what a suite holds, so that the layers below the suite (the
loops, the lm-eval bridge) and the claims can build their dataclasses without the suite's rules.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.registry import did_you_mean


class ConfigError(ValueError):
    """A configuration problem, said in one message that names the key and the fix."""


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """['a.b=1', 'method=[x,y]'] -> [('a.b', 1), ('method', ['x', 'y'])]."""
    parsed = []
    for arg in args:
        key, sep, text = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"argument {arg!r} is not of the form key=value (e.g. method=backprop).")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        parsed.append((key.strip(), value))
    return parsed


def build_dataclass(cls: type, values: dict[str, Any] | None, where: str) -> Any:
    """Build `cls` from `values` strictly: unknown keys, wrong types and values its
    `__post_init__` rejects all become a ConfigError naming `where.key`."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping of keys, got {values!r}.")
    values = dict(values)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key {where}.{key}.{did_you_mean(key, list(fields))} "
                f"Keys of {where}: {', '.join(fields)}."
            )
        kwargs[key] = coerce(value, hints[key], f"{where}.{key}")
        _check_range(kwargs[key], fields[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _check_range(value: Any, spec: dataclasses.Field, where: str) -> None:
    """A field's declared `metadata["range"]` = (low, high), inclusive, None for an open end."""
    low, high = spec.metadata.get("range", (None, None))
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"between {low} and {high}" if low is not None and high is not None else (
            f"at least {low}" if low is not None else f"at most {high}")
        raise ConfigError(f"{where} must be {span}, got {value!r}.")


def _sweep_hint(value: Any) -> str:
    return " To try several values, use `bench sweep` with the same arguments." if isinstance(value, list) else ""


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the declared type, or say why it cannot be."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {args}.")
    if origin is Literal:
        if value not in args:
            hint = did_you_mean(str(value), [str(a) for a in args])
            raise ConfigError(f"{where} must be one of {', '.join(map(str, args))}; got {value!r}.{hint}")
        return value
    if origin in (tuple, list):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}.")
        item_type = args[0] if args else Any
        items = [coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}.")
        return value
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return build_dataclass(annotation, value, where)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "false", "no", "off"):
            return value.lower() in ("true", "yes", "on")
        raise ConfigError(f"{where} must be true or false, got {value!r}.{_sweep_hint(value)}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if float(value).is_integer() else int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where} must be an integer, got {value!r}.{_sweep_hint(value)}")
    if annotation is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = math.inf
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where} must be a number, got {value!r}.{_sweep_hint(value)}")
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be a finite number, got {value!r}.")
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}.")
    if annotation is Path:
        return Path(str(value))
