"""An lm-eval `LM` for any model this harness trains, registered with lm-eval as `bench`.

Two ways in, one class (`BenchLM`):

- in process, from the runner, on the validation-selected state of a cell:
  `evaluate_cell(task, method.predict, device)` wraps the method's `predict` and runs
  `lm_eval.simple_evaluate` on the task's `lm_eval_tasks`; the results go into the record's
  `final.lm_eval`;
- from lm-eval's command line, on a finished run (the runner saves the selected model
  state of LM cells as model.pt beside record.json):

      lm_eval --model bench --model_args run=<run_id>,results_dir=results \\
              --tasks suites/lm/tasks/shakespeare_next_line.yaml

  lm-eval 0.4 finds third-party models only in its registry, and has no entry-point group
  that would fill it from an installed package (its models/__init__.py lists its own).
  So `bench` is registered when this module is imported: the offline pack's task YAMLs
  import it (suites/lm/tasks/bench_pack.py), which is why plain `lm_eval` works with a
  pack YAML given by path; for any other task (mmlu, or pack tasks by name with
  `--include_path suites/lm/tasks`) use `python -m harness.lm_eval_cli` (or the
  `bench-lm-eval` script), which imports this module and then runs lm-eval's own CLI
  with the same arguments.

The model side needs only what a language task provides: `encode(text) -> ids`,
`decode(ids) -> text`, `context` (the longest sequence), `prefix_token` (what stands
before the first token), and a `predict(ids [B, T]) -> logits [B, T, V]`.

Hugging Face models do not need this class: lm-eval's own HFLM takes an in-memory model
(`hf_lm(model, tokenizer)` below), e.g. a hub model fine-tuned on a machine that has it
cached.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from harness.typed_config import build_dataclass
from harness.interface import LMEvaluableTask
from harness.record import Record
from harness.registry import get_task
from harness.store import Store, StoreError

DEFAULT_BATCH = 64
DEFAULT_MAX_GEN = 256
BOOTSTRAP_ITERS = 1000  # for metrics whose stderr lm-eval bootstraps (acc's is analytic; bits_per_byte has none)


class BenchRunError(RuntimeError):
    """A run cannot be evaluated (missing, unfinished, or saved without its model state)."""


@register_model("bench")
class BenchLM(TemplateLM):
    """lm-eval's three request types over a byte-level (or any task-tokenised) causal model."""

    def __init__(self, run: str | None = None, results_dir: str | Path = "results", *,
                 task: Any = None, predict: Callable[[Tensor], Tensor] | None = None,
                 device: str | torch.device | None = None, batch_size: int | str | None = None,
                 max_batch_size: int | None = None, max_gen_toks: int = DEFAULT_MAX_GEN, **unknown: Any) -> None:
        super().__init__()
        if unknown:  # a misspelt --model_args key must not be ignored silently
            raise ValueError(f"the bench model has no argument(s) {', '.join(sorted(unknown))}; it takes run, "
                             "results_dir, max_gen_toks (and lm-eval's batch_size, device).")
        if device is None or (str(device).startswith("cuda") and not torch.cuda.is_available()):
            device = "cpu"  # lm-eval's CLI asks for cuda by default; a CPU-only machine still evaluates
        if run is not None:
            task, predict, self.record = load_run(str(run), Path(results_dir), device)
        elif task is None or predict is None:
            raise ValueError("BenchLM needs run=<run id> (a finished run in results_dir) or task= and predict=.")
        self.task, self.predict = task, predict
        self._device = torch.device(device)
        # Sequences per forward pass. Scores do not depend on it (right padding, causal model); lm-eval's
        # CLI passes 1 unless told otherwise, which would make a CPU run crawl, so 1 means the default.
        self.batch_size = int(batch_size) if str(batch_size).isdigit() and int(str(batch_size)) > 1 else DEFAULT_BATCH
        self.max_gen_toks = int(max_gen_toks)

    # ------------------------------------------------------------- tokenisation

    @property
    def eot_token_id(self) -> int:
        return int(self.task.prefix_token)

    @property
    def max_length(self) -> int:
        return int(self.task.context)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return list(self.task.encode(string))

    def tok_decode(self, tokens: list[int]) -> str:
        return self.task.decode(list(tokens))

    # ----------------------------------------------------------------- scoring

    def _logprobs(self, rows: list[list[int]]) -> list[Tensor]:
        """Log-softmax over the vocabulary at every position of each row (rows right-padded per batch)."""
        out: list[Tensor] = []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            width = max(len(r) for r in chunk)
            ids = torch.tensor([r + [self.eot_token_id] * (width - len(r)) for r in chunk], dtype=torch.long)
            with torch.no_grad():  # causal: the padding on the right changes no earlier position
                logits = self.predict(ids.to(self._device)).float()
            logp = F.log_softmax(logits, dim=-1).cpu()
            out.extend(logp[i, :len(r)] for i, r in enumerate(chunk))
        return out

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return super().loglikelihood(requests, disable_tqdm=True)  # our batches are few and fast: no bar

    def _loglikelihood_tokens(self, requests: list[tuple[Any, list[int], list[int]]],
                              disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        """log P(continuation | context) and whether greedy decoding gives the continuation."""
        rows, spans = [], []
        for _, context, continuation in requests:
            whole = (list(context) + list(continuation))[-(self.max_length + 1):]
            n = min(len(continuation), len(whole) - 1)
            rows.append(whole[:-1])
            spans.append((whole[-n:], n))
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))  # similar lengths share a batch
        logps = self._logprobs([rows[i] for i in order])
        results: list[tuple[float, bool]] = [(0.0, False)] * len(rows)
        for i, logp in zip(order, logps):
            target, n = spans[i]
            tail = logp[-n:]
            wanted = torch.tensor(target, dtype=torch.long)
            score = float(tail.gather(1, wanted.unsqueeze(1)).sum())
            results[i] = (score, bool((tail.argmax(dim=-1) == wanted).all()))
            self.cache_hook.add_partial("loglikelihood", requests[i][0], results[i])
        return results

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Total log-likelihood of each text, in disjoint windows of `max_length` tokens."""
        windows, owner = [], []
        for n, request in enumerate(requests):
            tokens = self.tok_encode(request.args[0])
            for context, continuation in map(make_disjoint_window, get_rolling_token_windows(
                    tokens, self.prefix_token_id, self.max_length, context_len=1)):
                windows.append((None, context, continuation))
                owner.append(n)
        totals = [0.0] * len(requests)
        for n, (score, _) in zip(owner, self._loglikelihood_tokens(windows)):
            totals[n] += score
        return totals

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy decoding until a stop string or `max_gen_toks` tokens."""
        outputs = []
        for request in requests:
            context, kwargs = request.args
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            budget = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            tokens = self.tok_encode(context) or [self.eot_token_id]
            generated: list[int] = []
            text = ""
            for _ in range(budget):
                window = (tokens + generated)[-self.max_length:]
                with torch.no_grad():
                    logits = self.predict(torch.tensor([window], dtype=torch.long, device=self._device))
                generated.append(int(logits[0, -1].argmax()))
                text = self.tok_decode(generated)
                if any(stop in text for stop in until):
                    break
            for stop in until:
                text = text.split(stop)[0]
            outputs.append(text)
        return outputs


# ------------------------------------------------------------------- finished runs


def load_run(run: str, results_dir: Path, device: str | torch.device = "cpu") -> tuple[Any, Callable, Record]:
    """(task, predict, record) of a finished LM run, its selected state loaded from its model checkpoint."""
    store = Store(Path(results_dir))
    try:
        suite, path = store.find_run(run)
    except StoreError as exc:
        raise BenchRunError(str(exc)) from exc
    record = store.load(suite, run)
    if record is None:
        raise BenchRunError(f"run {run}'s record ({path}) could not be read: it was set aside; run the cell again.")
    if record.threads:  # as many CPU threads as the run had: two on a busy 2-core machine crawl
        torch.set_num_threads(int(record.threads))
    if not record.completed:
        raise BenchRunError(f"run {run} is {record.status!r}, not completed ({record.error}).")
    state = store.load_model_state(suite, run)
    if state is None:
        raise BenchRunError(f"run {run} has no model checkpoint beside its record ({path.parent}): only LM cells "
                            "trained by this version of the runner save their selected model state.")
    task_cls = get_task(record.task)
    task = task_cls(build_dataclass(task_cls.Config, record.config["task_config"], f"run {run} task"))
    model = task.build_model(torch.Generator().manual_seed(0))
    model.load_state_dict(state)
    model.to(device).eval()

    def predict(ids: Tensor) -> Tensor:
        with torch.no_grad():
            return model(ids)

    return task, predict, record


# ------------------------------------------------------------------- evaluation


def evaluate_cell(task: LMEvaluableTask, predict: Callable[[Tensor], Tensor], device: torch.device) -> dict[str, Any]:
    """lm-eval on the task's `lm_eval_tasks`: {task: {metric: value, metric_stderr: value}}."""
    names = list(task.lm_eval_tasks)
    if not names:
        return {"tasks": {}, "reason": "no lm_eval_tasks configured"}
    model = BenchLM(task=task, predict=predict, device=device, batch_size=task.lm_eval_batch_size)
    results = run_lm_eval(model, names, task.lm_eval_include_path, task.lm_eval_metadata(), task.lm_eval_limit)
    return {"tasks": results, "reason": None}


def run_lm_eval(model: Any, names: list[str], include_path: Path, metadata: dict[str, Any],
                limit: int | None = None) -> dict[str, dict[str, float | None]]:
    """`lm_eval.simple_evaluate` with the pack (and lm-eval's own tasks only when asked for)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    pack = {p.stem for p in Path(include_path).rglob("*.yaml")}  # tasks, and groups named as their file
    manager = TaskManager(include_path=str(include_path), include_defaults=any(n not in pack for n in names),
                          metadata=metadata)
    with _quiet():
        out = lm_eval.simple_evaluate(model=model, tasks=names, task_manager=manager, limit=limit,
                                      bootstrap_iters=BOOTSTRAP_ITERS, log_samples=False, verbosity="ERROR")
    return {name: clean_metrics(values) for name, values in out["results"].items()}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """lm-eval's warnings and per-document progress bars would bury the run's own display.

    Its loggers are set to errors only; its request-building bar (`lm_eval.api.task.tqdm`,
    which reads no switch of ours) is swapped for a disabled one while lm-eval runs.
    """
    import functools

    import lm_eval.api.task as task_module
    from tqdm import tqdm

    logger = logging.getLogger("lm_eval")
    level, bar = logger.level, task_module.tqdm
    logger.setLevel(logging.ERROR)
    task_module.tqdm = functools.partial(tqdm, disable=True)
    try:
        yield
    finally:
        logger.setLevel(level)
        task_module.tqdm = bar


def clean_metrics(values: dict[str, Any]) -> dict[str, float | None]:
    """lm-eval's {"acc,none": x, "acc_stderr,none": y, "alias": ...} -> {"acc": x, "acc_stderr": y}."""
    out: dict[str, float | None] = {}
    for key, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue  # aliases, "N/A" stderrs
        name = key.split(",")[0]
        out[name] = float(value) if math.isfinite(value) else None
    return out


def hf_lm(model: Any, tokenizer: Any, batch_size: int = 8, device: str = "cpu") -> Any:
    """lm-eval's own HFLM around an in-memory Hugging Face model (no download, no registry)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
