"""The results store: run ids, atomic records, resume, and the parquet index.

Layout (the only place it is written down in code):

    <root>/<suite>/<run_id>/record.json     one run, written by the launcher when the cell ends
    <root>/<suite>/<run_id>/model.pt        the selected model state of an LM run (lm-eval, fine-tuning)
    <root>/claims/<claim_id>.json           a claim's verdict, written by `bench claims verify`
    <root>/index.parquet                    one row per record, rebuilt from the records
    <root>/curves.parquet                   one row per curve point, rebuilt from the records

Nothing else builds these paths: the runner, the claims, the report and the lm-eval bridge
ask this module.

The records are the truth; the two parquet files are caches that reports and claims
read and that `Store.rebuild_index` can always regenerate.

Rules this module keeps, because a benchmark that runs for days must survive a kill,
a full disk and a half-written file without losing or silently replacing results:

- The run id is a hash of the resolved cell config, so re-running a suite finds the
  cells already done (resume) and any change to the config is a new run.
- A record is written to a temporary file in its own directory, fsynced and renamed
  over `record.json`: a reader sees the old record or the new one, never half of one.
- A record never holds NaN or infinity: `to_jsonable` turns them into None and JSON
  is written with `allow_nan=False`, so the files stay strict JSON.
- A record that cannot be parsed is set aside (renamed, logged, listed in
  `Store.set_aside`), never deleted or overwritten, and its cell counts as not run.
- Readers never change a record: a `Store(root, read_only=True)` (bench status, claims
  list) and the index readers (`read_index`, `read_curves`, used by reports) skip an
  unreadable record (listed in `Store.unreadable`) instead of setting it aside, and
  need no write access. A stale or unreadable parquet cache is rebuilt from the records
  in memory and written back only when the directory is writable and nobody holds the
  index lock.
- Every OS error on the way to disk becomes a `StoreError` that names the path, the
  cause and what to do.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.atomic_io import StoreError, atomic_write, check_readable_dir, check_writable_dir, store_error
from harness.index_table import cache_stale, parquet_bytes, read_cache, tables
from harness.jsonable import to_jsonable
from harness.locks import LOCK_NAME, MARKER_NAME, LockTimeout, index_lock, try_claim
from harness.record import Record, RecordError, parse_record

if TYPE_CHECKING:  # pandas is imported only where the index is built or read
    import pandas

log = logging.getLogger(__name__)

RECORD_NAME = "record.json"
MODEL_STATE_NAME = "model.pt"
VERDICTS_DIR = "claims"
INDEX_NAME = "index.parquet"
CURVES_NAME = "curves.parquet"


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


Version = tuple[int, int] | None  # a record file's (inode, mtime ns): changes with every write



def _utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")


# --------------------------------------------------------------------------- the store


@dataclass
class Store:
    """Records under `root`, one directory per run; see the module docstring for the layout.

    `set_aside` lists every corrupt record this Store has renamed out of the way, so the
    CLI can tell the user which cells are being re-run and where the old bytes went.
    """

    root: Path
    read_only: bool = False  # never rename or write anything: for status, reports, claims list
    set_aside: list[Path] = field(default_factory=list, init=False)
    unreadable: list[Path] = field(default_factory=list, init=False)  # skipped, left in place

    def __post_init__(self) -> None:
        if isinstance(self.root, str) and not self.root.strip():  # Path("") would be the current directory
            raise StoreError("results_dir is empty: name a directory, e.g. results_dir=results.")
        self.root = Path(self.root)

    # paths ------------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    @property
    def curves_path(self) -> Path:
        return self.root / CURVES_NAME

    def record_path(self, suite: str, run_id: str) -> Path:
        """`<root>/<suite>/<run_id>/record.json`; both parts must be plain names, so a
        record can never land outside the root."""
        for what, name in (("suite", suite), ("run_id", run_id)):
            if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
                raise ValueError(f"{what} {name!r} cannot be a results directory name: use letters, "
                                 "digits and ._=+- only, not starting with a dot.")
        return self.root / suite / run_id / RECORD_NAME

    def run_dir(self, suite: str, run_id: str) -> Path:
        return self.record_path(suite, run_id).parent

    def find_run(self, run_id: str) -> tuple[str, Path]:
        """(suite, record path) of run `run_id` in any suite; StoreError naming the fix when absent."""
        if not isinstance(run_id, str) or not _SAFE_NAME.match(run_id):
            raise StoreError(f"{run_id!r} is not a run id (the 16 hex characters of a run's directory name).")
        matches = sorted(self.root.glob(f"*/{run_id}/{RECORD_NAME}"))
        if not matches:
            raise StoreError(f"no run {run_id!r} under {self.root.resolve()}: pass results_dir=DIR, the "
                             "results_dir of the `bench run` that trained it (run ids are the directory names).")
        return matches[0].parent.parent.name, matches[0]

    def model_state_path(self, suite: str, run_id: str) -> Path:
        return self.run_dir(suite, run_id) / MODEL_STATE_NAME

    def save_model_state(self, suite: str, run_id: str, state: Mapping[str, Any]) -> str:
        """A model's weights (tensors, moved to the CPU) beside the run's record, written atomically
        and fsynced like a record; returns the file name the record refers to."""
        import torch  # the store itself needs no torch; only model checkpoints do

        buffer = io.BytesIO()
        torch.save({k: v.detach().to("cpu") for k, v in state.items()}, buffer)
        atomic_write(self.model_state_path(suite, run_id), buffer.getvalue())
        return MODEL_STATE_NAME

    def load_model_state(self, suite: str, run_id: str) -> dict[str, Any] | None:
        """The saved weights of a run, or None when it has none."""
        import torch

        path = self.model_state_path(suite, run_id)
        if not path.is_file():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    # verdicts ---------------------------------------------------------------

    @property
    def verdicts_dir(self) -> Path:
        return self.root / VERDICTS_DIR

    def verdict_path(self, claim_id: str) -> Path:
        if not isinstance(claim_id, str) or not _SAFE_NAME.match(claim_id):
            raise ValueError(f"claim id {claim_id!r} cannot be a file name: use letters, digits and ._=+- only.")
        return self.verdicts_dir / f"{claim_id}.json"

    def write_verdict(self, claim_id: str, document: Mapping[str, Any]) -> Path:
        """A claim's verdict document, atomically, as `claims/<claim_id>.json`."""
        return self.write_json(str(self.verdict_path(claim_id).relative_to(self.root)), document)

    def read_verdicts(self) -> dict[str, dict[str, Any] | str]:
        """Every verdict file by claim id: its document, or why it could not be read."""
        out: dict[str, dict[str, Any] | str] = {}
        for path in sorted(self.verdicts_dir.glob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as err:
                out[path.stem] = f"unreadable verdict file {path} ({err}); run `bench claims verify {path.stem}` again"
                continue
            out[path.stem] = document if isinstance(document, dict) else f"{path} holds no verdict object"
        return out

    # checks -----------------------------------------------------------------

    def check_writable(self) -> None:
        """Fail before hours of training, not after: create the root if needed and write,
        fsync and remove a small probe file in it."""
        check_writable_dir(self.root)

    def check_readable(self) -> None:
        """A results directory to read must be a directory we can list (it may be read-only)."""
        check_readable_dir(self.root)

    def sweep_stale(self) -> list[Path]:
        """Remove temp files and `running.json` markers that killed processes left behind.

        Only those older than the newest completed record, and in a cell only while holding
        its lock (so never a live worker's), at the root only while holding the index lock.
        Returns what was removed; failures to remove are left for the next sweep.
        """
        records = list(self.root.glob(f"*/*/{RECORD_NAME}"))
        try:
            newest = max((p.stat().st_mtime_ns for p in records), default=None)
        except OSError:
            return []
        if newest is None:
            return []

        def stale(path: Path) -> bool:
            try:
                return path.stat().st_mtime_ns < newest
            except OSError:
                return False

        removed: list[Path] = []

        def remove(paths: list[Path]) -> None:
            for path in paths:
                try:
                    path.unlink()
                    removed.append(path)
                except OSError:
                    pass

        cells = {p.parent for p in self.root.glob("*/*/*.tmp")} | {p.parent for p in self.root.glob(f"*/*/{MARKER_NAME}")}
        for cell_dir in sorted(cells):
            leftovers = [p for p in [*cell_dir.glob(".*.tmp"), cell_dir / MARKER_NAME] if p.exists() and stale(p)]
            if not leftovers or not (cell_dir / LOCK_NAME).exists():
                continue
            try:
                claim = try_claim(cell_dir, marker=False)
            except OSError:
                continue
            if claim is not None:
                with claim:
                    remove(leftovers)
        leftovers = [p for p in [*self.root.glob(".*.tmp"), *self.verdicts_dir.glob(".*.tmp")] if stale(p)]
        if leftovers:
            try:
                with index_lock(self.root, timeout=0):
                    remove(leftovers)
            except (LockTimeout, OSError):
                pass
        for path in removed:
            log.info("removed %s, left behind by a killed process", path)
        return removed

    # records ----------------------------------------------------------------

    def load(self, suite: str, run_id: str) -> Record | None:
        """The stored record, or None when the cell has to be (re-)run: absent, or corrupt or
        of the wrong shape (then set aside, see `_read`)."""
        return self._read(self.record_path(suite, run_id))

    def record_version(self, suite: str, run_id: str) -> Version:
        """Changes whenever the record is (re)written, whoever writes it; None when there is none."""
        try:
            stat = self.record_path(suite, run_id).stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def write(self, suite: str, run_id: str, record: Record | Mapping[str, Any]) -> Path:
        """Write `record` atomically to its `record.json` and return the path.

        A dict is checked against the record schema first (RecordError names the field);
        the record is serialised before the disk is touched, so a value that cannot be
        stored leaves nothing behind; any OSError leaves the previous record as it was and
        raises StoreError.
        """
        path = self.record_path(suite, run_id)
        checked = record if isinstance(record, Record) else parse_record(to_jsonable(record))  # NaN -> null first
        text = json.dumps(to_jsonable(checked.to_dict()), indent=1, sort_keys=True, allow_nan=False) + "\n"
        atomic_write(path, text.encode("utf-8"))
        return path

    def write_json(self, relative: str, obj: Any) -> Path:
        """Write any JSON-able `obj` atomically to `root/relative` (e.g. claim verdicts)."""
        path = self.root / relative
        text = json.dumps(to_jsonable(obj), indent=1, sort_keys=True, allow_nan=False) + "\n"
        atomic_write(path, text.encode("utf-8"))
        return path

    def records(self, suite: str | None = None, set_aside: bool = True) -> list[Record]:
        """Every readable record (of one suite, or all), sorted by path; corrupt ones and ones
        of the wrong shape are set aside (unless `set_aside` is False or the store is
        read-only: then only skipped) ."""
        pattern = f"{suite}/*/{RECORD_NAME}" if suite is not None else f"*/*/{RECORD_NAME}"
        if suite is not None:
            self.record_path(suite, "x")  # validate the name
        out = []
        for path in sorted(self.root.glob(pattern)):
            record = self._read(path, set_aside)
            if record is not None:
                out.append(record)
        return out

    def _read(self, path: Path, set_aside: bool = True) -> Record | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise store_error(path, err, doing="read") from err
        set_aside = set_aside and not self.read_only
        try:
            record = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
            self._set_aside(path, f"it is not valid JSON ({err})", set_aside)
            return None
        if not isinstance(record, dict):
            self._set_aside(path, f"it holds a JSON {type(record).__name__}, not an object", set_aside)
            return None
        # The directory is where the record lives; fill the ids from it if the record lacks them.
        record.setdefault("suite", path.parent.parent.name)
        record.setdefault("run_id", path.parent.name)
        try:
            return parse_record(record)
        except RecordError as err:  # e.g. {"status": "completed"}: never counted as a finished cell
            self._set_aside(path, f"it is not a record of this harness ({err})", set_aside)
            return None

    def _set_aside(self, path: Path, why: str, rename: bool = True) -> Path:
        """Rename a corrupt record to `record.json.corrupt-<UTC stamp>` (with a counter if
        that name is taken), so its cell re-runs while the bytes stay for inspection.
        With `rename` False (readers) the record stays where it is, listed in `unreadable`."""
        if not rename:
            log.warning("record %s is unreadable (%s); skipped (a `bench run` of its suite sets it aside "
                        "and runs the cell again)", path, why)
            self.unreadable.append(path)
            return path
        base = path.with_name(f"{path.name}.corrupt-{_utc_stamp()}")
        target, n = base, 1
        while target.exists():  # never overwrite an earlier set-aside file
            target, n = base.with_name(f"{base.name}.{n}"), n + 1
        try:
            os.rename(path, target)
        except OSError as err:
            raise StoreError(f"record {path} is corrupt ({why}) and could not be set aside "
                             f"({err.strerror or err}). Move it away by hand and run again.") from err
        log.warning("record %s is corrupt (%s); set aside as %s, its cell will be re-run", path, why, target)
        self.set_aside.append(target)
        return target

    # index ------------------------------------------------------------------

    def rebuild_index(self) -> Path:
        """Rebuild `index.parquet` and `curves.parquet` from the records; return the index path.

        index: one row per record; nested dicts flattened to dotted columns
        (`final.test.accuracy`, `config.method.lr`), lists as JSON strings, the curve left
        out. curves: one row per curve point, with the identifying columns. A column whose
        values have different types across records is stored as strings. Rebuilds by
        concurrent workers are serialised (harness/locks.py), and each reads the records
        inside the lock, so the last rebuild lists every record written before it.
        A lock held too long, or a disk that refuses the write, is a StoreError naming the
        path (the records themselves are untouched).
        """
        try:
            with index_lock(self.root):
                index, curves = self._frames(set_aside=True)
                self._write_frames(index, curves)
        except LockTimeout as err:
            raise StoreError(str(err)) from err
        except OSError as err:  # the lock file itself (a read-only or full results directory)
            raise store_error(Path(err.filename or self.root / INDEX_NAME), err) from err
        return self.index_path

    def _frames(self, set_aside: bool) -> tuple[pandas.DataFrame, pandas.DataFrame]:
        """The index and curves tables, built from the records in memory."""
        return tables(self.records(set_aside=set_aside))

    def _write_frames(self, index: pandas.DataFrame, curves: pandas.DataFrame) -> None:
        # Curves first: the index is what readers check for, so it appears last.
        atomic_write(self.curves_path, parquet_bytes(curves))
        atomic_write(self.index_path, parquet_bytes(index))

    def _index_stale(self) -> bool:
        """Missing, unreadable, older than a record, or listing a different number of records
        (one was deleted)."""
        return cache_stale(self.index_path, self.curves_path, self.root, f"*/*/{RECORD_NAME}")

    def _cached(self, path: Path) -> pandas.DataFrame | None:
        """A parquet cache as a DataFrame, or None when it is stale or unreadable."""
        return None if self._index_stale() else read_cache(path)

    def _fresh_frames(self) -> tuple[pandas.DataFrame, pandas.DataFrame]:
        """Both tables from the records, without changing any record; written back as the
        cache when this store may write and the index lock is free right now."""
        index, curves = self._frames(set_aside=False)
        if not self.read_only:
            try:
                with index_lock(self.root, timeout=0):
                    self._write_frames(index, curves)
            except (LockTimeout, OSError, StoreError) as err:  # a cache we cannot write is no error
                log.info("results cache under %s not refreshed: %s", self.root, err)
        return index, curves

    def read_index(self) -> pandas.DataFrame:
        """The index as a DataFrame; rebuilt from the records when missing, stale or unreadable."""
        cached = self._cached(self.index_path)
        return cached if cached is not None else self._fresh_frames()[0]

    def read_curves(self) -> pandas.DataFrame:
        """The long-format curves table; rebuilt from the records when missing, stale or unreadable."""
        cached = self._cached(self.curves_path)
        return cached if cached is not None else self._fresh_frames()[1]
