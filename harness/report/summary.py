"""The end-of-run terminal table: method x task, mean +- std over seeds, from records.

Built from the stored records (never from the run's memory), so a resumed run prints
the same table as the one that trained everything. Continual cells (records with a
`continual` section) get a third table: average accuracy, forgetting and the transfers
as the mean with a 95% Student-t interval over seeds (harness/stats.py). Control cells
(records with a `control` section) get one too: samples-to-target over the seeds that
reached the target (and how many did), a lower bound counting the others at their whole
budget, and the final moving-average return. Language-model cells (records with
`final.lm_eval`) get an lm-eval table: validation and test bits per byte and, per lm-eval
task, acc / acc_norm / bits_per_byte with lm-eval's stderr.
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
    control: dict[str, Any] | None = None  # samples-to-target and return, (mean, low, high) | None
    lm: dict[str, Any] | None = None  # {"val": mean, "tasks": {lm-eval task: {metric: (mean, stderr)}}}
    scale: list[dict[str, Any]] | None = None  # memory-at-scale rows (harness/loops/memory_only.py), first seed's


MIB = 2**20
CONTINUAL_METRICS = {"average_accuracy": "average acc.", "forgetting": "forgetting", "bwt": "BWT", "fwt": "FWT"}
LM_EVAL_METRICS = ("acc", "acc_norm", "bits_per_byte")


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


def _control(done: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Samples-to-target (reached seeds; and a bound over all) and final return, with 95% t intervals."""
    cells = [r for r in done if r.get("control")]
    if not cells:
        return None
    from harness.stats import t_interval

    def interval(values: list[float]) -> tuple[float, float, float] | None:
        if not values:
            return None
        i = t_interval(values)
        return (i.estimate, i.low, i.high)

    reached = [float(r["control"]["samples_to_target"]) for r in cells if r["control"]["samples_to_target"] is not None]
    bound = [float(r["control"]["samples_to_target"] or r["counters"]["env_steps"]) for r in cells]
    returns = [float(r["final"]["test"]["return"]) for r in cells if r["final"]["test"].get("return") is not None]
    return {"samples_to_target": interval(reached), "reached": len(reached), "seeds": len(cells),
            "lower_bound": statistics.fmean(bound) if len(reached) < len(cells) else None,
            "return": interval(returns), "target": cells[0]["control"]["target_return"],
            "window": cells[0]["control"]["window"]}


def _lm(done: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Validation metric and lm-eval scores, each the mean over seeds (stderr: lm-eval's, averaged)."""
    cells = [r for r in done if (r.get("final") or {}).get("lm_eval") is not None]
    if not cells:
        return None
    tasks: dict[str, dict[str, tuple[float, float | None]]] = {}
    names = sorted({name for r in cells for name in r["final"]["lm_eval"].get("tasks", {})})
    for name in names:
        scores = [r["final"]["lm_eval"]["tasks"].get(name, {}) for r in cells]
        for metric in LM_EVAL_METRICS:
            values = [s[metric] for s in scores if s.get(metric) is not None]
            errors = [s[f"{metric}_stderr"] for s in scores if s.get(f"{metric}_stderr") is not None]
            if values:
                tasks.setdefault(name, {})[metric] = (statistics.fmean(values), _mean(errors))
    val = _mean([r["final"]["val"][r["final"]["metric"]] for r in cells])
    info = [r.get("task_info") or {} for r in cells]
    epochs = _mean([r["counters"]["examples"] / i["windows_per_epoch"] for r, i in zip(cells, info)
                    if i.get("windows_per_epoch")])
    unigram = _mean([i["unigram_test_bits_per_byte"] for i in info if i.get("unigram_test_bits_per_byte") is not None])
    reasons = sorted({r["final"]["lm_eval"]["reason"] for r in cells if r["final"]["lm_eval"].get("reason")})
    return {"val": val, "epochs": epochs, "unigram": unigram, "tasks": tasks, "reason": "; ".join(reasons)}


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
            control=_control(done),
            lm=_lm(done),
            scale=next((r["scale"]["rows"] for r in done if r.get("scale")), None),
        ))
    return sorted(rows, key=lambda r: (r.task, r.method))


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _interval(value: tuple[float, float, float] | None, spec: str = ".3f") -> str:
    """'mean ± half-width' of a (symmetric) t interval; the mean alone for one seed."""
    if value is None:
        return "—"
    mean, low, high = value
    return format(mean, spec) if not math.isfinite(low) else f"{mean:{spec}} ± {(high - low) / 2:{spec}}"


def _control_table(rows: list[Row], title: str) -> Table:
    targets = "; ".join(f"{r.task}: {r.control['target']} over {r.control['window']} episodes"
                        for r in {r.task: r for r in rows if r.control}.values() if r.control)
    table = Table(title=f"{title}: control, environment steps to the target return, mean ± 95% t interval over seeds",
                  caption=f"targets (moving-average return of the training episodes): {targets}. "
                          "samples-to-target is over the seeds that reached it; '≥' counts the others at their whole "
                          "budget (a lower bound). Return: moving average at the end of the budget.")
    for column in ("task", "method", "samples-to-target", "reached", "≥ all seeds", "final return"):
        table.add_column(column, justify="left" if column in ("task", "method") else "right", no_wrap=True)
    for row in rows:
        c = row.control
        assert c is not None
        table.add_row(row.task, row.method, _interval(c["samples_to_target"], ".0f"), f"{c['reached']}/{c['seeds']}",
                      "—" if c["lower_bound"] is None else f"≥ {c['lower_bound']:.0f}", _interval(c["return"]))
    return table


def render(rows: list[Row], title: str) -> list[Table]:
    """Two tables (results, then cost), and a third for continual cells: '—' where unknown."""
    metrics = sorted({r.metric for r in rows if r.metric})
    state = "the validation-selected state"
    if any(r.continual for r in rows):
        state = "the last state" if all(r.continual for r in rows) else state + " (continual cells: the last state)"
    if rows and all(r.control for r in rows if r.completed):
        state = "the training episodes (online, last state)"
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
    if any(r.lm for r in rows):
        tables.extend(_lm_tables(rows, title))
    control_rows = [r for r in rows if r.control]
    if control_rows:
        tables.append(_control_table(control_rows, title))
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


def _score(value: tuple[float, float | None] | None) -> str:
    if value is None:
        return "—"
    mean, stderr = value
    return f"{mean:.3f}" if stderr is None else f"{mean:.3f} ± {stderr:.3f}"


def _lm_tables(rows: list[Row], title: str) -> list[Table]:
    """Bits per byte against the unigram baseline, then lm-eval's scores per lm-eval task."""
    lm_rows = [r for r in rows if r.lm]
    bpb = Table(title=f"{title}: bits per byte of the validation-selected state (lower is better)",
                caption="epochs: passes over the training windows. unigram: the test split under the training "
                        "split's byte frequencies, the baseline to beat. Means over seeds.")
    for column in ("task", "method", "epochs", "val bpb", "test bpb", "unigram test bpb"):
        bpb.add_column(column, justify="left" if column in ("task", "method") else "right", no_wrap=True)
    for row in lm_rows:
        assert row.lm is not None
        bpb.add_row(row.task, row.method, _fmt(row.lm["epochs"], ".2f"), _fmt(row.lm["val"], ".4f"),
                    _fmt(row.test_mean, ".4f"), _fmt(row.lm["unigram"], ".4f"))
    scores = Table(title=f"{title}: lm-eval on the validation-selected state",
                   caption="mean over seeds ± lm-eval's stderr (over documents; mean over seeds); lm-eval gives "
                           "no stderr for bits_per_byte.")
    for column in ("task", "method", "lm-eval task", *LM_EVAL_METRICS):
        scores.add_column(column, justify="left" if column in ("task", "method", "lm-eval task") else "right",
                          no_wrap=True)
    for row in lm_rows:
        assert row.lm is not None
        tasks = row.lm["tasks"] or {f"— {row.lm['reason']}": {}}
        for i, (name, values) in enumerate(tasks.items()):
            scores.add_row(row.task if i == 0 else "", row.method if i == 0 else "", name,
                           *(_score(values.get(m)) for m in LM_EVAL_METRICS))
    return [bpb, scores]


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
