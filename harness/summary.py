"""The end-of-run terminal table: method x task, mean +- std over seeds, from records.

Built from the stored records (never from the run's memory), so a resumed run prints
the same table as the one that trained everything. Continual cells (records with a
`continual` section) get a third table: average accuracy, forgetting and the transfers
as the mean with a 95% Student-t interval over seeds (harness/stats.py).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from rich.table import Table


@dataclass(frozen=True)
class Row:
    task: str
    method: str
    metric: str | None
    seeds: int
    completed: int
    test_mean: float | None
    test_std: float | None
    steps: float | None
    examples: float | None
    train_seconds: float | None
    step_ms: float | None
    flops_per_step: float | None
    ledger_mib: float | None
    measured_mib: float | None
    measured_kind: str
    energy_j: float | None
    energy_note: str
    other_statuses: str
    continual: dict[str, Any] | None = None  # {"setting": str, metric: (mean, low, high) | None}
    scale: list[dict[str, Any]] | None = None  # memory-at-scale rows (harness/scale_memory.py), first seed's


MIB = 2**20
CONTINUAL_METRICS = {"average_accuracy": "average acc.", "forgetting": "forgetting", "bwt": "BWT", "fwt": "FWT"}


def _measured_bytes(record: dict[str, Any]) -> tuple[float | None, str]:
    """The headline measured peak: CUDA max allocated on GPUs, the process peak RSS on CPUs."""
    measured = record.get("memory", {}).get("measured", {})
    if measured.get("cuda_max_allocated_bytes") is not None:
        return measured["cuda_max_allocated_bytes"], "cuda max allocated"
    return measured.get("process_peak_rss_bytes"), "process peak RSS"


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _continual(done: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean and 95% t interval over seeds of each continual metric (None: no continual records)."""
    cells = [r["continual"] for r in done if r.get("continual")]
    if not cells:
        return None
    from harness.stats import t_interval  # scipy: imported only when a continual table is printed

    settings = {c["scenario"] + (", joint" if c["regime"] == "joint" else "") for c in cells}
    out: dict[str, Any] = {"setting": "; ".join(sorted(settings))}
    for name in CONTINUAL_METRICS:
        values = [c[name] for c in cells if c.get(name) is not None]
        interval = t_interval(values) if values else None
        out[name] = None if interval is None else (interval.estimate, interval.low, interval.high)
    return out


def summarise(records: list[dict[str, Any]]) -> list[Row]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["task_label"], record["method"])].append(record)
    rows = []
    for (task, method), group in groups.items():
        done = [r for r in group if r.get("status") == "completed"]
        metric = done[0]["final"]["metric"] if done else None
        tests = [r["final"]["test"][metric] for r in done]
        others = defaultdict(int)
        for r in group:
            if r.get("status") != "completed":
                others[r.get("status")] += 1
        rows.append(Row(
            task=task,
            method=method,
            metric=metric,
            seeds=len(group),
            completed=len(done),
            test_mean=_mean(tests),
            test_std=statistics.stdev(tests) if len(tests) > 1 else None,
            steps=_mean([r["counters"]["steps"] for r in done]),
            examples=_mean([r["counters"]["examples"] for r in done]),
            train_seconds=_mean([r["timing"]["train_seconds"] for r in done]),
            step_ms=_mean([1e3 * r["timing"]["median_step_seconds"] for r in done
                           if r["timing"].get("median_step_seconds") is not None]),
            flops_per_step=_mean([r["flops"]["total"] / r["counters"]["steps"] for r in done
                                  if r.get("flops", {}).get("total") is not None]),
            ledger_mib=_mean([r["memory"]["ledger"]["total_bytes"] / MIB for r in done if "memory" in r]),
            measured_mib=_mean([_measured_bytes(r)[0] / MIB for r in done if _measured_bytes(r)[0] is not None]),
            measured_kind=next((_measured_bytes(r)[1] for r in done), ""),
            energy_j=_mean([r["energy"]["joules"] for r in done if r.get("energy", {}).get("joules") is not None]),
            energy_note=next((f"null: {r['energy']['reason']}" for r in done
                              if r.get("energy") and r["energy"].get("joules") is None), ""),
            other_statuses=", ".join(f"{n} {s}" for s, n in sorted(others.items())),
            continual=_continual(done),
            scale=next((r["scale"]["rows"] for r in done if r.get("scale")), None),
        ))
    return sorted(rows, key=lambda r: (r.task, r.method))


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _interval(value: tuple[float, float, float] | None) -> str:
    """'mean ± half-width' of a (symmetric) t interval; the mean alone for one seed."""
    if value is None:
        return "—"
    mean, low, high = value
    return f"{mean:.3f}" if not math.isfinite(low) else f"{mean:.3f} ± {(high - low) / 2:.3f}"


def render(rows: list[Row], title: str) -> list[Table]:
    """Two tables (results, then cost), and a third for continual cells: '—' where unknown."""
    metrics = sorted({r.metric for r in rows if r.metric})
    state = "the validation-selected state"
    if any(r.continual for r in rows):
        state = "the last state" if all(r.continual for r in rows) else state + " (continual cells: the last state)"
    results = Table(title=f"{title}: test {', '.join(metrics) or 'metric'} of {state}")
    for column in ("task", "method", "test (mean ± std)", "seeds", "steps", "examples", "train s", "not completed"):
        results.add_column(column, justify="left" if column in ("task", "method", "not completed") else "right")
    for row in rows:
        metric = "—"
        if row.test_mean is not None:
            std = f" ± {row.test_std:.4f}" if row.test_std is not None else ""
            metric = f"{row.test_mean:.4f}{std}"
        results.add_row(row.task, row.method, metric, f"{row.completed}/{row.seeds}", _fmt(row.steps, ".0f"),
                        _fmt(row.examples, ".0f"), _fmt(row.train_seconds, ".1f"), row.other_statuses or "")

    kinds = sorted({r.measured_kind for r in rows if r.measured_kind})
    energy = sorted({r.energy_note for r in rows if r.energy_note})
    caption = "; ".join(([f"measured = {', '.join(kinds)}"] if kinds else []) + [f"energy {e}" for e in energy])
    cost = Table(title=f"{title}: cost per cell", caption=caption or None)
    for column in ("task", "method", "ms/step (median)", "GFLOP/step", "ledger MiB", "measured MiB", "energy J"):
        cost.add_column(column, justify="left" if column in ("task", "method") else "right")
    for row in rows:
        cost.add_row(row.task, row.method, _fmt(row.step_ms, ".2f"),
                     _fmt(None if row.flops_per_step is None else row.flops_per_step / 1e9, ".4f"),
                     _fmt(row.ledger_mib, ".2f"), _fmt(row.measured_mib, ".0f"), _fmt(row.energy_j, ".1f"))
    tables = [results, cost]
    if any(r.scale for r in rows):
        tables.append(scale_table(rows, title))
    continual_rows = [r for r in rows if r.continual]
    if not continual_rows:
        return tables
    by_task = {r.task: r.continual["setting"] for r in continual_rows if r.continual}
    settings = "; ".join(f"{task}: {setting}" for task, setting in by_task.items())
    continual = Table(title=f"{title}: continual learning (last state), mean ± 95% t interval over seeds",
                      caption=f"scenarios: {settings}. joint: trained on the union of the experiences (the upper "
                              "bound). Forgetting: Chaudhry et al. 2018; BWT, FWT: Lopez-Paz & Ranzato 2017.")
    for column in ("task", "method", *CONTINUAL_METRICS.values()):
        continual.add_column(column, justify="left" if column in ("task", "method") else "right", no_wrap=True)
    for row in continual_rows:
        assert row.continual is not None
        continual.add_row(row.task, row.method, *(_interval(row.continual[name]) for name in CONTINUAL_METRICS))
    return [*tables, continual]


GIB = 2**30
ACTIVATIONS = ("saved_activations", "autocast_weight_copies")
LEDGER_COLUMNS = {"parameters": "params", "gradients": "grads", "optimizer_state": "optim"}


def _mixed_precision(rows: list[dict[str, Any]], checkpoint: bool) -> float | None:
    """Ledger total of backprop with bf16 autocast (and activation checkpointing when asked)."""
    for row in rows:
        config = row["config"]
        if row["method"] == "backprop" and config.get("bf16") and bool(config.get("checkpoint")) == checkpoint:
            return row["ledger_total"]
    return None


def _fits(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def scale_table(rows: list[Row], title: str) -> Table:
    """Memory at scale: ledger bytes by category (GiB), ratios to mixed-precision backprop, 80 GB verdicts."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_task[row.task] += row.scale or []
    table = Table(title=f"{title}: memory to train one step, GiB ({', '.join(by_task)})",
                  caption="ledger by category (harness/ledger.py): activ. = saved activations + autocast weight "
                          "copies; other = buffers the method declares besides optimizer state. amp = backprop with "
                          "bf16 autocast and AdamW (FP32 weights, gradients, moments); amp/x = amp's ledger / this "
                          "ledger (x less memory), +ckpt/x the same for amp with activation checkpointing. peak = "
                          "torch.cuda.max_memory_allocated on a GPU, else the meta device's simulated allocator peak "
                          "(no-grad forward activations included). 80GB? = fits in 8e10 bytes.")
    table.add_column("method", justify="left", max_width=26)
    for column in (*LEDGER_COLUMNS.values(), "activ.", "other", "ledger", "amp/x", "+ckpt/x", "80GB?", "peak", "80GB?"):
        table.add_column(column, justify="right", no_wrap=True)
    for task, scale_rows in by_task.items():
        amp, amp_ckpt = _mixed_precision(scale_rows, False), _mixed_precision(scale_rows, True)
        for row in scale_rows:
            ledger, total = row["ledger"], row["ledger_total"]
            known = set(LEDGER_COLUMNS) | set(ACTIVATIONS)
            peak = row["cuda_max_allocated"] if row.get("cuda_max_allocated") is not None else row["meta_simulated_peak"]
            fits_peak = row["fits_80gb_peak"] if row.get("cuda_max_allocated") is None else peak <= 80e9
            if row.get("cuda_error"):
                peak_text, fits_peak = row["cuda_error"][:24], False
            else:
                peak_text = _fmt(None if peak is None else peak / GIB, ".2f")
            table.add_row(
                row["label"], *(_fmt(ledger.get(k, 0) / GIB, ".2f") for k in LEDGER_COLUMNS),
                _fmt(sum(ledger.get(k, 0) for k in ACTIVATIONS) / GIB, ".2f"),
                _fmt(sum(v for k, v in ledger.items() if k not in known) / GIB, ".3f").lstrip("0"),
                _fmt(total / GIB, ".2f"),
                _fmt(None if amp is None else amp / total, ".2f"),
                _fmt(None if amp_ckpt is None else amp_ckpt / total, ".2f"),
                _fits(row["fits_80gb_ledger"]), peak_text, _fits(fits_peak))
    return table
