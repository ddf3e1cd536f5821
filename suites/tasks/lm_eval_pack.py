"""Data of the offline lm-eval task pack (suites/lm/tasks/), built from held-out real text.

Two tasks per corpus (shakespeare, milton), both from the corpus's *test* split only, so
no model trained by this harness has seen a byte of them:

- `<corpus>_next_line`: MMLU's multiple-choice form (acc, acc_norm). The context is six
  lines of a passage; the choices are the true next line and three lines drawn from
  elsewhere in the test split (at least DISTANT_LINES away). Chance is 0.25.
- `<corpus>_bpb`: held-out bits per byte through lm-eval's `loglikelihood_rolling`, on the
  test split cut into passages at line breaks.

The jsonl files are written to `<data_dir>/shakespeare/lm_eval/` by `bench data` or on
first use, deterministically (fixed seeds; the same bytes on every machine), and loaded
by the pack's `custom_dataset` hooks with the path resolved at load time.

MMLU runs offline as the group `mmlu_offline` (data from `bench data mmlu`, tasks in
suites/lm/tasks/mmlu_offline/, see suites/tasks/mmlu_offline.py), or through lm-eval's own
`mmlu` group from the hub dataset cais/mmlu; `check_mmlu` says, before any training,
whether the data of the MMLU tasks asked for is on this machine.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from harness.interface import TaskDataError
from suites.tasks import mmlu_offline, text_corpus

PACK_CORPORA = ("shakespeare", "milton")
PACK_TASKS = tuple(f"{c}_{kind}" for c in PACK_CORPORA for kind in ("next_line", "bpb"))
CONTEXT_LINES = 6
MIN_LINE = 25  # characters of a line that can be a question's answer or distractor
DISTANT_LINES = 200
NEXT_LINE_ITEMS = 500
PASSAGE_BYTES = 2000
PACK_SEED = 1234
PACK_VERSION = 1  # bump when the construction changes; it is in every file name
MMLU_HUB_NAME = "cais/mmlu"


def pack_dir(data_dir: str | Path | None) -> Path:
    return text_corpus.corpus_dir(data_dir) / "lm_eval"


def pack_file(data_dir: str | Path | None, corpus: str, kind: str) -> Path:
    return pack_dir(data_dir) / f"{corpus}_{kind}.v{PACK_VERSION}.jsonl"


def next_line_items(text: str, count: int = NEXT_LINE_ITEMS, seed: int = PACK_SEED) -> list[dict[str, Any]]:
    """Questions "which line comes next?", evenly spaced over `text`, with 3 distant distractors."""
    lines = text.split("\n")
    eligible = [i for i, line in enumerate(lines) if len(line.strip()) >= MIN_LINE]
    answers = [i for i in eligible
               if i >= CONTEXT_LINES and sum(bool(lines[j].strip()) for j in range(i - CONTEXT_LINES, i)) >= 2]
    if len(answers) < 4:
        raise ValueError(f"text of {len(lines)} lines has too few lines of {MIN_LINE}+ characters for questions.")
    step = max(1, len(answers) // count)
    items = []
    for n, i in enumerate(answers[::step][:count]):
        rng = random.Random(seed * 1_000_003 + n)
        far = [j for j in rng.sample(eligible, min(len(eligible), 64)) if abs(j - i) > DISTANT_LINES
               and lines[j].strip() != lines[i].strip()]
        if len(far) < 3:
            continue
        distractors = [lines[j] for j in far[:3]]
        label = rng.randrange(4)
        choices = distractors[:label] + [lines[i]] + distractors[label:]
        items.append({"context": "\n".join(lines[i - CONTEXT_LINES:i]) + "\n", "choices": choices, "label": label})
    return items


def passages(text: str, size: int = PASSAGE_BYTES) -> list[dict[str, str]]:
    """`text` cut at line breaks into passages of about `size` characters (every byte kept once)."""
    out, current = [], ""
    for line in text.split("\n"):
        current += line + "\n"
        if len(current) >= size:
            out.append({"text": current})
            current = ""
    if current.strip():
        out.append({"text": current})
    return out


def ensure_pack(data_dir: str | Path | None) -> dict[str, Path]:
    """Write the pack's jsonl files if missing (from the test splits); {task name: path}."""
    paths = {}
    for corpus in PACK_CORPORA:
        test = None
        for kind, build in (("next_line", next_line_items), ("bpb", passages)):
            path = pack_file(data_dir, corpus, kind)
            paths[f"{corpus}_{kind}"] = path
            if path.is_file():
                continue
            test = text_corpus.split_text(data_dir, corpus, "test") if test is None else test
            rows = build(test)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            tmp.replace(path)
    return paths


def data_dir_for(metadata: dict[str, Any]) -> str | None:
    """Where the texts are, from lm-eval's task metadata: `data_dir`, else the run's record, else the default.

    `lm_eval --model bench --model_args run=ID` passes its model args as metadata, so the
    pack reads the same texts that the run was trained and evaluated on.
    """
    if metadata.get("data_dir"):
        return str(metadata["data_dir"])
    if metadata.get("run"):
        results = Path(str(metadata.get("results_dir") or "results"))
        for record in results.glob(f"*/{metadata['run']}/record.json"):
            recorded = (json.loads(record.read_text()).get("task_info") or {}).get("data_dir")
            if recorded:
                return recorded
    return None


def load(corpus: str, kind: str, metadata: dict[str, Any]) -> Any:
    """The pack's test split as a `datasets.DatasetDict` (what lm-eval's `custom_dataset` returns)."""
    import datasets

    path = ensure_pack(data_dir_for(metadata))[f"{corpus}_{kind}"]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def is_mmlu(name: str) -> bool:
    return name == "mmlu" or name.startswith("mmlu_")


def check_mmlu(names: tuple[str, ...] | list[str] = ("mmlu",), data_dir: str | Path | None = None) -> None:
    """TaskDataError unless the data of the MMLU tasks among `names` is here.

    `mmlu_offline*` reads what `bench data mmlu` wrote under the data root; lm-eval's own
    `mmlu*` reads the hub dataset cais/mmlu from the Hugging Face cache.
    """
    if any(mmlu_offline.is_offline_name(n) for n in names):
        mmlu_offline.check_offline(data_dir)
    if not any(is_mmlu(n) and not mmlu_offline.is_offline_name(n) for n in names) or mmlu_cached():
        return
    raise TaskDataError(
        f"MMLU's data ({MMLU_HUB_NAME}, read by lm-eval's `mmlu` tasks) is not in the Hugging Face cache of this "
        "machine, and the hub cannot be reached offline. The same test set runs offline: `bench data mmlu`, then "
        "lm_eval_tasks=[mmlu_offline] (zero-shot, lm-eval's MMLU prompt). Or, on a machine with internet, run "
        f"`python -c \"import datasets; datasets.load_dataset('{MMLU_HUB_NAME}', 'all')\"` to cache it, then copy "
        "~/.cache/huggingface here (or point HF_HOME at a copy); otherwise drop mmlu from lm_eval_tasks (the "
        "offline pack, e.g. shakespeare_next_line and shakespeare_bpb, needs no download)."
    )


def mmlu_cached() -> bool:
    """Whether the hub cache (or the datasets cache) holds the cais/mmlu dataset."""
    try:
        from huggingface_hub import constants
        hub = Path(constants.HF_HUB_CACHE)
    except ImportError:
        hub = Path.home() / ".cache" / "huggingface" / "hub"
    try:
        import datasets
        legacy = Path(datasets.config.HF_DATASETS_CACHE)
    except ImportError:
        legacy = Path.home() / ".cache" / "huggingface" / "datasets"
    owner, name = MMLU_HUB_NAME.split("/")
    return (hub / f"datasets--{owner}--{name}" / "snapshots").is_dir() or (legacy / f"{owner}___{name}").is_dir()
