"""Coordination between workers sharing one results directory (one machine or a cluster).

- A *cell claim* is an exclusive, non-blocking `flock` on `<cell>/.lock`, held for as
  long as the cell trains. The kernel (or the NFS lock manager) drops it when its
  worker dies, however it dies, so a killed worker never leaves a cell blocked: there
  is no stale marker to recover. Beside the lock, `running.json` names the worker
  (host, pid, start time) for `bench status`; a leftover one from a killed worker is
  ignored, because the lock, not the file, decides.
- The *index lock* serialises rebuilds of results/index.parquet: each rebuild reads the
  records inside the lock, so the last one to run lists every record written before it.

The results directory must support POSIX locks (local disks, NFSv4, Lustre mounted
with `flock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCK_NAME = ".lock"
MARKER_NAME = "running.json"


@dataclass
class CellClaim:
    """The exclusive right to run one cell; `release` (or leaving `with`) gives it back."""

    handle: IO[str]
    marker: Path

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.marker.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()

    def __enter__(self) -> CellClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_claim(cell_dir: Path) -> CellClaim | None:
    """Claim the cell in `cell_dir`, or None when a live worker holds it."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    handle = open(cell_dir / LOCK_NAME, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    marker = cell_dir / MARKER_NAME
    marker.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}))
    return CellClaim(handle, marker)


def is_running(cell_dir: Path) -> bool:
    """True while some live worker holds the cell's lock."""
    path = cell_dir / LOCK_NAME
    if not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


@contextlib.contextmanager
def index_lock(root: Path) -> Iterator[None]:
    """Hold the results directory's index lock (blocking) for the duration of the block."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".index.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
