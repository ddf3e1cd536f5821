"""`bench claims list | new ID | verify ID|all [key=value ...] | calibrate [sims=N] [seed=S]`.

The claims commands and how a verdict is printed (claim, statement, robustness, interval,
every seed). They are apart from harness/cli.py, which parses the arguments and dispatches,
because they are a command group of their own; harness.claims (and harness.calibrate) are
imported only when a claims command runs, since they need scipy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.cli_common import Display, console, directory_of, fail
from harness.config import SUITES_DIR
from harness.launch import local_workers
from harness.perf_eta import format_seconds
from harness.store import Store, StoreError
from harness.typed_config import ConfigError, parse_overrides

CLAIMS_DIR = SUITES_DIR / "claims"


def cmd_claims(args: argparse.Namespace) -> int:
    from harness import claims as claims_mod  # scipy is only needed here

    claims_dir = Path(args.claims_dir)
    try:
        if args.action == "list":
            overrides = parse_overrides([a for a in args.ids if "=" in a])
            return _claims_list(claims_mod, claims_dir, directory_of("results_dir", args.results_dir, overrides, "results"))
        if args.action == "calibrate":
            return _claims_calibrate(parse_overrides(args.ids))
        if not args.ids:
            return fail(f"bench claims {args.action} needs a claim id{' or all' if args.action == 'verify' else ''}.")
        if args.action == "new":
            console.print(f"wrote {claims_mod.new_claim(args.ids[0], claims_dir)}: edit it, then "
                          f"`bench claims verify {args.ids[0]}`")
            return 0
        ids, extra = [a for a in args.ids if "=" not in a], parse_overrides([a for a in args.ids if "=" in a])
        paths = claims_mod.claim_paths(claims_dir) if ids == ["all"] else [claims_mod.find_claim(i, claims_dir)
                                                                             for i in ids]
        claims = [(claims_mod.load_claim(p), p) for p in paths]
    except ConfigError as exc:
        return fail(str(exc))
    try:
        store = Store(directory_of("results_dir", args.results_dir, extra, "results"))
    except ConfigError as exc:
        return fail(str(exc))
    try:
        store.check_writable()
    except StoreError as exc:
        return fail(str(exc))
    try:
        runner = claims_mod.ClaimCells(store, extra)
    except ConfigError as exc:
        return fail(str(exc))
    display = Display(None, local_workers(runner.launcher))
    runner.on_progress, runner.on_record, runner.on_round = display.on_progress, display.on_record, display.on_round
    if args.plan:
        return _plan(claims, runner, robustness=not args.no_robustness)
    verdicts = []
    with display.progress:
        try:  # every cell of every claim first, launched together (launcher.* says where)
            claims_mod.prepare(claims, runner, robustness=not args.no_robustness)
        except ConfigError as exc:
            return fail(str(exc))
        except StoreError as exc:
            return fail(f"{exc} Records written before are intact.")
        for claim, path in claims:
            try:
                document = claims_mod.verify(claim, runner, path, robustness=not args.no_robustness)
                claims_mod.write_verdict(store, document)
            except ConfigError as exc:
                return fail(f"claim {claim.id}: {exc}")
            except StoreError as exc:
                return fail(f"claim {claim.id}: {exc} Records and verdicts written before are intact.")
            verdicts.append(document)
            _print_verdict(document)
    try:
        store.rebuild_index()
    except StoreError as exc:
        return fail(f"{exc} The records are intact; the index is a cache that the next run rebuilds.")
    total = claims_mod.cost(runner.all_touched)  # a cell shared by claims counts once here
    console.print(f"{len(verdicts)} claims verified, {runner.ran} cells trained; verdicts in {store.verdicts_dir}")
    console.print(f"the verdicts read {total['cells']} cells, whose recorded wall times sum to "
                  f"{format_seconds(total['cell_seconds'])} (h:mm:ss; on W workers at least that / W)"
                  + (f"; {total['cells_timed_by_training']} of them, recorded before cells kept their setup time, "
                     "by training and evaluation seconds" if total["cells_timed_by_training"] else "")
                  + (f"; {total['cells_without_timing']} cells have no timing (memory-only cells, for one, train nothing)"
                     if total["cells_without_timing"] else ""))
    return 0


def _plan(claims: list[Any], runner: Any, robustness: bool) -> int:
    from harness.claims_plan import plan_claims  # scipy, as harness.claims

    try:
        plan = plan_claims(claims, runner, robustness)
    except ConfigError as exc:
        return fail(str(exc))
    workers = local_workers(runner.launcher, plan.to_train)
    table = Table("suite", "task", "method", "budget", "cells", "projected", title="cells to train now")
    for (suite, task, method, budget), (count, seconds) in sorted(plan.groups.items()):
        table.add_row(suite, task, method, budget, str(count), "no similar record" if seconds is None
                      else format_seconds(seconds))
    console.print(table)
    console.print(f"{len(claims)} claims: {len(plan.to_train)} cells to train now (tuning trials, and the compared "
                  f"seeds of claims that tune nothing), at most {plan.later} more once the trials are in")
    if not plan.to_train:
        console.print("nothing to train: every cell these verdicts read is recorded")
        return 0
    if plan.projected_seconds is None:
        console.print("no projection: the store holds no record of a similar cell (same suite, task and method); "
                      "`bench perf` probes a suite's cells instead")
        return 0
    total = plan.projected_seconds + (plan.later_seconds or 0.0)
    console.print(f"projected cell time: {format_seconds(plan.projected_seconds)} for {plan.projected} of the "
                  f"{len(plan.to_train)} cells to train now"
                  + (f" ({len(plan.to_train) - plan.projected} have no similar record: not included)"
                     if plan.projected < len(plan.to_train) else "")
                  + f", {format_seconds(plan.later_seconds)} for the later ones; on {workers} worker"
                  + f"{'s' if workers != 1 else ''} about {format_seconds(total / workers)} "
                  "(from this store's records of similar cells, scaled to each budget: a projection, not a measurement)")
    return 0


VERDICT_COLOURS = {"supported": "green", "refuted": "red", "inconclusive": "yellow", "not comparable": "magenta",
                   "not testable": "cyan"}


def _interval_text(interval: list[float | None], digits: int) -> str:
    """`[low, high]`, an open end (None) written as -inf / inf."""
    low, high = (("-inf" if i == 0 else "inf") if x is None else f"{x:.{digits}g}" for i, x in enumerate(interval))
    return f"[{low}, {high}]"


def _short_estimate(decided: dict[str, Any] | None) -> str:
    """` 3.33 [2.04, 5.51]` for one robustness setting, or nothing when it has no estimate."""
    if not decided or decided.get("estimate") is None:
        return ""
    return f" {decided['estimate']:.3g} {_interval_text(decided.get('interval') or [None, None], 3)}"


def _print_verdict(document: dict[str, Any]) -> None:
    verdict = document["verdict"]
    console.rule(f"[bold]{document['claim']}[/]: [{VERDICT_COLOURS[verdict]}]{verdict}[/]")
    console.print(f"“{document['statement']}” — {document['source']}", highlight=False, markup=False)
    robust = document.get("robustness") or {}
    if robust:
        console.print(f"robustness: {robust.get('label')} ({robust.get('reason')})", highlight=False, markup=False)
        settings = [f"{name} {verdict}{_short_estimate((robust.get('estimates') or {}).get(name))}"
                    for name, verdict in (robust.get("verdicts") or {}).items()]
        if settings:
            console.print("  " + "; ".join(settings), highlight=False, markup=False)
    console.print(f"{document['quantity']} {document['relation']}: {document['reason']}", highlight=False,
                  markup=False)
    tuning = document.get("tuning") or {}
    if tuning.get("reason"):
        console.print(f"tuning: {tuning['reason']}", highlight=False, markup=False)
    if cost := document.get("cost"):
        console.print(f"cells read: {cost['cells']} (tuning trials and every budget included), their recorded wall "
                      f"times summing to {format_seconds(cost['cell_seconds'])}", highlight=False)
    if document["interval"]:
        estimate = "unbounded" if document["estimate"] is None else f"{document['estimate']:.4g}"
        console.print(f"estimate {estimate}, {100 * document['confidence']:.4g}% interval "
                      f"{_interval_text(document['interval'], 4)} ({document['interval_method']}; "
                      f"look {document.get('look')})"
                      + (f"; about {document['seeds_to_decide']} seeds would decide it at "
                         f"{100 * document.get('seeds_to_decide_power', 0.8):.0f}% power"
                         if document.get("seeds_to_decide") else ""), highlight=False)

    def show(x: Any) -> str:
        return "unbounded" if x is None else f"{x:.6g}"

    for row in document["per_seed"]:
        base = "" if row.get("baseline") is None else f", baseline {show(row['baseline'])}"
        span = (f" in [{show(row.get('low'))}, {show(row.get('high'))}]"
                if row.get("low", row["value"]) != row["value"] or row.get("high", row["value"]) != row["value"] else "")
        console.print(f"  seed {row['seed']}: method {show(row['method'])}{base} -> {show(row['value'])}{span}"
                      + (" (diverged)" if row.get("method_diverged") else ""), highlight=False)


def _claims_list(claims_mod: Any, claims_dir: Path, results_dir: Path) -> int:
    table = Table(title=f"claims in {claims_dir}")
    for column in ("id", "quantity", "relation", "method vs baseline", "suite/task", "last verdict"):
        table.add_column(column)
    store = Store(results_dir, read_only=True)
    store.check_readable()
    verdicts = store.read_verdicts()
    for path in claims_mod.claim_paths(claims_dir):
        claim = claims_mod.load_claim(path)
        document = verdicts.get(claim.id)
        verdict = document.get("verdict") if isinstance(document, dict) else None
        last = ("not verified" if document is None else verdict if isinstance(verdict, str)
                else "unreadable: verify again")
        stale = claims_mod.staleness(document, path, store) if isinstance(verdict, str) else None
        if stale:
            last += f" (stale: {stale})"
        versus = claim.method.name + (f" vs {claim.baseline.name}" if claim.baseline else "")
        table.add_row(claim.id, claim.quantity, claim.relation, versus, f"{claim.suite}/{claim.task}", last)
    console.print(table)
    return 0


def _claims_calibrate(overrides: list[tuple[str, Any]]) -> int:
    """`bench claims calibrate [sims=N] [seed=S]`: false-support rates of simulated false claims."""
    from harness import calibrate

    options = dict(overrides)
    unknown = sorted(set(options) - {"sims", "seed"})
    if unknown:
        return fail(f"bench claims calibrate takes sims=N and seed=S, not {', '.join(unknown)}.")
    sims, seed = int(options.get("sims", 20_000)), int(options.get("seed", 0))
    rows = calibrate.table(sims, seed)
    table = Table(title=f"false support of claims that are false at their boundary ({sims} simulations each)")
    for column in ("scenario", "seeds", "false support", "MC error (1 sd)", "<= 5%"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.scenario, row.seeds, f"{row.rate:.2%}", f"{row.mc_error:.2%}",
                      "yes" if row.rate <= 0.05 else "NO")
    console.print(table)
    console.print(calibrate.markdown(rows, sims, seed), markup=False, highlight=False)
    return 0 if all(row.rate <= 0.05 for row in rows) else 1
