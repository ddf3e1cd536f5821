"""What every `bench` command shares: the consoles, the one-line error, the live progress display.

`console` and `err_console` (120 columns when not a terminal, so logs stay legible), `fail`
(prints `error: ...` and returns exit code 2), `Display` (two bars, the whole run and the
cell in progress, with a line per finished cell) and `directory_of` (a command's
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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.loops.common import StepProgress
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


class Display:
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
