"""Fault injection: each fault a shared machine can throw at a run, and what the user sees.

Every case asserts the same three things: no traceback in the output, no record lost (the
bytes of every record written before the fault are still there, or the cell is completed
after a rerun), and the documented exit code (0 ok, 1 a cell failed, 2 a clear error, 130 /
143 interrupted). Timeouts below only guard against hangs; nothing asserts a duration.
"""

from __future__ import annotations

import errno
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import cli
from harness.config import ConfigError, resolve
from harness.execute import Seen, execute, split_by_store
from harness.locks import LOCK_NAME, MARKER_NAME, is_running, try_claim
from harness.plan import plan
from harness.store import Store, StoreError

REPO = Path(__file__).resolve().parents[1]
GUARD_S = 300  # hang guard for one command, generous for a loaded 2-core machine

SUITE = """
description: tiny digits suite for fault injection
tasks:
  mlp: {{task: digits, model: mlp, mlp: {{hidden: [32]}}}}
method: backprop
method_options:
  backprop: {{lr: 0.01}}
seeds: {seeds}
budget: {{steps: {steps}}}
batch_size: 32
eval_every: {eval_every}
device: cpu
threads: 1
"""


def write_suite(directory: Path, seeds: int = 1, steps: int = 20, eval_every: int = 10, name: str = "tiny") -> str:
    path = directory / f"{name}.yaml"
    path.write_text(SUITE.format(seeds=seeds, steps=steps, eval_every=eval_every))
    return str(path)


def bench(*args: str, prefix: tuple[str, ...] = (), **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*prefix, sys.executable, "-m", "harness.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    output = proc.communicate(timeout=GUARD_S)[0]
    assert "Traceback" not in output, output
    return proc.returncode, " ".join(output.split())  # rich wraps long lines


def run_bench(*args: str, **kwargs) -> tuple[int, str]:
    return finish(bench(*args, **kwargs))


def records(results: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in results.glob("*/*/record.json")}


def statuses(results: Path) -> list[str]:
    return sorted(json.loads(raw)["status"] for raw in records(results).values())


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for directories): a store's whole state."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def records_only(state: dict[str, bytes | None]) -> dict[str, bytes | None]:
    """A store's state without its caches (a reader may refresh those when it can write)."""
    return {k: v for k, v in state.items() if "parquet" not in k and "index.lock" not in k}


def worker_pids(results: Path, wanted: int, proc: subprocess.Popen) -> list[int]:
    """Pids of the workers training right now, read from their running.json markers."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        pids = set()
        for marker in results.glob(f"*/*/{MARKER_NAME}"):
            try:
                pids.add(json.loads(marker.read_text())["pid"])
            except (OSError, ValueError, KeyError):
                pass  # removed or half-written this instant
        pids.discard(proc.pid)
        if len(pids) >= wanted:
            return sorted(pids)
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    raise AssertionError("no worker started")


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")  # a zombie has stopped running
    except FileNotFoundError:
        return True


def wait_gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[str, Path]:
    """A suite of three finished cells and its results directory (copy it before damaging it)."""
    base = tmp_path_factory.mktemp("finished")
    suite = write_suite(base, seeds=3)
    code, output = run_bench("run", f"suite={suite}", f"results_dir={base / 'results'}")
    assert code == 0, output
    return suite, base / "results"


@pytest.fixture
def results(finished, tmp_path) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(finished[1], copy)
    return copy


# --------------------------------------------------------------------------- workers and signals


@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_worker_costs_only_its_cell(tmp_path: Path, retries: int) -> None:
    """SIGKILL (the OOM killer) of one pool worker: its cell is marked failed and retried
    while the other worker goes on; no BrokenProcessPool, no other cell lost."""
    suite = write_suite(tmp_path, seeds=3, steps=1500, eval_every=500)
    results = tmp_path / "results"
    proc = bench("run", f"suite={suite}", f"results_dir={results}", "launcher.workers=2",
                 f"launcher.retries={retries}")
    victim = worker_pids(results, 1, proc)[0]
    os.kill(victim, signal.SIGKILL)
    code, output = finish(proc)
    assert "SIGKILL" in output and "BrokenProcessPool" not in output
    if retries:
        assert code == 0, output
        assert statuses(results) == ["completed"] * 3
    else:
        assert code == 1, output
        assert statuses(results) == ["completed", "completed", "failed"]
        (failed,) = [json.loads(raw) for raw in records(results).values() if b'"failed"' in raw]
        assert f"pid {victim}" in failed["error"] and "SIGKILL" in failed["error"]


def test_workers_die_with_their_parent_and_a_rerun_completes(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, seeds=4, steps=1500, eval_every=500)
    results = tmp_path / "results"
    args = ("run", f"suite={suite}", f"results_dir={results}", "launcher.workers=2")
    proc = bench(*args, start_new_session=True)
    workers = worker_pids(results, 2, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=GUARD_S)
    try:
        assert wait_gone(workers), "workers kept running after their parent was killed"
    finally:
        for pid in workers:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
    code, output = run_bench(*args)
    assert code == 0, output
    assert statuses(results) == ["completed"] * 4
    assert not list(results.rglob("*.tmp"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_cancels_the_queue_and_stops_the_workers(tmp_path: Path, signum: int) -> None:
    """Ctrl-C (SIGINT to the whole process group) or SIGTERM to the parent: the queue is
    cancelled, the workers stop, finished records stay, and the exit code says which."""
    suite = write_suite(tmp_path, seeds=6, steps=3000, eval_every=1000)
    results = tmp_path / "results"
    # as from a terminal: a shell's background job (`pytest ... &`) inherits SIGINT ignored, and so would bench
    proc = bench("run", f"suite={suite}", f"results_dir={results}", "launcher.workers=2", start_new_session=True,
                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    workers = worker_pids(results, 1, proc)
    before = records(results)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # what a terminal's Ctrl-C does
    else:
        os.kill(proc.pid, signum)
    code, output = finish(proc)
    assert code == 128 + signum, output
    assert "interrupted" in output
    assert wait_gone(workers)
    assert len(records(results)) < 6, "the whole queue trained after the interrupt"
    assert all(records(results).get(p) == raw for p, raw in before.items())


def test_a_reader_does_not_make_a_worker_skip_the_cell(tmp_path: Path) -> None:
    """`bench status` takes a shared lock for an instant; a claim at that moment waits for
    it instead of reporting the cell busy."""
    import fcntl

    cell_dir = tmp_path / "cell"
    cell_dir.mkdir()
    (cell_dir / LOCK_NAME).touch()
    reader = open(cell_dir / LOCK_NAME)
    fcntl.flock(reader, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a status call in the middle of its check
    threading.Timer(0.1, reader.close).start()
    claim = try_claim(cell_dir)
    assert claim is not None
    assert is_running(cell_dir)
    claim.release()
    assert not is_running(cell_dir)


def test_a_failed_cell_is_retried_by_one_process_per_round(finished, tmp_path: Path) -> None:
    suite, _ = finished
    cell = plan(resolve([f"suite={suite}", "seeds=1"]))[0]
    store = Store(tmp_path)
    failed = {**json.loads(next(iter(records(finished[1]).values()))), "run_id": cell.run_id,
              "status": "failed", "final": None, "error": "failed on purpose"}
    for key in ("task_info", "counters", "curve", "timing", "memory", "energy", "flops"):
        failed.pop(key, None)
    store.write(cell.suite, cell.run_id, failed)
    seen = split_by_store([cell], store).seen  # what this run saw when it planned
    store.write(cell.suite, cell.run_id, {**failed, "error": "failed again, in another process"})
    outcome, record = execute(cell, tmp_path, seen=seen[cell.run_id])
    assert (outcome, record.error) == ("done", "failed again, in another process")
    outcome, record = execute(cell, tmp_path, seen=Seen(store.record_version(cell.suite, cell.run_id)))
    assert outcome == "ran" and record.status == "completed"


# --------------------------------------------------------------------------- damaged stores


def test_damaged_records_are_skipped_by_readers_and_set_aside_by_a_run(finished, results: Path) -> None:
    suite, _ = finished
    paths = sorted(records(results))
    paths[0].write_text('{"status": "compl')  # truncated
    paths[1].write_text('{"status": "completed"}')  # the wrong shape: not a finished cell
    before = tree(results)
    code, output = run_bench("status", f"suite={suite}", f"results_dir={results}")
    assert code == 0 and "unreadable" in output, output
    code, output = run_bench("report", "tiny", f"results_dir={results}", f"reports_dir={results.parent / 'rep'}")
    assert code == 0, output
    assert records_only(tree(results)) == records_only(before), "a read-only command changed a record"
    code, output = run_bench("run", f"suite={suite}", f"results_dir={results}")
    assert code == 0 and output.count("unreadable record set aside") == 2, output
    assert statuses(results) == ["completed"] * 3
    assert len(list(results.glob("*/*/record.json.corrupt-*"))) == 2


def test_garbage_caches_are_rebuilt_and_a_bad_verdict_is_listed(finished, results: Path) -> None:
    for name in ("index.parquet", "curves.parquet"):
        (results / name).write_bytes(b"PAR1 this is not parquet")
    (results / "claims").mkdir()
    (results / "claims" / "some-claim.json").write_text("{not json")
    code, output = run_bench("report", "tiny", f"results_dir={results}", f"reports_dir={results.parent / 'rep'}")
    assert code == 0, output
    assert len(pd.read_parquet(results / "index.parquet")) == 3  # rebuilt from the records
    code, output = run_bench("claims", "list", f"results_dir={results}")
    assert code == 0, output


def _without_root_override() -> tuple[str, ...]:
    """root writes anywhere; drop that capability so a read-only directory is read-only."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")


def test_a_read_only_store_serves_every_read_only_command(finished, results: Path, tmp_path: Path) -> None:
    suite, _ = finished
    (results / "index.parquet").unlink()  # stale cache: readers must rebuild it in memory
    prefix = _without_root_override()
    subprocess.run(["chmod", "-R", "a-w", str(results)], check=True)
    try:
        before = tree(results)
        code, output = run_bench("status", f"suite={suite}", f"results_dir={results}", prefix=prefix)
        assert code == 0 and "completed" in output, output
        code, output = run_bench("report", "tiny", f"results_dir={results}", f"reports_dir={tmp_path / 'rep'}",
                                 prefix=prefix)
        assert code == 0, output
        code, output = run_bench("claims", "list", f"results_dir={results}", prefix=prefix)
        assert code == 0, output
        assert tree(results) == before
        code, output = run_bench("run", f"suite={suite}", "seeds=4", f"results_dir={results}", prefix=prefix)
        assert code == 2 and "not writable" in output, output
        assert tree(results) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(results)], check=True)


def _file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_during_the_index_rebuild_is_one_clear_error(finished, results: Path) -> None:
    suite, _ = finished
    (results / "index.parquet").unlink()
    before = records(results)
    code, output = run_bench("run", f"suite={suite}", f"results_dir={results}", preexec_fn=_file_size_limit(2048))
    assert code == 2 and "File too large" in output and "intact" in output, output
    assert records(results) == before
    assert not list(results.glob(".*.tmp"))


def test_a_full_disk_during_a_verdict_write_is_a_store_error(tmp_path: Path) -> None:
    code = ("from harness.store import Store, StoreError\n"
            "try:\n"
            f"    Store({str(tmp_path)!r}).write_verdict('c', {{'pad': 'x' * 100000}})\n"
            "except StoreError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=GUARD_S,
                         preexec_fn=_file_size_limit(4096))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "File too large" in out.stdout and "claims" in out.stdout
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("c.json"))


def test_a_stale_temp_file_and_running_marker_are_swept(finished, results: Path) -> None:
    cell_dirs = sorted({p.parent for p in records(results)})
    old = time.time() - 3600
    leftovers = [cell_dirs[0] / ".record.json.abc.tmp", cell_dirs[0] / MARKER_NAME, results / ".index.parquet.x.tmp"]
    for path in leftovers:
        path.write_text("left by a kill")
        os.utime(path, (old, old))
    busy = cell_dirs[1] / ".record.json.def.tmp"  # a live worker's cell: not touched
    busy.write_text("being written")
    os.utime(busy, (old, old))
    claim = try_claim(cell_dirs[1])
    try:
        removed = Store(results).sweep_stale()
    finally:
        claim.release()
    assert sorted(removed) == sorted(leftovers)
    assert busy.exists()


def test_a_stopped_index_lock_holder_is_named_after_the_timeout(tmp_path: Path, monkeypatch) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from harness.locks import index_lock\n"
         f"with index_lock(Path({str(tmp_path)!r})):\n    print('held', flush=True); time.sleep(600)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGSTOP)  # a stopped process keeps its lock
        monkeypatch.setenv("PARADIGM_BENCH_LOCK_TIMEOUT", "1")
        with pytest.raises(StoreError) as err:
            Store(tmp_path).rebuild_index()
        assert f"pid {holder.pid}" in str(err.value) and socket.gethostname() in str(err.value)
    finally:
        holder.kill()
        holder.wait()


# --------------------------------------------------------------------------- bad input, in process


def _main(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output, output
    return code, " ".join(output.split())


def test_a_results_dir_that_is_a_file_or_empty_is_refused(finished, tmp_path: Path, capsys) -> None:
    suite, _ = finished
    a_file = tmp_path / "results"
    a_file.write_text("not a directory")
    for command in (["run", f"suite={suite}"], ["status", f"suite={suite}"], ["claims", "list"]):
        code, output = _main(capsys, *command, f"results_dir={a_file}")
        assert code == 2 and "not a directory" in output, (command, output)
    code, output = _main(capsys, "run", f"suite={suite}", "results_dir=")
    assert code == 2 and "results_dir is empty" in output


@pytest.mark.parametrize(("override", "named"), [
    ("method.lr=nan", "method.backprop.lr"),
    ("method.lr=.inf", "method.backprop.lr"),
    ("method.weight_decay=inf", "method.backprop.weight_decay"),
    ("method.grad_clip=.nan", "method.backprop.grad_clip"),
    ("budget.steps=inf", "budget.steps"),
    ("tasks.mlp.model=vit tasks.mlp.vit.patch_size=3", "patch_size=3"),
    ("method.lr=[]", "empty sweep axis"),
])
def test_impossible_values_are_refused_before_training(finished, tmp_path: Path, capsys, override, named) -> None:
    suite, _ = finished
    code, output = _main(capsys, "sweep", f"suite={suite}", *override.split(), f"results_dir={tmp_path}")
    assert code == 2 and named in output, output
    assert not tmp_path.joinpath("tiny").exists()


def test_dry_run_checks_the_data(finished, tmp_path: Path, capsys) -> None:
    suite, _ = finished
    code, output = _main(capsys, "run", f"suite={suite}", "tasks.mlp.val_size=5000", "--dry-run")
    assert code == 2 and "val_size=5000" in output, output
    code, output = _main(capsys, "run", f"suite={suite}", "tasks.mlp.task=mnist", "tasks.mlp.source=local",
                         f"data_dir={tmp_path / 'nothing'}", "--dry-run")
    assert code == 2 and "mnist" in output.lower(), output


def test_a_method_named_twice_runs_once_with_a_note(finished, capsys) -> None:
    suite, _ = finished
    run = resolve([f"suite={suite}", "method=[backprop,backprop]"])
    assert [m.name for m in run.methods] == ["backprop"] and len(plan(run)) == 3
    code, output = _main(capsys, "run", f"suite={suite}", "method=[backprop,backprop]", "--dry-run")
    assert code == 0 and "more than once" in output and "3 cells" in output


# --------------------------------------------------------------------------- properties

NUMERIC_KEYS = ("method.lr", "method.weight_decay", "method.grad_clip", "method.momentum", "budget.steps",
                "budget.examples", "batch_size", "eval_every", "seeds")
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from(["nan", "-nan", ".nan", "inf", "-inf", ".inf", "-.inf", "1e999", "-0", "0", "1e-320", "NaN"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(NUMERIC_KEYS), value=numbers)
def test_every_numeric_option_is_a_clean_error_or_a_correct_plan(finished, key: str, value) -> None:
    suite, _ = finished
    try:
        cells = plan(resolve([f"suite={suite}", f"{key}={value}"]))
    except ConfigError as exc:
        assert key.split(".")[-1] in str(exc), str(exc)  # the message names the key
        return
    number = value if isinstance(value, int) else float(value)
    assert isinstance(number, int) or math.isfinite(number)
    cell = cells[0]
    got = {"method.lr": cell.method.config.lr, "method.weight_decay": cell.method.config.weight_decay,
           "method.grad_clip": cell.method.config.grad_clip, "method.momentum": cell.method.config.momentum,
           "budget.steps": cell.budget.value, "budget.examples": cell.budget.value, "batch_size": cell.batch_size,
           "eval_every": cell.eval_every, "seeds": len(cells)}[key]
    assert got == (float(number) if isinstance(got, float) else number)  # a float option holds the nearest float
    assert got >= 0 if key in ("method.weight_decay", "method.momentum") else got > 0
    assert all(math.isfinite(v) for v in (cell.method.config.lr, cell.method.config.weight_decay, cell.budget.value))


record_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(patch=st.dictionaries(st.sampled_from(["status", "final", "curve", "config", "seed", "method", "schema",
                                              "counters", "timing", "error", "run_id"]), record_values, max_size=3),
       drop=st.sets(st.sampled_from(["status", "final", "config", "env", "seed", "task"]), max_size=2))
def test_any_record_shape_is_a_record_or_set_aside(finished, tmp_path: Path, patch, drop) -> None:
    """A record.json of any shape: read-only readers skip it without touching it; a writer
    gets a valid Record or sets it aside; never an exception."""
    base = json.loads(next(iter(records(finished[1]).values())))
    damaged = {k: v for k, v in {**base, **patch}.items() if k not in drop}
    path = tmp_path / "s" / "0123456789abcdef" / "record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(damaged))
    reader = Store(tmp_path, read_only=True)
    first = reader.load("s", "0123456789abcdef")
    assert path.read_text() == json.dumps(damaged)
    writer = Store(tmp_path)
    second = writer.load("s", "0123456789abcdef")
    assert (first is None) == (second is None)
    assert path.exists() == (second is not None)
    for aside in path.parent.glob("record.json.corrupt-*"):
        aside.unlink()


def test_the_git_status_of_every_record_takes_no_index_lock(monkeypatch) -> None:
    """Each record reads `git status` under a timeout; a status killed mid-refresh on a busy machine
    would leave .git/index.lock behind and block the user's next commit, so it must not take it."""
    import subprocess

    from harness import environment

    calls = []

    def run(args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, stdout="abc\n", stderr="")

    monkeypatch.setattr(environment.subprocess, "run", run)
    assert environment.git_commit() == "abc+dirty"
    status = [c for c in calls if "status" in c]
    assert status and all("--no-optional-locks" in c[:c.index("status")] for c in status)
