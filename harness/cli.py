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
access to the results directory. The claims commands live in harness/cli_claims.py, and what
every command shares (consoles, errors, the progress display) in harness/cli_common.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import signal
import sys

from rich.markup import escape
from rich.table import Table

from harness import perf, registry
from harness.cli_claims import CLAIMS_DIR, cmd_claims
from harness.cli_common import Display, console, directory_of, err_console, fail
from harness.config import ConfigError, available_suites, load_suite, resolve
from harness.environment import environment
from harness.export import EXPORTERS, ExportError
from harness.interface import FetchableTask, TaskDataError
from harness.execute import cell_states, check_data, split_by_store
from harness.launch import Cancelled, launch, local_workers
from harness.sweep import expand_grid
from harness.plan import Cell, plan
from harness.run_config import RunConfig, describe
from harness.store import Store, StoreError
from harness.typed_config import parse_overrides
from harness import report
from harness.report import render, summarise


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
        return fail(str(exc))
    for note in run.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if args.dry_run:
        if not sweep:
            console.print_json(json.dumps(describe(run), default=str))
        try:
            check_data(cells)
        except (TaskDataError, ConfigError) as exc:
            return fail(str(exc))
        console.print(f"{len(cells)} cells; the data of every task is available")
        return 0

    store = Store(run.results_dir)
    try:
        store.check_writable()
        store.sweep_stale()
        split = split_by_store(cells, store)
    except StoreError as exc:
        return fail(str(exc))
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
            return fail(str(exc))
        display = Display(split.todo, local_workers(run.launcher, split.todo))
        try:
            with display.progress:
                outcomes = launch(split.todo, run.results_dir, run.launcher, display.on_progress, display.on_record,
                                  split.seen)
        except StoreError as exc:
            return fail(f"{exc} Records written before this one are intact.")
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
        return fail(f"{exc} The records are intact; the index is a cache that the next run rebuilds.")
    for table in render(summarise([r.to_dict() for r in records]), title=run.suite):
        console.print(table)
    return 1 if any(r.status in ("failed", "diverged") for r in records) else 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        run, cells = _resolve_cells(args.overrides, sweep=False)
    except (ConfigError, registry.RegistryError) as exc:
        return fail(str(exc))
    store = Store(run.results_dir, read_only=True)  # status only reads: no lock taken for writing, nothing renamed
    try:
        store.check_readable()
        counts = cell_states(cells, store)
    except StoreError as exc:
        return fail(str(exc))
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
        return fail(str(exc))
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
        return fail(str(exc))
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
        return fail(str(exc))
    if not isinstance(task_cls, FetchableTask):
        return fail(f"task {args.task} has no `bench data` step (its data comes with a package or from its "
                     "own source; see its docstring).")
    try:
        with console.status(f"fetching the data of {args.task} ..."):
            summary = task_cls.fetch_data(args.dir, args.force)
    except TaskDataError as exc:
        return fail(str(exc))
    console.print_json(json.dumps(summary, default=str))
    if args.dir:
        console.print(f"run with data_dir={args.dir} to use it", highlight=False)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    console.print_json(json.dumps(environment()))
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    """Cost per forward-equivalent of every method of a suite, and the suite's projected wall time."""
    overrides = args.overrides if any(o.startswith("suite=") for o in args.overrides) else ["suite=vision-vit",
                                                                                             *args.overrides]
    try:
        run, _ = perf.suite_cells(overrides)
        console.print(f"probing every method of suite {run.suite} ({args.steps} steps x {args.repeats} rounds, "
                      f"one thread; {perf.load_average()})", highlight=False)
        rows = perf.measure(overrides, steps=args.steps, repeats=args.repeats, with_eval=not args.no_eval)
    except (ConfigError, registry.RegistryError, TaskDataError) as exc:
        return fail(str(exc))
    console.print(perf.table(rows), highlight=False, soft_wrap=True)
    total, workers = perf.project(run, rows)
    if total is not None and not args.no_eval:
        console.print(f"projected wall time of `bench run` with these overrides: {total / 60:.1f} min "
                      f"({len(run.seeds)} seeds, {workers} workers; at this machine's present load)", highlight=False)
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
    claims.add_argument("--plan", action="store_true",
                        help="train nothing: say which cells verifying would train and project how long "
                             "from the store's own records of similar cells")
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
    perf_cmd = sub.add_parser("perf", help="ms per forward-equivalent of every method vs backprop, and a suite's "
                                           "projected wall time: bench perf [suite=vision-vit] [key=value ...]")
    perf_cmd.add_argument("overrides", nargs="*", metavar="key=value")
    perf_cmd.add_argument("--steps", type=int, default=5, help="timed steps per method per round")
    perf_cmd.add_argument("--repeats", type=int, default=3, help="rounds, methods interleaved")
    perf_cmd.add_argument("--no-eval", action="store_true", help="skip timing evaluation (no projection)")
    perf_cmd.set_defaults(func=cmd_perf)
    args, leftover = parser.parse_known_args(argv)
    # argparse ends a `nargs="*"` positional at the first option, so `bench claims verify ID --claims-dir D
    # threads=1` would refuse `threads=1`: words after an option join the command's list of ids/overrides
    listed = next((name for name in ("overrides", "ids") if isinstance(getattr(args, name, None), list)), None)
    unknown = [word for word in leftover if word.startswith("-") or listed is None]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if leftover:
        getattr(args, listed).extend(leftover)
    try:
        return args.func(args)
    except StoreError as exc:  # any storage problem a command did not catch itself
        return fail(str(exc))
    except OSError as exc:  # ... or any other OS error: the path and a fix, never a traceback
        return fail(_os_error_message(exc))


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
