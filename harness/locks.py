"""Coordination between workers sharing one results directory (one machine or a cluster).

- A *cell claim* is an exclusive, non-blocking `flock` on `<cell>/.lock`, held for as
  long as the cell trains. The kernel (or the NFS lock manager) drops it when its
  worker dies, however it dies, so a killed worker never leaves a cell blocked: there
  is no stale marker to recover. Beside the lock, `running.json` names the worker
  (host, pid, start time) for `bench status`; a leftover one from a killed worker is
  ignored, because the lock, not the file, decides (and `Store.sweep_stale` removes it).
- Readers (`bench status`) only ever take a *shared* lock, for an instant, on a file
  they open read-only: they need no write access, and a claim that meets a reader's
  shared lock waits a moment for it (`CLAIM_PATIENCE`) instead of calling the cell busy.
- The *index lock* serialises rebuilds of results/index.parquet: each rebuild reads the
  records inside the lock, so the last one to run lists every record written before it.
  Its holder writes its host and pid into the lock file; a waiter gives up after
  `LOCK_TIMEOUT_S` seconds (or $PARADIGM_BENCH_LOCK_TIMEOUT) with a `LockTimeout` naming
  that holder, rather than hang behind a stopped or hung process.

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
INDEX_LOCK_NAME = ".index.lock"
CLAIM_PATIENCE_S = 0.5  # how long a claim waits out a reader's shared lock before calling the cell busy
LOCK_TIMEOUT_S = 120.0  # how long to wait for the index lock (a rebuild takes seconds)
_POLL_S = 0.05


class LockTimeout(TimeoutError):
    """A lock stayed held past its timeout; the message names the holder and what to do."""


@dataclass
class CellClaim:
    """The exclusive right to run one cell; `release` (or leaving `with`) gives it back."""

    handle: IO[str]
    marker: Path | None

    def release(self) -> None:
        if self.marker is not None:
            with contextlib.suppress(FileNotFoundError):
                self.marker.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()

    def __enter__(self) -> CellClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _flock_patiently(handle: IO[str], mode: int, patience: float) -> bool:
    """Take `mode` (non-blocking), retrying for `patience` seconds; False when still held."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)


def try_claim(cell_dir: Path, marker: bool = True) -> CellClaim | None:
    """Claim the cell in `cell_dir`, or None when a live worker holds it.

    `marker=False` takes the lock without writing `running.json` (for housekeeping that
    must not look like a worker to `bench status`).
    """
    cell_dir.mkdir(parents=True, exist_ok=True)
    handle = open(cell_dir / LOCK_NAME, "a")
    if not _flock_patiently(handle, fcntl.LOCK_EX, CLAIM_PATIENCE_S):
        handle.close()
        return None
    if not marker:
        return CellClaim(handle, None)
    path = cell_dir / MARKER_NAME
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}))
    return CellClaim(handle, path)


def is_running(cell_dir: Path) -> bool:
    """True while some live worker holds the cell's lock.

    Read-only: opens the lock file for reading and takes a shared lock for an instant, so
    it works on a results directory this user cannot write; an unreadable lock file
    counts as not running.
    """
    try:
        handle = open(cell_dir / LOCK_NAME)
    except OSError:  # absent (never claimed) or unreadable
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:  # a filesystem without locks: we cannot tell, so say not running
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def lock_timeout() -> float:
    """The index-lock timeout: $PARADIGM_BENCH_LOCK_TIMEOUT seconds, or LOCK_TIMEOUT_S."""
    try:
        return float(os.environ.get("PARADIGM_BENCH_LOCK_TIMEOUT", LOCK_TIMEOUT_S))
    except ValueError:
        return LOCK_TIMEOUT_S


def _holder(path: Path) -> str:
    """Who holds the lock at `path`, as its holder wrote it ("pid 12 on host a since ...")."""
    try:
        info = json.loads(path.read_text() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} on host {info['host']} (since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process (it wrote no holder information)"


@contextlib.contextmanager
def index_lock(root: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the results directory's index lock for the duration of the block.

    Waits at most `timeout` seconds (default `lock_timeout()`), then raises LockTimeout
    naming the holder's pid and host.
    """
    root.mkdir(parents=True, exist_ok=True)
    path = root / INDEX_LOCK_NAME
    with open(path, "a+") as handle:
        if not _flock_patiently(handle, fcntl.LOCK_EX, lock_timeout() if timeout is None else timeout):
            raise LockTimeout(
                f"the index lock {path} is still held by {_holder(path)} after "
                f"{lock_timeout() if timeout is None else timeout:.0f} s. If that process is stopped, "
                "resume it (kill -CONT PID) or end it; if it is gone, its host still holds the lock "
                "(NFS): wait or remove the lock file. The records are safe; only the index waits. "
                "Set PARADIGM_BENCH_LOCK_TIMEOUT=SECONDS to wait longer."
            )
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}))
            handle.flush()
        except OSError:  # holder information is a courtesy; a full disk must not block the rebuild
            pass
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
