"""The results index: records flattened into the two parquet tables reports and claims read.

index.parquet: one row per record, nested dicts as dotted columns (`final.test.accuracy`),
lists as JSON strings, the curve left out; curves.parquet: one row per curve point with the
identifying columns. A column whose values have different types across records is stored
as strings, so pyarrow can always write it.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported only where the index is built or read
    import pandas

# Columns that identify a run; they lead both tables and exist even when empty.
ID_COLUMNS = ("run_id", "suite", "task_label", "method", "seed")
INDEX_ID_COLUMNS = (*ID_COLUMNS, "task", "status", "error")


def flatten(obj: Mapping[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested dicts -> dotted keys (`final.test.accuracy`); lists -> JSON strings."""
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flatten(value, f"{name}.", out)
        elif isinstance(value, list):
            out[name] = json.dumps(value, sort_keys=True, separators=(",", ":"))
        else:
            out[name] = value
    return out


def label(value: Any) -> Any:
    """A scalar for an identifying column: a dict's `name`, or its JSON."""
    if isinstance(value, Mapping):
        return value.get("name", json.dumps(value, sort_keys=True, separators=(",", ":")))
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return value


def frame(rows: list[dict[str, Any]], leading: tuple[str, ...]) -> pandas.DataFrame:
    """Rows -> a DataFrame pyarrow can write: leading columns first, mixed types as str."""
    import pandas as pd

    columns = list(leading) + sorted({c for row in rows for c in row} - set(leading))
    df = pd.DataFrame(rows, columns=columns)
    for col in df.columns:
        if df[col].dtype != object:
            continue
        values = df[col].dropna()
        kinds = {"number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v)
                 for v in values}
        if len(kinds) > 1:  # e.g. lr=0.001 in one record and lr="auto" in another
            df[col] = df[col].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                                  else str(v))
    return df


def empty_frame(columns: tuple[str, ...]) -> pandas.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype="Int64" if c == "seed" else "string") for c in columns})


def parquet_bytes(df: pandas.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, engine="pyarrow", index=False)
    return buf.getvalue()
