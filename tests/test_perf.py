"""`bench perf` (harness/perf.py): cost per forward-equivalent against backprop, and a projection."""

from __future__ import annotations

import math

import pytest

from harness import perf
from harness.cli import main


def test_rows_put_each_method_against_backprop_and_project_the_suite(tiny_suite) -> None:
    args = [f"suite={tiny_suite(seeds=2, steps=40, eval_every=20)}", "method=[backprop,zeroth_order]"]
    rows = perf.measure(args, steps=2, repeats=2, warmup=1)
    by_method = {r.method: r for r in rows}
    assert set(by_method) == {"backprop", "zeroth_order"}
    backprop, mezo = by_method["backprop"], by_method["zeroth_order"]
    assert backprop.relative == pytest.approx(1.0)
    assert mezo.forward_equivalents == 2.0  # SPSA: two forwards per perturbation, n = 1 by default
    assert mezo.relative == pytest.approx(mezo.ms_per_fe / backprop.ms_per_fe)
    # the counted FLOPs: MeZO's two forwards exactly; backprop's backward skips the input gradient
    # of the first layer (the tiny suite's digits MLP)
    assert mezo.flop_fe == pytest.approx(2.0)
    assert 2.0 < backprop.flop_fe < 3.0 and backprop.cpu_per_flop == pytest.approx(1.0)
    assert backprop.forward_equivalents == pytest.approx(backprop.flop_fe, rel=0.02)  # it declares what it counts
    for row in rows:  # a steps budget: 40 steps each, evaluated every 20 (2 checkpoints, test)
        assert row.planned_steps == 40 and row.eval_s > 0 and row.eval_share is not None
        assert row.projected_s == pytest.approx(row.setup_s + 40 * row.ms_per_step / 1e3 + row.eval_s)
    run, _ = perf.suite_cells(args)
    total, workers = perf.project(run, rows)
    assert total == pytest.approx(sum(r.projected_s for r in rows) * 2 / workers)
    text = perf.table(rows)
    assert "backprop" in text and "zeroth_order" in text and "vs bp" in text


def test_forward_equivalent_budgets_give_costlier_steps_fewer_of_them(tiny_suite) -> None:
    args = [f"suite={tiny_suite()}", "method=[backprop,zeroth_order]", "budget.forward_equivalents=480"]
    rows = {r.method: r for r in perf.measure(args, steps=1, repeats=1, warmup=0, with_eval=False)}
    backprop = rows["backprop"].forward_equivalents  # its counted FLOPs: < 3 on the tiny MLP
    assert 2 < backprop < 3 and rows["backprop"].planned_steps == math.ceil(480 / backprop)
    assert rows["zeroth_order"].planned_steps == 240  # 2 forward-equivalents a step


def test_bench_perf_command_prints_the_table_and_refuses_a_bad_key(tiny_suite, capsys) -> None:
    assert main(["perf", f"suite={tiny_suite()}", "--steps", "1", "--repeats", "1", "--no-eval"]) == 0
    assert "ms/fe" in capsys.readouterr().out
    assert main(["perf", f"suite={tiny_suite()}", "bugdet.steps=3"]) == 2
    assert "bugdet" in capsys.readouterr().err


def test_no_method_spends_more_flops_than_it_declares(tiny_suite) -> None:
    """Every classification method's declared forward-equivalents cover the FLOPs its step
    spends (counted as the meter counts them): a method that declares too few gets more compute
    than its budget in a forward-equivalent-matched suite (forward_only once declared 2 where it
    spent 5.2 on the default MLP). Methods that follow backprop's 3-per-step convention declare
    more than their FLOPs where a first layer needs no input gradient (0.58-0.8 here)."""
    rows = perf.measure([f"suite={tiny_suite()}", "method=all", "method_exclude=[ewc]"], steps=1, repeats=1,
                        warmup=2, with_eval=False)
    assert {"backprop", "forward_only", "predictive_coding", "zeroth_order", "evolution"} <= {r.method for r in rows}
    for row in rows:
        assert row.flop_fe is not None and row.forward_equivalents > 0, row.method
        assert 0.5 < row.flop_fe / row.forward_equivalents < 1.2, (row.method, row.forward_equivalents, row.flop_fe)
    # backprop, the baseline every forward-equivalent budget is held against, declares its counted FLOPs:
    # no first-layer input gradient here, so fewer than the convention's 3
    backprop = next(row for row in rows if row.method == "backprop")
    assert backprop.flop_fe == pytest.approx(backprop.forward_equivalents, rel=0.02) and backprop.forward_equivalents < 3
