"""Formatting rules every report table shares: unknown numbers show as "—", never as 0."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

MISSING = "—"



def missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def num(value: Any, spec: str) -> str:
    """A number in `spec`, or "—" where it is unknown (never 0)."""
    return MISSING if missing(value) else format(value, spec)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def plain(value: Any) -> Any:
    """numpy scalars from parquet -> Python scalars, so records look as they did in JSON."""
    return value.item() if isinstance(value, np.generic) else value


def short(value: Any) -> str:
    """A number to 4 significant digits (other values as text), "—" when null."""
    if missing(value):
        return MISSING
    return format(value, ".4g") if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
