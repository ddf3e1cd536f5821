"""The harness from Python (notebooks, scripts): the same steps and checks as `bench`, no terminal.

    from harness import api

    index = api.load_index("results")                        # one row per record (pandas)
    record = api.load_record("results", index.run_id[0])    # the typed Record (harness/record.py)
    runs = api.run_suite("vision-vit", profile="quick", method=["backprop", "forward_forward"])
    verdict = api.verify_claim("sanity-adamw-beats-slow-sgd")

Overrides are the `key=value` pairs of the command line as keyword arguments, with Python values
(`threads=1`, `method=["backprop", "mezo"]`); dotted keys go through a dict:
`api.run_suite("vision-vit", **{"method.lr": 3e-4, "budget.steps": 200})`. `results_dir` is one
of them, as on the command line (default `results`).

Nothing here re-implements a rule: suites are resolved and validated by harness/config.py
(`resolve_overrides`), planned by harness/plan.py, run by harness/launch.py (so a recorded cell
is reused, never trained twice), claims verified by harness/claims.py, and everything is read
back through the store. Errors are the CLI's: ConfigError or RegistryError for bad input (raised
before anything trains), TaskDataError for missing data, StoreError for an unwritable results
directory. What `bench run` prints as tables, this returns as a DataFrame: the index rows (see
`Store.rebuild_index`) of the cells the call asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.claims import CLAIMS_DIR, ClaimCells, find_claim, load_claim, verify, write_verdict
from harness.config import resolve_overrides
from harness.execute import check_data, split_by_store
from harness.launch import launch
from harness.loops.common import ProgressCallback
from harness.plan import plan
from harness.record import Record
from harness.store import Store, StoreError

if TYPE_CHECKING:
    import pandas

DEFAULT_RESULTS = "results"


def load_index(results_dir: str | Path = DEFAULT_RESULTS) -> pandas.DataFrame:
    """Every record under `results_dir` as one row (flattened: `final.test.accuracy`,
    `config.method_config.lr`, ...); rebuilt from the records first when stale."""
    return Store(Path(results_dir)).read_index()


def load_curves(results_dir: str | Path = DEFAULT_RESULTS) -> pandas.DataFrame:
    """Every curve point of every record (long format, with run_id, method, seed, task_label)."""
    return Store(Path(results_dir)).read_curves()


def load_record(results_dir: str | Path, run_id: str) -> Record:
    """The typed record of run `run_id` (its directory name), in whichever suite it is."""
    store = Store(Path(results_dir))
    suite, _ = store.find_run(run_id)
    record = store.load(suite, run_id)
    if record is None:  # unreadable: set aside by the store
        raise StoreError(f"the record of run {run_id} in {store.root / suite} could not be read and was set aside "
                         f"({', '.join(map(str, store.set_aside))}); run its suite again to redo the cell.")
    return record


def run_suite(suite: str, *, on_progress: ProgressCallback | None = None, **overrides: Any) -> pandas.DataFrame:
    """`bench run suite=SUITE key=value ...`: train the cells not yet recorded, return every cell's index row.

    `suite` is a suite name or a path to a suite file. Raises before training on bad input,
    like the CLI; a cell that fails is recorded as failed (its row says why), not raised.
    """
    run = resolve_overrides([("suite", suite), *overrides.items()])
    cells = plan(run)
    store = Store(run.results_dir)
    store.check_writable()
    todo = split_by_store(cells, store).todo
    if todo:
        check_data(todo)
        launch(todo, run.results_dir, run.launcher, on_progress)
    store.rebuild_index()
    index = store.read_index()
    order = {c.run_id: i for i, c in enumerate(cells)}  # the plan's order: task, method, seed
    rows = index[index["run_id"].isin(order)]
    return rows.sort_values("run_id", key=lambda ids: ids.map(order)).reset_index(drop=True)


def verify_claim(claim_id: str, *, claims_dir: str | Path = CLAIMS_DIR, **overrides: Any) -> dict[str, Any]:
    """`bench claims verify CLAIM_ID key=value ...`: run what the claim still needs, write its verdict
    file and return the verdict document (verdict, estimate, interval, every seed's value)."""
    claim = load_claim(find_claim(claim_id, Path(claims_dir)))
    store = Store(Path(overrides.get("results_dir", DEFAULT_RESULTS)))
    store.check_writable()
    document = verify(claim, ClaimCells(store, list(overrides.items())))
    write_verdict(store, document)
    store.rebuild_index()
    return document
