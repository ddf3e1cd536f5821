"""The results store: stable run ids, strict JSON, records that survive crashes, a full
disk and corruption, and an index that pandas can read."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness import atomic_io
from harness import store as store_mod
from harness.jsonable import run_id, to_jsonable
from harness.store import Store, StoreError

REPO = Path(__file__).resolve().parents[1]
CORRUPT_NAME = re.compile(r"^record\.json\.corrupt-\d{8}T\d{6}(\.\d+)?$")


RECORD_TEMPLATE = Path(__file__).parent / "data" / "record_supervised.json"  # a real, trimmed record


def make_record(rid: str, *, suite: str = "tiny", method: str = "backprop", seed: int = 0,
                lr=1e-3, accuracy: float | None = 0.9, curve=None, status: str = "completed") -> dict:
    """A valid record (harness/record.py) of a tiny digits cell, with these fields changed."""
    record = json.loads(RECORD_TEMPLATE.read_text())
    record.update(run_id=rid, suite=suite, method=method, seed=seed, status=status)
    record["config"]["method_config"]["lr"] = lr
    if curve is not None:
        record["curve"] = curve
    if status == "completed":
        record["final"]["val"]["accuracy"] = record["final"]["test"]["accuracy"] = accuracy
    else:
        record.update(final=None, error=f"{status} on purpose")
    return record


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- run ids


def test_run_id_is_canonical_sha256_and_order_insensitive():
    a = {"task": "mnist", "method": {"name": "bp", "lr": 0.001}, "seed": 0, "layers": [1, 2]}
    b = {"seed": 0, "layers": (1, 2), "method": {"lr": 0.001, "name": "bp"}, "task": "mnist"}
    canonical = '{"layers":[1,2],"method":{"lr":0.001,"name":"bp"},"seed":0,"task":"mnist"}'
    expected = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert run_id(a) == run_id(b) == expected
    assert re.fullmatch(r"[0-9a-f]{16}", expected)


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"task": "cifar"}, {"method": {"name": "bp", "lr": 0.002}}, {"layers": [2, 1]},
])
def test_run_id_changes_with_any_value(change):
    cell = {"task": "mnist", "method": {"name": "bp", "lr": 0.001}, "seed": 0, "layers": [1, 2]}
    assert run_id({**cell, **change}) != run_id(cell)


def test_run_id_is_the_same_in_another_process():
    cell = {"task": "mnist", "method": {"name": "bp", "lr": 0.001}, "seed": 3, "tags": ("a", "b")}
    code = ("from harness.jsonable import run_id; "
            "print(run_id({'tags': ['a', 'b'], 'seed': 3, 'method': {'lr': 0.001, 'name': 'bp'}, "
            "'task': 'mnist'}))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == run_id(cell)


# --------------------------------------------------------------------------- JSON


@dataclasses.dataclass(frozen=True)
class _Cfg:
    lr: float
    sizes: tuple[int, ...]
    out: Path


def test_to_jsonable_converts_and_drops_non_finite():
    value = {
        "nan": float("nan"), "inf": float("inf"), "ninf": -math.inf,
        "np_nan": np.float32("nan"), "np_int": np.int64(7), "np_f": np.float64(0.5),
        "np_arr": np.array([1.0, np.inf]), "t_scalar": torch.tensor(2.5), "t_nan": torch.tensor(float("nan")),
        "t_vec": torch.tensor([1, 2]), "cfg": _Cfg(0.1, (1, 2), Path("/tmp/x")), 3: "int key",
    }
    out = to_jsonable(value)
    assert out == {
        "nan": None, "inf": None, "ninf": None, "np_nan": None, "np_int": 7, "np_f": 0.5,
        "np_arr": [1.0, None], "t_scalar": 2.5, "t_nan": None, "t_vec": [1, 2],
        "cfg": {"lr": 0.1, "sizes": [1, 2], "out": "/tmp/x"}, "3": "int key",
    }
    json.dumps(out, allow_nan=False)  # strict JSON


def test_to_jsonable_rejects_unknown_types_by_name():
    with pytest.raises(TypeError, match="object"):
        to_jsonable({"x": object()})


def test_write_load_round_trip_is_strict_json(tmp_path):
    store = Store(tmp_path)
    record = make_record("r1", accuracy=float("nan"))
    record["curve"][0]["train_loss"] = float("inf")
    record["task_info"]["peak"] = np.float32(1.5)
    path = store.write("tiny", "r1", record)
    assert path == tmp_path / "tiny" / "r1" / "record.json" == store.record_path("tiny", "r1")
    text = path.read_text()
    for token in ("NaN", "Infinity"):
        assert token not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    loaded = store.load("tiny", "r1").to_dict()
    assert loaded == to_jsonable(record)
    assert loaded["final"]["test"]["accuracy"] is None
    assert loaded["curve"][0]["train_loss"] is None
    assert store.load("tiny", "absent") is None


def test_record_path_refuses_names_that_escape_the_root(tmp_path):
    store = Store(tmp_path)
    for bad in ("../x", "a/b", "", ".hidden", ".."):
        with pytest.raises(ValueError, match="results directory name"):
            store.record_path(bad, "r1")
        with pytest.raises(ValueError):
            store.record_path("tiny", bad)


# --------------------------------------------------------------------------- crashes


@pytest.mark.parametrize("fail_at", ["os.replace", "os.fsync", "serialise"])
def test_crash_mid_write_keeps_previous_record(tmp_path, monkeypatch, fail_at):
    store = Store(tmp_path)
    path = store.write("tiny", "r1", make_record("r1", accuracy=0.5))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    if fail_at == "os.replace":
        monkeypatch.setattr(store_mod.os, "replace", boom)
    elif fail_at == "os.fsync":
        monkeypatch.setattr(store_mod.os, "fsync", boom)
    else:  # json.dumps dies half-way, e.g. an interrupt while serialising
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt
        monkeypatch.setattr(store_mod.json, "dumps", interrupted)

    expected = KeyboardInterrupt if fail_at == "serialise" else StoreError
    with pytest.raises(expected) as info:
        store.write("tiny", "r1", make_record("r1", accuracy=0.99))
    if expected is StoreError:
        assert str(path) in str(info.value) and "Input/output error" in str(info.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert files_in(path.parent) == ["record.json"]  # no stray temp file
    assert store.load("tiny", "r1").final_metric("test") == 0.5


def test_interrupt_during_file_write_removes_temp(tmp_path, monkeypatch):
    """A KeyboardInterrupt after the temp file exists must still clean it up."""
    store = Store(tmp_path)
    path = store.write("tiny", "r1", make_record("r1"))
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.write("tiny", "r1", make_record("r1", accuracy=0.1))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert files_in(path.parent) == ["record.json"]


# --------------------------------------------------------------------------- corruption


@pytest.mark.parametrize("damage", ["truncate", "not_a_dict", "binary"])
def test_corrupt_record_is_set_aside_not_deleted(tmp_path, caplog, damage):
    Store(tmp_path).write("tiny", "good", make_record("good"))
    path = Store(tmp_path).write("tiny", "bad", make_record("bad"))
    full = path.read_bytes()
    broken = {"truncate": full[: len(full) // 2], "not_a_dict": b"[1, 2, 3]\n",
              "binary": b"\xff\xfe\x00garbage"}[damage]
    path.write_bytes(broken)

    store = Store(tmp_path)
    with caplog.at_level(logging.WARNING, logger="harness.store"):
        assert store.load("tiny", "bad") is None
    assert not path.exists()
    assert len(store.set_aside) == 1
    aside = store.set_aside[0]
    assert aside.parent == path.parent and CORRUPT_NAME.match(aside.name)
    assert aside.read_bytes() == broken  # kept byte for byte
    assert str(path) in caplog.text and aside.name in caplog.text

    # The cell is re-run and written again; the set-aside copy stays.
    store.write("tiny", "bad", make_record("bad"))
    assert aside.read_bytes() == broken
    assert [r.run_id for r in store.records("tiny")] == ["bad", "good"]


def test_records_skips_corrupt_and_repeated_corruption_never_overwrites(tmp_path):
    store = Store(tmp_path)
    store.write("tiny", "good", make_record("good"))
    path = store.write("tiny", "bad", make_record("bad"))
    path.write_text('{"run_id": "bad", "cur')
    assert [r.run_id for r in store.records()] == ["good"]
    # Corrupt again within the same second: a second, distinct set-aside file.
    path.write_text("{")
    assert [r.run_id for r in store.records("tiny")] == ["good"]
    assert len(store.set_aside) == 2 and len(set(store.set_aside)) == 2
    assert sorted(p.read_text() for p in store.set_aside) == ['{', '{"run_id": "bad", "cur']
    assert files_in(path.parent) == sorted(p.name for p in store.set_aside)


# --------------------------------------------------------------------------- unwritable / full disk


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores directory permissions; covered by the rlimit and errno tests")
def test_read_only_root_gives_clear_error(tmp_path):
    root = tmp_path / "results"
    store = Store(root)
    path = store.write("tiny", "r1", make_record("r1"))
    before = path.read_bytes()
    root.chmod(0o500)
    try:
        with pytest.raises(StoreError, match=r"not writable \(Permission denied\).*results_dir=DIR") as info:
            store.check_writable()
        assert str(info.value).startswith(f"results directory {root} is not writable")
        with pytest.raises(StoreError, match="results_dir=DIR"):
            store.write("other", "r2", make_record("r2"))
    finally:
        root.chmod(0o700)
    assert path.read_bytes() == before


@pytest.mark.parametrize("code, phrase", [
    (errno.EACCES, r"is not writable \(Permission denied\)\. Choose another with results_dir=DIR"),
    (errno.EROFS, r"is not writable \(Read-only file system\)"),
    (errno.ENOSPC, r"\(No space left on device\)\. Free some space"),
])
def test_os_errors_become_store_errors_naming_path_and_fix(tmp_path, monkeypatch, code, phrase):
    root = tmp_path / "results"
    store = Store(root)
    path = store.write("tiny", "r1", make_record("r1"))
    before = path.read_bytes()

    def refuse(*args, dir=None, **kwargs):
        raise OSError(code, os.strerror(code), str(dir))

    monkeypatch.setattr(atomic_io.tempfile, "mkstemp", refuse)
    with pytest.raises(StoreError, match=phrase) as info:
        store.check_writable()
    assert str(info.value).startswith(f"results directory {root} ")
    with pytest.raises(StoreError, match=phrase):
        store.write("tiny", "r1", make_record("r1", accuracy=0.0))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert files_in(path.parent) == ["record.json"]


def test_root_that_is_a_file_is_reported(tmp_path):
    target = tmp_path / "results"
    target.write_text("not a directory")
    with pytest.raises(StoreError, match=str(target)):
        Store(target).check_writable()


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
def test_real_file_size_limit_fails_cleanly_and_keeps_records(tmp_path):
    """A real OS error, even as root: RLIMIT_FSIZE makes writes past the limit fail
    with EFBIG, as a full disk would fail with ENOSPC."""
    root = tmp_path / "results"
    store = Store(root)
    path = store.write("tiny", "r1", make_record("r1"))
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import resource, sys
        from harness.store import Store, StoreError
        limit = int(sys.argv[1])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        store = Store({str(root)!r})
        try:
            store.check_writable()
            print("CHECK_OK")
            store.write_json("tiny/r1/record.json", {{"run_id": "r1", "blob": "x" * 100_000}})
            print("WRITE_OK")
        except StoreError as err:
            print("STORE_ERROR", err)
    """)

    def child(limit: int) -> str:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", script, str(limit)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = child(0)  # nothing can be written: caught by the early check
    assert "CHECK_OK" not in out and "STORE_ERROR" in out and "ulimit -f" in out and str(root) in out

    out = child(4096)  # the probe fits, the big record does not
    assert "CHECK_OK" in out and "WRITE_OK" not in out
    assert "STORE_ERROR" in out and "File too large" in out and str(path) in out
    assert path.read_bytes() == before
    assert files_in(path.parent) == ["record.json"]
    assert files_in(root) == ["tiny"]  # no probe or temp file left


# --------------------------------------------------------------------------- index


def test_rebuild_index_flattens_and_survives_mixed_types(tmp_path):
    store = Store(tmp_path)
    store.write("tiny", "a", make_record("a", lr=0.001, seed=0, accuracy=0.91))
    store.write("tiny", "b", make_record("b", lr="auto", seed=1, accuracy=0.85, method="ff",
                                          curve=[{"steps": 1, "examples": 32, "train_loss": float("nan")}]))
    failed = make_record("c", suite="other", status="failed", curve=[])
    failed.update(error="CUDA out of memory")
    failed["config"]["method_config"]["lr"] = [0.1, 0.01]  # a list where others have scalars
    failed["env"]["threads"] = "four"
    store.write("other", "c", failed)
    # Something corrupt in the tree must not stop the rebuild.
    (tmp_path / "other" / "d").mkdir()
    (tmp_path / "other" / "d" / "record.json").write_text("{trunc")

    path = store.rebuild_index()
    assert path == tmp_path / "index.parquet"
    index = pd.read_parquet(path).set_index("run_id")
    assert sorted(index.index) == ["a", "b", "c"]
    assert len(store.set_aside) == 1
    assert {"final.test.accuracy", "final.val.accuracy", "config.method_config.lr", "config.task_config.mlp.hidden",
            "env.threads", "counters.steps", "status", "error", "seed"} <= set(index.columns)
    assert not any(c.startswith("curve") for c in index.columns)
    assert index.loc["a", "final.test.accuracy"] == pytest.approx(0.91)
    assert pd.isna(index.loc["c", "final.test.accuracy"])
    assert index["config.method_config.lr"].to_dict() == {"a": "0.001", "b": "auto", "c": "[0.1,0.01]"}
    assert index["env.threads"].to_dict() == {"a": "4", "b": "4", "c": "four"}
    assert json.loads(index.loc["a", "config.task_config.mlp.hidden"]) == [16]
    assert index.loc["c", "error"] == "CUDA out of memory"

    curves = pd.read_parquet(tmp_path / "curves.parquet")
    assert len(curves) == 3  # two points for a, one for b, none for c
    assert {"run_id", "suite", "task_label", "method", "seed", "steps", "examples",
            "train_loss"} <= set(curves.columns)
    b = curves[curves.run_id == "b"].iloc[0]
    assert b["method"] == "ff" and b["seed"] == 1 and pd.isna(b["train_loss"])
    assert sorted(curves[curves.run_id == "a"]["steps"]) == [2, 4]
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_rebuild_index_with_no_records(tmp_path):
    store = Store(tmp_path / "empty")
    store.rebuild_index()
    index = pd.read_parquet(store.index_path)
    curves = pd.read_parquet(store.curves_path)
    assert len(index) == 0 and len(curves) == 0
    assert {"run_id", "suite", "task_label", "method", "seed", "status"} <= set(index.columns)
    assert {"run_id", "suite", "task_label", "method", "seed", "step"} <= set(curves.columns)


def test_read_index_rebuilds_when_missing_or_stale(tmp_path):
    store = Store(tmp_path)
    store.write("tiny", "a", make_record("a"))
    assert not store.index_path.exists()
    assert list(store.read_index()["run_id"]) == ["a"]
    assert store.index_path.exists()
    store.write("tiny", "b", make_record("b"))
    os.utime(store.record_path("tiny", "b"), ns=(store.index_path.stat().st_mtime_ns + 10**9,) * 2)
    assert sorted(store.read_index()["run_id"]) == ["a", "b"]
    assert len(store.read_curves()) == 4


def test_a_record_of_the_wrong_shape_is_set_aside_not_counted_as_finished(tmp_path):
    """{"status": "completed"} once counted as a finished cell and crashed every reader."""
    store = Store(tmp_path)
    path = store.record_path("tiny", "r1")
    path.parent.mkdir(parents=True)
    path.write_text('{"status": "completed"}\n')
    assert store.load("tiny", "r1") is None  # so the cell is trained again
    assert not path.exists() and len(store.set_aside) == 1
    assert store.set_aside[0].read_text() == '{"status": "completed"}\n'
    with pytest.raises(ValueError, match="record.schema"):
        store.write("tiny", "r2", {"status": "completed"})  # and it cannot be written either
