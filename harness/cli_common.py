"""What every `bench` command shares: the consoles, the one-line error, the live progress display.

`console` and `err_console` (120 columns when not a terminal, so logs stay legible), `fail`
(prints `error: ...` and returns exit code 2), `Display` (the whole run with its time left,
a bar per cell in progress, a line per finished cell) and `directory_of` (a command's
`results_dir=DIR` or `reports_dir=DIR`). It is apart from harness/cli.py so that the command
groups in their own modules (harness/cli_claims.py) use the same ones without importing the
parser that imports them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.loops.common import StepProgress
from harness.perf_eta import RunEta, format_seconds
from harness.plan import Cell
from harness.record import Record, SupervisedFinal
from harness.typed_config import ConfigError

# Logs and pipes get 120 columns rather than rich's default 80, so the tables stay legible.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def fail(message: str) -> int:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # "[control]" stays text
    return 2


REFRESH_S = 0.5  # the display redraws a cell's bar at most this often: a redraw costs the training process
# milliseconds (at load 20, ~9 ms a step when it was 0.2 s: 10% of a small cell's time, see timing.phase_seconds.progress)


LOG_LINE_S = 60.0  # without a terminal: a progress line this often


class Display:
    """The whole run (with an honest time left, harness/perf_eta.py) and one bar per cell in
    progress (several when the local pool runs cells side by side), a line per finished cell."""

    def __init__(self, cells_to_run: int | list[Cell] | None, workers: int = 1) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=console, transient=False,
        )
        cells = cells_to_run if isinstance(cells_to_run, list) else None
        total = len(cells) if cells is not None else cells_to_run
        self.eta = RunEta(total, max(1, workers))
        for cell in cells or []:
            self.eta.queued_groups[cell.task.label] = self.eta.queued_groups.get(cell.task.label, 0) + 1
        self.overall = self.progress.add_task("all cells", total=total, info="")
        self.running: dict[str, tuple[Any, float]] = {}  # run id -> (bar, fraction)
        self.finished = 0
        self.total_is_bound = False  # claims: later rounds' cells are counted at most (some may be recorded)
        self._last_update = 0.0
        self._last_line = time.monotonic()  # without a terminal rich draws no bars: a plain line instead

    def on_progress(self, p: StepProgress) -> None:
        now = time.monotonic()
        self.eta.progress(p.cell.run_id, p.cell.task.label, p.fraction, now)
        bar = self.running.get(p.cell.run_id, (None, 0.0))[0]
        if bar is None:
            bar = self.progress.add_task(str(p.cell), total=1.0, info="")
        self.running[p.cell.run_id] = (bar, p.fraction)
        if now - self._last_update < REFRESH_S and p.fraction < 1.0:
            return
        self._last_update = now
        loss = "" if p.loss is None else f"loss {p.loss:.3f}"
        val = "" if p.val_metric is None else f" val {p.val_metric:.4f}"
        left = self.eta.cell_left(p.cell.run_id, now)
        self.progress.update(bar, completed=p.fraction,
                             info=f"step {p.counters.steps} {loss}{val}" + (f" {format_seconds(left)} left" if left is not None else ""))
        self._update_overall(now)

    def _update_overall(self, now: float) -> None:
        left, basis = self.eta.remaining(now)
        info = f"{format_seconds(left)} left ({basis})" if left is not None else basis
        self.progress.update(self.overall, completed=self.finished + sum(f for _, f in self.running.values()), info=info)
        if not self.progress.console.is_terminal and now - self._last_line >= LOG_LINE_S:
            self._last_line = now  # a log or a pipe: one plain line a minute, so a long run is not silent
            total = "?" if self.eta.total is None else f"{'at most ' if self.total_is_bound else ''}{self.eta.total}"
            self.progress.console.print(f"progress: {self.finished}/{total} cells recorded, {len(self.running)} running; "
                                        f"{info}", highlight=False)

    def on_round(self, cells: list[Cell], later: int) -> None:
        """Claims train in rounds (the compared seeds wait for the tuning trials' winner): each
        round's cells become known when it starts, and `later` is how many the following rounds
        are expected to add (an upper bound), so the total and the time left cover them too."""
        for cell in cells:
            self.eta.queued_groups[cell.task.label] = self.eta.queued_groups.get(cell.task.label, 0) + 1
        self.eta.total = self.finished + len(self.running) + len(cells) + later
        self.total_is_bound = later > 0
        self.progress.update(self.overall, total=self.eta.total)

    def on_record(self, cell: Cell, outcome: str, record: Record | None) -> None:
        self.finished += 1
        for run_id in (cell.run_id, *([cell.pretrain.run_id] if cell.pretrain is not None else [])):
            bar = self.running.pop(run_id, (None, 0.0))[0]  # a pretraining cell trained inside its fine-tuning
            if bar is not None:                               # cell's worker reports progress under its own id
                self.progress.remove_task(bar)
        self.eta.finished(cell.run_id, cell.task.label, time.monotonic())
        self._update_overall(time.monotonic())
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
