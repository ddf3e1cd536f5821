"""Writes that a kill or a full disk cannot tear, and OS errors said for people.

`atomic_write` puts bytes in place through a temporary file in the same directory (named
`.<name>.<random>.tmp`), fsync and rename, then fsyncs the directory, so a reader sees the old
content or the new, never half; `store_error` turns an OSError into a `StoreError` that names
the path, the cause and what to do; `check_writable_dir` and `check_readable_dir` test a
results directory before any work starts. It is apart from harness/store.py, which owns the
results layout, because none of this knows what a record or a run is.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The results directory cannot be written or read; the message says what to do."""



def store_error(path: Path, err: OSError, doing: str = "write", subject: str = "results file") -> StoreError:
    """An error for people: the path, the OS reason, and what to do about it."""
    reason = err.strerror or str(err)
    code = err.errno
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "Choose another with results_dir=DIR, or fix its permissions."
        what = f"is not {'readable' if doing == 'read' else 'writable'}"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        hint = "Free some space (or quota) on that disk, or choose another with results_dir=DIR."
        what = "could not be written"
    elif code == errno.EFBIG:
        hint = "A file-size limit was hit (see `ulimit -f`); raise it or choose another results_dir=DIR."
        what = "could not be written"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        hint = "A file stands where a directory is needed; move it or choose another results_dir=DIR."
        what = "is not a directory"
    else:
        hint = "Check the disk and the path, or choose another with results_dir=DIR."
        what = f"could not be {'read' if doing == 'read' else 'written'}"
    return StoreError(f"{subject} {path} {what} ({reason}). {hint}")


def fsync_dir(directory: Path) -> None:
    """Make a rename durable: fsync the directory entry (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:  # some filesystems cannot fsync a directory; that is not data loss
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old content or the new, never half.

    temp file in the same directory (so the rename stays on one filesystem) -> fsync ->
    os.replace -> fsync the directory. On any failure the temp file is removed and the
    previous file is left as it was.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # name the directory that could not be made, not its child
        raise store_error(Path(err.filename or path.parent), err, subject="results directory") from err
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise store_error(path.parent, err, subject="results directory") from err
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; results are meant to be shared
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:  # also KeyboardInterrupt: never leave a stray temp file
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not remove temporary file %s", tmp)
        if isinstance(err, OSError):
            raise store_error(path, err) from err
        raise
    try:
        fsync_dir(path.parent)
    except OSError as err:
        raise store_error(path.parent, err, subject="results directory") from err


def check_writable_dir(root: Path) -> None:
    """Fail before hours of training, not after: create `root` if needed and write,
    fsync and remove a small probe file in it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise store_error(Path(err.filename or root), err, subject="results directory") from err
    if not root.is_dir():
        raise store_error(root, NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)),
                          subject="results directory")
    probe = root / f".write-probe-{os.getpid()}"  # per process: concurrent runs share the root
    atomic_write(probe, b"paradigm-bench write probe\n")
    try:
        probe.unlink()
    except OSError as err:
        raise store_error(probe, err) from err


def check_readable_dir(root: Path) -> None:
    """A results directory to read must be a directory we can list (it may be read-only)."""
    if root.exists() and not root.is_dir():
        raise store_error(root, NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)),
                          doing="read", subject="results directory")
    if root.exists() and not os.access(root, os.R_OK | os.X_OK):
        raise store_error(root, PermissionError(errno.EACCES, os.strerror(errno.EACCES)),
                          doing="read", subject="results directory")
