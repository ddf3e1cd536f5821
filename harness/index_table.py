"""The results index: records flattened into the two parquet tables reports and claims read.

index.parquet: one row per record, nested dicts as dotted columns (`final.test.accuracy`),
lists as JSON strings, the curve left out; curves.parquet: one row per curve point with the
identifying columns. A column whose values have different types across records is stored
as strings, so pyarrow can always write it. `cache_stale` and `read_cache` tell whether the
parquet files on disk still match the records and read them back; where the files live is
harness/store.py's to say.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.record import Record

if TYPE_CHECKING:  # pandas is imported only where the index is built or read
    import pandas

log = logging.getLogger(__name__)

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


def tables(records: Iterable[Record]) -> tuple[pandas.DataFrame, pandas.DataFrame]:
    """The index and curves tables of `records`."""
    index_rows: list[dict[str, Any]] = []
    curve_rows: list[dict[str, Any]] = []
    for typed in records:
        record = typed.to_dict()
        curve = record.get("curve") or []
        index_rows.append(flatten({k: v for k, v in record.items() if k != "curve"}))
        ids = {c: label(record.get(c)) for c in ID_COLUMNS}
        for point in curve:
            if isinstance(point, Mapping):
                curve_rows.append({**flatten(point), **ids})
    index = frame(index_rows, INDEX_ID_COLUMNS) if index_rows else empty_frame(INDEX_ID_COLUMNS)
    curves = frame(curve_rows, ID_COLUMNS) if curve_rows else empty_frame((*ID_COLUMNS, "step"))
    return index, curves


def cache_stale(index_path: Path, curves_path: Path, root: Path, record_pattern: str) -> bool:
    """Whether the two parquet files under `root` must be rebuilt from the records (the files
    matching `record_pattern`): missing, unreadable, older than a record, or listing a
    different number of records (one was deleted)."""
    if not (index_path.exists() and curves_path.exists()):
        return True
    import pyarrow
    import pyarrow.parquet as pq

    try:
        built = min(index_path.stat().st_mtime_ns, curves_path.stat().st_mtime_ns)
        paths = list(root.glob(record_pattern))
        if any(p.stat().st_mtime_ns > built for p in paths):
            return True
        return pq.ParquetFile(index_path).metadata.num_rows != len(paths)
    except (OSError, ValueError, pyarrow.ArrowException) as err:  # a garbage cache: rebuild it
        log.warning("results cache %s is unreadable (%s); rebuilding it from the records", index_path, err)
        return True


def read_cache(path: Path) -> pandas.DataFrame | None:
    """A parquet cache as a DataFrame, or None when it is unreadable."""
    import pandas as pd
    import pyarrow

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pyarrow.ArrowException) as err:
        log.warning("results cache %s is unreadable (%s); rebuilding it from the records", path, err)
        return None
