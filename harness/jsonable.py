"""Strict JSON and run ids: the one serialisation that is stored and hashed.

- `to_jsonable`: any value a record may hold -> plain JSON types; NaN and infinity become
  null, so records stay strict JSON.
- `canonical_json` / `run_id`: the hash of a resolved cell config that names its directory,
  so re-running a suite finds the cells already done (resume).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

_RUN_ID_LEN = 16


def canonical_json(obj: Any) -> str:
    """The one serialisation that is hashed: sorted keys, no whitespace, strict JSON.

    `to_jsonable` runs first, so tuples and lists (and dataclasses and dicts) with the
    same content serialise alike.
    """
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id(cell: Mapping[str, Any] | Any) -> str:
    """First 16 hex chars of sha256 of the canonical JSON of the resolved cell config.

    Independent of dict order, of process and of PYTHONHASHSEED, so the same cell gets
    the same directory on every run and a finished cell is found again (resume).
    Note that 1 and 1.0 are different configs here; the config layer should resolve
    types before hashing.
    """
    return hashlib.sha256(canonical_json(cell).encode("utf-8")).hexdigest()[:_RUN_ID_LEN]


def to_jsonable(obj: Any) -> Any:
    """Convert `obj` to plain JSON types; NaN and +-inf become None.

    Handles dicts (keys made str), lists, tuples, sets (sorted, so they hash stably),
    dataclasses, enums, paths, dates, and numpy / torch scalars and arrays (duck-typed
    through `.tolist()` / `.item()`, so neither library is imported here). Anything else
    is a TypeError naming the type: a record must not hold a value we cannot read back.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):  # numpy.float64 is a float subclass and lands here too
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [to_jsonable(v) for v in obj]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    tolist = getattr(obj, "tolist", None)  # numpy scalars/arrays, torch tensors
    if callable(tolist):
        return to_jsonable(tolist())
    item = getattr(obj, "item", None)
    if callable(item):
        return to_jsonable(item())
    raise TypeError(f"cannot store a value of type {type(obj).__module__}.{type(obj).__qualname__} "
                    f"in a record: {obj!r:.80}. Convert it to a number, string, list or dict first.")
