"""Launchers and concurrency: the same records whoever runs the cells, each cell trained once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import registry
from harness.config import resolve
from harness.execute import execute
from harness.launch import device_slots, launch, local_workers
from harness.run_config import LauncherConfig
from harness.plan import plan
from harness.sweep import expand_grid

# Three cheap methods with different learning rules that train the tiny suite's classification task
# (control-only methods would only write "unsupported"; iterative-inference ones triple the test's time).
METHODS = [m for m in ("backprop", "forward_forward", "local_learning") if m in registry.method_names()]


def _learning(results: Path) -> dict[str, tuple]:
    """run_id -> what was learned (status, curve without the clock, test metrics)."""
    out = {}
    for path in results.glob("*/*/record.json"):
        record = json.loads(path.read_text())
        curve = [(p["steps"], p["train_loss"], p["val_metric"]) for p in record.get("curve", [])]
        out[record["run_id"]] = (record["status"], tuple(curve), json.dumps(record.get("final"), sort_keys=True))
    return out


@pytest.fixture
def sweep_cells(tiny_suite):
    args = [f"suite={tiny_suite(seeds=2, steps=8, eval_every=4)}", f"method={METHODS}".replace("'", ""),
            "method.backprop.lr=[0.01,0.003]" if "backprop" in METHODS else "batch_size=64"]
    cells = {c.run_id: c for point in expand_grid(args) for c in plan(resolve(point))}
    return list(cells.values())


def test_grid_expands_scalar_lists_and_keeps_method_and_seed_lists() -> None:
    points = expand_grid(["suite=x", "method=[a,b]", "seeds=2", "method.lr=[1,2]", "batch_size=[8,16]"])
    assert len(points) == 4 and all("method=[a,b]" in p for p in points)
    assert ["method.lr=1", "batch_size=8"] == points[0][-2:]


@pytest.mark.parametrize("kind", ["submitit", "ray"])
def test_every_launcher_produces_the_same_records(kind: str, sweep_cells, tmp_path: Path) -> None:
    reference, other = tmp_path / "local", tmp_path / kind
    launch(sweep_cells, reference, LauncherConfig())
    config = LauncherConfig(kind=kind, cluster="local", workers=2)
    outcomes = launch(sweep_cells, other, config)
    assert outcomes["ran"] == len(sweep_cells)
    assert _learning(other) == _learning(reference)
    assert len(_learning(reference)) == len(sweep_cells)


def test_process_pool_runs_each_cell_once(sweep_cells, tmp_path: Path) -> None:
    outcomes = launch(sweep_cells, tmp_path, LauncherConfig(workers=2))
    assert outcomes == {"ran": len(sweep_cells), "done": 0, "busy": 0}
    again = launch(sweep_cells, tmp_path, LauncherConfig(workers=2))
    assert again == {"ran": 0, "done": len(sweep_cells), "busy": 0}


def test_a_claimed_cell_is_not_run_twice(sweep_cells, tmp_path: Path) -> None:
    from harness.locks import try_claim
    from harness.store import Store

    cell = sweep_cells[0]
    claim = try_claim(Store(tmp_path).record_path(cell.suite, cell.run_id).parent)
    assert claim is not None
    assert execute(cell, tmp_path)[0] == "busy"
    claim.release()
    assert execute(cell, tmp_path)[0] == "ran"
    assert execute(cell, tmp_path)[0] == "done"


def _bench(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def test_four_concurrent_runs_train_every_cell_exactly_once(tiny_suite, tmp_path: Path) -> None:
    suite = tiny_suite(seeds=6, steps=40, eval_every=20)
    procs = [_bench(["run", f"suite={suite}", f"results_dir={tmp_path}"]) for _ in range(4)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    trained = sum(len(re.findall(r"^completed \S+/backprop/seed\d+ test", out, re.M)) for out in outputs)
    assert trained == 6, outputs  # "recorded meanwhile by another worker" lines are not trainings
    import pandas as pd

    index = pd.read_parquet(tmp_path / "index.parquet")
    assert sorted(index["seed"]) == list(range(6))


def test_sigkill_at_random_points_then_rerun_keeps_every_completed_record(tiny_suite, tmp_path: Path) -> None:
    suite = tiny_suite(seeds=6, steps=150, eval_every=50)
    args = ["sweep", f"suite={suite}", "method.backprop.lr=[0.01,0.02]", f"results_dir={tmp_path}",
            "launcher.workers=2"]
    completed: dict[Path, bytes] = {}
    kill_points = [4.0, 6.5, 9.0, 11.5]
    for delay in kill_points:
        proc = _bench(args, start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole pool, mid-cell or mid-write
        proc.wait()
        for path in tmp_path.glob("*/*/record.json"):
            if json.loads(path.read_bytes())["status"] == "completed":
                assert completed.setdefault(path, path.read_bytes()) == path.read_bytes()
    final = _bench(args)
    output = final.communicate(timeout=300)[0]
    assert final.returncode == 0, output
    records = {p: p.read_bytes() for p in tmp_path.glob("*/*/record.json")}
    assert len(records) == 12
    assert all(records[p] == raw for p, raw in completed.items()), "a completed record was rewritten"
    assert not list(tmp_path.rglob("*.tmp"))


def test_corrupt_record_is_reported_set_aside_and_rerun(tiny_suite, tmp_path: Path) -> None:
    suite = tiny_suite(steps=20, eval_every=10)
    first = _bench(["run", f"suite={suite}", f"results_dir={tmp_path}"])
    first.communicate(timeout=120)
    (record,) = tmp_path.glob("*/*/record.json")
    record.write_text('{"status": "compl')  # truncated by a crash of something else
    second = _bench(["run", f"suite={suite}", f"results_dir={tmp_path}"])
    output = second.communicate(timeout=120)[0]
    assert second.returncode == 0 and "set aside" in output
    assert json.loads(record.read_text())["status"] == "completed"
    assert list(record.parent.glob("record.json.corrupt-*"))


def test_file_size_limit_gives_a_clear_error_and_keeps_earlier_records(tiny_suite, tmp_path: Path) -> None:
    import resource

    done = _bench(["run", f"suite={tiny_suite(steps=20, eval_every=10)}", f"results_dir={tmp_path}"])
    done.communicate(timeout=120)
    before = {p: p.read_bytes() for p in tmp_path.glob("*/*/record.json")}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # records are larger than this

    proc = _bench(["run", f"suite={tiny_suite(steps=20, eval_every=10, seeds=2)}", f"results_dir={tmp_path}"],
                  preexec_fn=limit)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2 and "File too large" in output and "intact" in output
    assert {p: p.read_bytes() for p in before} == before


def test_pool_workers_report_each_cells_progress_to_the_parent(sweep_cells, tmp_path: Path) -> None:
    """The live display and its time-left estimate see cells run in worker processes too."""
    furthest: dict[str, float] = {}
    launch(sweep_cells, tmp_path, LauncherConfig(workers=2),
           on_progress=lambda p: furthest.__setitem__(p.cell.run_id, max(p.fraction, furthest.get(p.cell.run_id, 0))))
    assert furthest == {cell.run_id: 1.0 for cell in sweep_cells}


def test_device_slots_spread_workers_round_robin_over_the_gpus() -> None:
    assert device_slots(3, gpus=2) == [0, 1, 0, 1, 0, 1]  # the first cells land on different GPUs
    assert device_slots(2, gpus=0) == [None, None]  # CPU cells: N workers sharing the cores, unpinned
    cpu_cells = [SimpleNamespace(device="cpu")] * 4
    assert local_workers(LauncherConfig(cells_per_device=3), cpu_cells) == 3
    assert local_workers(LauncherConfig(workers=5, cells_per_device=2), cpu_cells) == 2  # it decides when set
    assert local_workers(LauncherConfig(kind="ray", workers=4)) == 1  # no progress comes back from a cluster
    with pytest.raises(ValueError, match="cells_per_device"):
        LauncherConfig(cells_per_device=0)


def test_cells_per_device_runs_cells_side_by_side_each_once(sweep_cells, tmp_path: Path) -> None:
    outcomes = launch(sweep_cells, tmp_path, LauncherConfig(cells_per_device=2))
    assert outcomes == {"ran": len(sweep_cells), "done": 0, "busy": 0}
    assert len(_learning(tmp_path)) == len(sweep_cells)


def test_a_fine_tuning_cell_waits_for_its_pretraining_cell_held_by_another_worker(sweep_cells, tmp_path: Path) -> None:
    """A claim launches fine-tuning cells beside their pretraining cell: a worker that finds the
    pretraining cell claimed waits for it instead of recording its own cell as failed."""
    import threading

    from harness.execute import pretrained_state
    from harness.locks import try_claim
    from harness.store import Store

    store = Store(tmp_path)
    pretrain = sweep_cells[0]
    claim = try_claim(store.record_path(pretrain.suite, pretrain.run_id).parent)
    assert claim is not None
    threading.Timer(0.5, claim.release).start()  # the other worker gives the cell up (finishes or dies)
    started = time.monotonic()
    # a sweep cell keeps no model state: once it may, the wait ends in training the cell, then in that message
    with pytest.raises(RuntimeError, match="model.pt"):
        pretrained_state(pretrain, store, None, poll_seconds=0.05)
    assert time.monotonic() - started >= 0.5
    assert execute(pretrain, tmp_path)[0] == "done"  # trained by the waiting worker, not recorded as failed


def _makespan(order_from, cells: list, cost: dict, workers: int = 2) -> tuple[float, list]:
    """A pool of `workers` simulated: each free worker takes `order_from`'s next cell; returns when the
    last cell ends and the order cells were handed out."""
    from harness.local_pool import CellQueue

    queue = CellQueue(cells) if order_from == "queue" else None
    todo, free_at, handed, running = list(cells), [0.0] * workers, [], []
    while (queue if queue is not None else todo):
        w = min(range(workers), key=free_at.__getitem__)
        now = free_at[w]
        for end, cell in sorted(running, key=lambda r: r[0]):  # tell the queue what ended by now
            if end <= now and queue is not None:
                queue.finished(cell, cost[CellQueue.group(cell)])
        running = [r for r in running if r[0] > now]
        if queue is not None:
            cell = queue.peek()
            queue.take(cell)
        else:
            cell = todo.pop(0)
        handed.append(cell)
        free_at[w] = now + cost[CellQueue.group(cell)]
        running.append((free_at[w], cell))
    return max(free_at), handed


def test_the_pool_queue_runs_one_cell_per_group_first_then_the_dearest() -> None:
    """Plan order ends a run on the late dear cells while the other worker idles; the queue learns
    each (task, method)'s cost from its first cell and hands out the dear ones first."""
    cells = plan(resolve(["suite=vision-vit", "seeds=3", "method=[backprop,evolution,zeroth_order]"]))
    cost = {("vit", "backprop"): 5.0, ("vit", "evolution"): 5.0, ("vit", "zeroth_order"): 40.0,
            ("mlp", "backprop"): 1.0, ("mlp", "evolution"): 1.0, ("mlp", "zeroth_order"): 1.0}
    planned, _ = _makespan("plan", cells, cost)
    queued, handed = _makespan("queue", cells, cost)
    assert planned == 95.0 and queued == 85.0  # the lower bound is max(40, 159 / 2) = 79.5
    groups = [(c.task.label, c.method.name) for c in handed]
    assert groups[:6] == list(cost)  # one of each group first, in plan order
    assert groups[-1][0] == "mlp"  # the cheap cells end the run
    assert sorted(c.run_id for c in handed) == sorted(c.run_id for c in cells)  # each cell once


def test_sigterm_to_a_one_worker_run_stops_the_queue_not_just_its_cell(tiny_suite, tmp_path: Path) -> None:
    """With one worker the cells run in the launcher's own process: SIGTERM must end the run (exit
    128 + 15, the interrupted cell left to run next time), not be recorded as that cell's failure
    while the run goes on with the next cell (as it did when Cancelled was an Exception)."""
    suite = tiny_suite(seeds=4, steps=3000, eval_every=1000)
    proc = _bench(["run", f"suite={suite}", f"results_dir={tmp_path}", "launcher.workers=1"])
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/*/.lock")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # inside the first cell's steps
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, output
    statuses = [json.loads(p.read_text())["status"] for p in tmp_path.glob("*/*/record.json")]
    assert "failed" not in statuses and len(statuses) < 4, output
