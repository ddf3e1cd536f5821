"""`bench`: the command line.

    bench run suite=vision-vit [key=value ...] [--dry-run]
    bench sweep suite=vision-vit method=[backprop,forward_forward] method.lr=[1e-3,3e-4] launcher.kind=ray
    bench status suite=vision-vit [key=value ...]
    bench claims list | new ID | verify ID|all [key=value ...] | calibrate [sims=N] [seed=S]
    bench report SUITE|claims [results_dir=DIR] [reports_dir=DIR]
    bench export mlflow|tensorboard [SUITE] [results_dir=DIR] [tracking_uri=URI|logdir=DIR]
    bench list methods|tasks|suites
    bench env
    bench data shakespeare [--dir DIR] [--force]

Exit codes: 0 success; 1 some cell failed or diverged; 2 bad input (nothing trained) or a
results directory that cannot be read or written (one message naming the path and the fix);
130 / 143 interrupted by SIGINT / SIGTERM (finished cells are recorded).

Read-only commands (status, report, claims list) never change a record and need no write
access to the results directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness import registry
from harness.config import SUITES_DIR, ConfigError, available_suites, load_suite, resolve
from harness.environment import environment
from harness.export import EXPORTERS, ExportError
from harness.interface import FetchableTask, TaskDataError
from harness.execute import cell_states, check_data, split_by_store
from harness.launch import Cancelled, launch
from harness.sweep import expand_grid
from harness.plan import Cell, plan
from harness.loops.common import StepProgress
from harness.record import Record, SupervisedFinal
from harness.run_config import RunConfig, describe
from harness.store import Store, StoreError
from harness.typed_config import parse_overrides
from harness import report
from harness.report import render, summarise

CLAIMS_DIR = SUITES_DIR / "claims"
# Logs and pipes get 120 columns rather than rich's default 80, so the tables stay legible.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _fail(message: str) -> int:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # "[control]" stays text
    return 2


class _Display:
    """Two bars: the whole run (with time left) and the cell in progress (its budget)."""

    def __init__(self, cells_to_run: int | None) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console, transient=False,
        )
        self.overall = self.progress.add_task("all cells", total=cells_to_run, info="")
        self.current = self.progress.add_task("", total=1.0, info="")
        self.finished = 0
        self._last_update = 0.0

    def on_progress(self, p: StepProgress) -> None:
        now = time.monotonic()
        if now - self._last_update < 0.2 and p.fraction < 1.0:
            return
        self._last_update = now
        loss = "" if p.loss is None else f"loss {p.loss:.3f}"
        val = "" if p.val_metric is None else f" val {p.val_metric:.4f}"
        self.progress.update(
            self.current, description=str(p.cell), completed=p.fraction, info=f"step {p.counters.steps} {loss}{val}"
        )
        self.progress.update(self.overall, completed=self.finished + p.fraction)

    def on_record(self, cell: Cell, outcome: str, record: Record | None) -> None:
        self.finished += 1
        self.progress.update(self.overall, completed=self.finished)
        if outcome == "busy":
            self.progress.console.print(f"[cyan]busy[/] {cell} is being trained by another worker", highlight=False)
            return
        assert record is not None
        status = record.status
        colour = {"completed": "green", "unsupported": "yellow"}.get(status, "red")
        detail = " (recorded meanwhile by another worker)" if outcome == "done" else ""
        if record.final is not None:
            final = record.final
            detail += f" test {final.metric} {_number(record.final_metric('test'))}"
            if record.timing is not None:
                detail += f", {record.timing.train_seconds:.1f} s"
            lm_eval = final.lm_eval if isinstance(final, SupervisedFinal) else None
            if lm_eval is not None:  # LM cells: the validation metric and lm-eval's scores too
                detail += f"; val {final.metric} {_number(record.final_metric('val'))}"
            for name, scores in ((lm_eval.tasks if lm_eval is not None else None) or {}).items():
                shown = [f"{m} {scores[m]:.4f}" + (f" ± {scores[m + '_stderr']:.4f}" if scores.get(m + "_stderr")
                                                   else "") for m in ("acc", "bits_per_byte") if m in scores]
                detail += f"; {name} {', '.join(shown)}"
        elif record.error:
            detail += " " + record.error.splitlines()[0]
        self.progress.console.print(f"[{colour}]{status}[/] {escape(f'{cell}{detail}')}", highlight=False)


def _resolve_cells(overrides: list[str], sweep: bool) -> tuple[RunConfig, list[Cell]]:
    if not sweep:
        run = resolve(overrides)
        return run, plan(run)
    runs = [resolve(point) for point in expand_grid(overrides)]
    cells = list({c.run_id: c for run in runs for c in plan(run)}.values())
    return runs[0], cells


def cmd_run(args: argparse.Namespace) -> int:
    sweep = args.command == "sweep"
    try:
        run, cells = _resolve_cells(args.overrides, sweep)
    except (ConfigError, registry.RegistryError) as exc:
        return _fail(str(exc))
    for note in run.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if args.dry_run:
        if not sweep:
            console.print_json(json.dumps(describe(run), default=str))
        try:
            check_data(cells)
        except (TaskDataError, ConfigError) as exc:
            return _fail(str(exc))
        console.print(f"{len(cells)} cells; the data of every task is available")
        return 0

    store = Store(run.results_dir)
    try:
        store.check_writable()
        store.sweep_stale()
        split = split_by_store(cells, store)
    except StoreError as exc:
        return _fail(str(exc))
    for path in store.set_aside:
        err_console.print(f"[yellow]warning:[/] unreadable record set aside as {escape(str(path))}; its cell will run again.")
    console.print(
        f"{'sweep over ' if sweep else ''}suite [bold]{run.suite}[/]{f' (profile {run.profile})' if run.profile else ''}: "
        f"{len(cells)} cells, {len(split.done)} already recorded, {len(split.todo)} to run"
        f"{'' if sweep else f'; budget {run.budget} per cell'}; launcher {run.launcher.kind}; "
        f"results in {run.results_dir / run.suite}"
    )
    if split.todo:
        try:
            check_data(split.todo)
        except (TaskDataError, ConfigError) as exc:
            return _fail(str(exc))
        display = _Display(len(split.todo))
        try:
            with display.progress:
                outcomes = launch(split.todo, run.results_dir, run.launcher, display.on_progress, display.on_record,
                                  split.seen)
        except StoreError as exc:
            return _fail(f"{exc} Records written before this one are intact.")
        except (KeyboardInterrupt, Cancelled) as exc:
            signum = exc.signum if isinstance(exc, Cancelled) else signal.SIGINT
            err_console.print(f"interrupted ({signal.Signals(signum).name}): the queue is cancelled and the workers "
                              "stopped; finished cells are recorded; run the same command again to resume.")
            return 128 + signum
        if outcomes["busy"]:
            console.print(f"{outcomes['busy']} cells are being trained by other workers: `bench status` shows them; "
                          "run this command again when they finish to see the full table.")
    else:
        console.print("nothing to train: every cell is already recorded (delete its record.json to redo one).")

    try:
        records = [store.load(c.suite, c.run_id) for c in cells]
        records = [r for r in records if r is not None]
        store.rebuild_index()
    except StoreError as exc:
        return _fail(f"{exc} The records are intact; the index is a cache that the next run rebuilds.")
    for table in render(summarise([r.to_dict() for r in records]), title=run.suite):
        console.print(table)
    return 1 if any(r.status in ("failed", "diverged") for r in records) else 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        run, cells = _resolve_cells(args.overrides, sweep=False)
    except (ConfigError, registry.RegistryError) as exc:
        return _fail(str(exc))
    store = Store(run.results_dir, read_only=True)  # status only reads: no lock taken for writing, nothing renamed
    try:
        store.check_readable()
        counts = cell_states(cells, store)
    except StoreError as exc:
        return _fail(str(exc))
    for path in store.unreadable:
        err_console.print(f"[yellow]warning:[/] record {escape(str(path))} is unreadable; counted as missing "
                          "(`bench run` sets it aside and runs its cell again).")
    table = Table(title=f"{run.suite}: {len(cells)} cells in {run.results_dir / run.suite}")
    states = ("completed", "running", "failed", "diverged", "unsupported", "missing")
    for column in ("task", "method", *states):
        table.add_column(column, justify="left" if column in ("task", "method") else "right")
    for (task, method), row in sorted(counts.items()):
        table.add_row(task, method, *(str(row.get(s, 0) or "") for s in states))
    console.print(table)
    return 0


def directory_of(key: str, flag: str | None, overrides: list[tuple[str, Any]], default: str) -> Path:
    """A command's directory `key` (results_dir, reports_dir): `key=DIR` on every command, or
    the older `--results-dir DIR` flag of `claims` and `report`; both at once must agree."""
    given = {str(v) for k, v in overrides if k == key} | ({flag} if flag is not None else set())
    if len(given) > 1:
        raise ConfigError(f"two {key} values given ({', '.join(sorted(given))}): name one, with {key}=DIR.")
    value = given.pop() if given else default
    if not value.strip():
        raise ConfigError(f"{key} is empty: name a directory, e.g. {key}={default}.")
    return Path(value)


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
            return _fail(f"bench claims {args.action} needs a claim id{' or all' if args.action == 'verify' else ''}.")
        if args.action == "new":
            console.print(f"wrote {claims_mod.new_claim(args.ids[0], claims_dir)}: edit it, then "
                          f"`bench claims verify {args.ids[0]}`")
            return 0
        ids, extra = [a for a in args.ids if "=" not in a], parse_overrides([a for a in args.ids if "=" in a])
        paths = claims_mod.claim_paths(claims_dir) if ids == ["all"] else [claims_mod.find_claim(i, claims_dir)
                                                                             for i in ids]
        claims = [(claims_mod.load_claim(p), p) for p in paths]
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        store = Store(directory_of("results_dir", args.results_dir, extra, "results"))
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        store.check_writable()
    except StoreError as exc:
        return _fail(str(exc))
    display = _Display(None)
    try:
        runner = claims_mod.ClaimCells(store, extra, display.on_progress, display.on_record)
    except ConfigError as exc:
        return _fail(str(exc))
    verdicts = []
    with display.progress:
        for claim, path in claims:
            try:
                document = claims_mod.verify(claim, runner, path, robustness=not args.no_robustness)
                claims_mod.write_verdict(store, document)
            except ConfigError as exc:
                return _fail(f"claim {claim.id}: {exc}")
            except StoreError as exc:
                return _fail(f"claim {claim.id}: {exc} Records and verdicts written before are intact.")
            verdicts.append(document)
            _print_verdict(document)
    try:
        store.rebuild_index()
    except StoreError as exc:
        return _fail(f"{exc} The records are intact; the index is a cache that the next run rebuilds.")
    console.print(f"{len(verdicts)} claims verified, {runner.ran} cells trained; verdicts in {store.verdicts_dir}")
    return 0


VERDICT_COLOURS = {"supported": "green", "refuted": "red", "inconclusive": "yellow", "not comparable": "magenta"}


def _print_verdict(document: dict[str, Any]) -> None:
    verdict = document["verdict"]
    console.rule(f"[bold]{document['claim']}[/]: [{VERDICT_COLOURS[verdict]}]{verdict}[/]")
    console.print(f"“{document['statement']}” — {document['source']}", highlight=False, markup=False)
    robust = document.get("robustness") or {}
    if robust:
        console.print(f"robustness: {robust.get('label')} ({robust.get('reason')})", highlight=False, markup=False)
    console.print(f"{document['quantity']} {document['relation']}: {document['reason']}", highlight=False,
                  markup=False)
    if document["interval"]:
        low, high = (("-inf" if i == 0 else "inf") if x is None else f"{x:.4g}"
                     for i, x in enumerate(document["interval"]))
        estimate = "unbounded" if document["estimate"] is None else f"{document['estimate']:.4g}"
        console.print(f"estimate {estimate}, {100 * document['confidence']:.4g}% interval "
                      f"[{low}, {high}] ({document['interval_method']}; look {document.get('look')})"
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
        return _fail(f"bench claims calibrate takes sims=N and seed=S, not {', '.join(unknown)}.")
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


def cmd_report(args: argparse.Namespace) -> int:
    """`bench report TARGET [results_dir=DIR] [reports_dir=DIR]`: resolve the directories, then build."""
    try:
        overrides = parse_overrides(args.overrides)
        unknown = sorted({k for k, _ in overrides} - {"results_dir", "reports_dir"})
        if unknown:
            raise ConfigError(f"bench report takes results_dir=DIR and reports_dir=DIR, not {', '.join(unknown)}.")
        args.results_dir = str(directory_of("results_dir", args.results_dir, overrides, "results"))
        args.reports_dir = str(directory_of("reports_dir", args.reports_dir, overrides, "reports"))
    except ConfigError as exc:
        return _fail(str(exc))
    return report.cmd_report(args)


def cmd_export(args: argparse.Namespace) -> int:
    """`bench export mlflow|tensorboard [SUITE] [results_dir=DIR] [tracking_uri=URI|logdir=DIR]`."""
    where_key = {"mlflow": "tracking_uri", "tensorboard": "logdir"}[args.target]
    suites = [a for a in args.args if "=" not in a]
    try:
        overrides = parse_overrides([a for a in args.args if "=" in a])
        unknown = sorted({k for k, _ in overrides} - {"results_dir", where_key})
        if unknown or len(suites) > 1:
            wrong = ", ".join(unknown) if unknown else f"two suites ({', '.join(suites)})"
            raise ConfigError(f"bench export {args.target} takes one optional SUITE, results_dir=DIR and "
                              f"{where_key}=..., not {wrong}.")
        store = Store(directory_of("results_dir", None, overrides, "results"))
        where = next((str(v) for k, v in reversed(overrides) if k == where_key), None)
        with console.status(f"exporting records to {args.target} ..."):
            summary = EXPORTERS[args.target](store, suites[0] if suites else None, where)
    except (ConfigError, ExportError) as exc:
        return _fail(str(exc))
    replaced = f", {len(summary.replaced)} half-written ones written again" if summary.replaced else ""
    console.print(f"{args.target}: {len(summary.exported)} runs exported, {len(summary.skipped)} already there"
                  f"{replaced}; in {summary.location}", highlight=False, markup=False)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "methods":
        for name in registry.method_names():
            cls = registry.get_method(name)
            console.print(f"{name:24} supports {', '.join(sorted(cls.supports))}", markup=False)
            for f in dataclasses.fields(cls.Config):
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                console.print(f"    {f.name} = {default!r}", highlight=False, markup=False)
    elif args.what == "tasks":
        for name in registry.task_names():
            cls = registry.get_task(name)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            console.print(f"{name:24} kind {cls.kind:10} {doc}", highlight=False, markup=False)
    else:
        for name in available_suites():
            description = load_suite(name).get("description", "").strip().splitlines()[0]
            console.print(f"{name:24} {description}", highlight=False, markup=False)  # "[control]" is text
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Fetch a task's data: the task class's `fetch_data(directory, force)` does the work."""
    try:
        task_cls = registry.get_task(args.task)
    except registry.RegistryError as exc:
        return _fail(str(exc))
    if not isinstance(task_cls, FetchableTask):
        return _fail(f"task {args.task} has no `bench data` step (its data comes with a package or from its "
                     "own source; see its docstring).")
    try:
        with console.status(f"fetching the data of {args.task} ..."):
            summary = task_cls.fetch_data(args.dir, args.force)
    except TaskDataError as exc:
        return _fail(str(exc))
    console.print_json(json.dumps(summary, default=str))
    if args.dir:
        console.print(f"run with data_dir={args.dir} to use it", highlight=False)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    console.print_json(json.dumps(environment()))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="bench", description="Train, measure and compare learning paradigms.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a suite: bench run suite=vision-vit [key=value ...]")
    run.add_argument("overrides", nargs="*", metavar="key=value")
    run.add_argument("--dry-run", action="store_true", help="print the resolved config and the cell count; train nothing")
    run.set_defaults(func=cmd_run)
    sweep = sub.add_parser("sweep", help="a grid of runs: every list-valued key is an axis, e.g. method.lr=[1e-3,3e-4]")
    sweep.add_argument("overrides", nargs="*", metavar="key=value")
    sweep.add_argument("--dry-run", action="store_true", help="print the number of cells; train nothing")
    sweep.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="done / running / failed / missing cells of a suite at a glance")
    status.add_argument("overrides", nargs="*", metavar="key=value")
    status.set_defaults(func=cmd_status)
    lst = sub.add_parser("list", help="list registered methods, tasks or suites")
    lst.add_argument("what", choices=("methods", "tasks", "suites"))
    lst.set_defaults(func=cmd_list)
    claims = sub.add_parser("claims", help="list, create and verify claims: bench claims verify all")
    claims.add_argument("action", choices=("list", "new", "verify", "calibrate"))
    claims.add_argument("ids", nargs="*", metavar="ID|all|key=value",
                        help="claim ids (or all), then suite overrides such as threads=1 device=cpu")
    claims.add_argument("--claims-dir", default=str(CLAIMS_DIR))
    claims.add_argument("--no-robustness", action="store_true",
                        help="skip deciding the claim again at x0.5 and x2 its budget (the verdict is labelled unchecked)")
    claims.add_argument("--results-dir", default=None, help=argparse.SUPPRESS)  # older spelling of results_dir=DIR
    claims.set_defaults(func=cmd_claims)
    report = sub.add_parser("report", help="write reports/<target>/ (index.html, report.md, figures)")
    report.add_argument("target", help="a suite name, or claims")
    report.add_argument("overrides", nargs="*", metavar="results_dir=DIR|reports_dir=DIR")
    report.add_argument("--results-dir", default=None, help=argparse.SUPPRESS)  # older spelling of results_dir=DIR
    report.add_argument("--reports-dir", default=None, help=argparse.SUPPRESS)
    report.set_defaults(func=cmd_report)
    export = sub.add_parser("export", help="every record as an MLflow or TensorBoard run: bench export mlflow [SUITE]")
    export.add_argument("target", choices=tuple(EXPORTERS))
    export.add_argument("args", nargs="*", metavar="SUITE|results_dir=DIR|tracking_uri=URI|logdir=DIR")
    export.set_defaults(func=cmd_export)
    data = sub.add_parser("data", help="fetch a task's data once: bench data shakespeare [--dir DIR]")
    data.add_argument("task", help="a registered task, e.g. shakespeare")
    data.add_argument("--dir", default=None, help="data root (default: $PARADIGM_BENCH_DATA or ~/.cache/paradigm-bench)")
    data.add_argument("--force", action="store_true", help="fetch again even if the data is there")
    data.set_defaults(func=cmd_data)
    env = sub.add_parser("env", help="print this machine's environment as recorded in every run")
    env.set_defaults(func=cmd_env)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except StoreError as exc:  # any storage problem a command did not catch itself
        return _fail(str(exc))
    except OSError as exc:  # ... or any other OS error: the path and a fix, never a traceback
        return _fail(_os_error_message(exc))


def _os_error_message(exc: OSError) -> str:
    where = " ".join(str(p) for p in (exc.filename, exc.filename2) if p) or "a file"
    fix = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some quota",
           errno.EFBIG: "raise the file-size limit (`ulimit -f`)", errno.EROFS: "use a writable directory",
           errno.EACCES: "fix its permissions", errno.EPERM: "fix its permissions",
           errno.ENOTDIR: "move the file that stands where a directory is needed"}.get(exc.errno or 0,
                                                                                       "check the path and the disk")
    return (f"{where}: {exc.strerror or exc}. {fix[0].upper() + fix[1:]}, or choose another directory "
            "(results_dir=DIR), and run the command again.")


if __name__ == "__main__":
    sys.exit(main())
