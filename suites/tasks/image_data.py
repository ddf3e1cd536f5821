"""Image datasets as numpy arrays, from local files, Hugging Face or scikit-learn.

`load_image_data(name, data_dir, source)` is the one entry point. It returns raw images
([N, C, H, W], uint8 or small integers) and int64 labels for the official train and test
splits, plus a short string saying where they came from (it goes into the run record).
Normalisation and the validation carve belong to the task, not here.

Where data is looked for, in order (source="auto"):
1. `data_dir` (or, without it, the dataset's default directory, e.g. the one the Debian
   package `dataset-fashion-mnist` installs), and the usual sub-directories of it, so that
   one data root can hold several datasets (DIR/mnist, DIR/fashion-mnist,
   DIR/cifar-10-batches-py, torchvision's DIR/MNIST/raw);
2. the Hugging Face hub through `datasets`, only when no `data_dir` was given (a named
   directory that lacks the files is a mistake to report, not a reason to download) and
   `datasets` is importable.
Anything missing raises `TaskDataError` naming what was looked for, where, and every way
to get it. Loads are cached per process, so the cells of a sweep read the files once.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.interface import TaskDataError

SOURCES = ("auto", "local", "huggingface")


@dataclass(frozen=True)
class ImageData:
    """Official train/test splits: images [N, C, H, W] and int64 labels (read-only arrays)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str


@dataclass(frozen=True)
class DatasetSpec:
    """Where one dataset lives and how it is read."""

    title: str
    format: str  # "idx" | "cifar" | "sklearn"
    subdirs: tuple[str, ...] = ()  # tried below data_dir before data_dir itself
    default_dir: str | None = None
    hf_repo: str | None = None
    hf_image_column: str = "image"
    apt_package: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(
        "Fashion-MNIST", "idx", ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw"),
        default_dir="/usr/share/datasets/fashion-mnist", hf_repo="zalando-datasets/fashion_mnist",
        apt_package="dataset-fashion-mnist",
    ),
    "mnist": DatasetSpec("MNIST", "idx", ("mnist", "MNIST/raw"), hf_repo="ylecun/mnist"),
    "cifar10": DatasetSpec("CIFAR-10", "cifar", ("cifar-10-batches-py",), hf_repo="uoft-cs/cifar10",
                           hf_image_column="img"),
    "digits": DatasetSpec("scikit-learn digits", "sklearn"),
}

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def load_image_data(name: str, data_dir: str | Path | None = None, source: str = "auto") -> ImageData:
    """The official train/test splits of dataset `name` (a key of DATASETS); cached."""
    if name not in DATASETS:
        raise ValueError(f"unknown image dataset {name!r}; known: {', '.join(DATASETS)}.")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}.")
    directory = str(Path(data_dir).expanduser().resolve()) if data_dir is not None else None
    return _load_cached(name, directory, source)


@lru_cache(maxsize=None)
def _load_cached(name: str, data_dir: str | None, source: str) -> ImageData:
    spec = DATASETS[name]
    if spec.format == "sklearn":
        return load_digits()
    searched = _candidate_dirs(spec, data_dir)
    hf_note = None
    if source in ("auto", "local"):
        for directory in searched:
            if _has_files(spec, directory):
                return _load_local(spec, directory)
    if source == "huggingface" or (source == "auto" and data_dir is None and _datasets_importable()):
        try:
            return load_huggingface(spec)
        except TaskDataError as err:
            if source == "huggingface":
                others = _ways_to_get(spec, huggingface=False)
                raise TaskDataError(f"{spec.title}: {err} Other ways to get it: {others}.") from None
            hf_note = str(err)
    raise TaskDataError(_missing_message(spec, searched, hf_note))


def _candidate_dirs(spec: DatasetSpec, data_dir: str | None) -> list[Path]:
    roots = [Path(data_dir)] if data_dir is not None else ([Path(spec.default_dir)] if spec.default_dir else [])
    return [root / sub for root in roots for sub in spec.subdirs] + roots


def _has_files(spec: DatasetSpec, directory: Path) -> bool:
    if spec.format == "idx":
        return all(_find_idx(directory, stem) is not None for stem in IDX_FILES)
    return all((directory / name).is_file() for name in CIFAR_FILES)


def _load_local(spec: DatasetSpec, directory: Path) -> ImageData:
    return load_idx_dir(directory) if spec.format == "idx" else load_cifar10_dir(directory)


# ---------------------------------------------------------------------------- IDX


def _find_idx(directory: Path, stem: str) -> Path | None:
    """The file for `stem`, gzipped or not; also the 'train-images.idx3-ubyte' spelling."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzipped or not) of unsigned bytes as an array of its declared shape."""
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path) as f:
            raw = f.read()
    else:
        raw = path.read_bytes()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise TaskDataError(f"{path} is not an IDX file of unsigned bytes (bad magic number {raw[:4]!r}).")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise TaskDataError(f"{path} is truncated: header says {shape}, found {data.size} values.")
    return data.reshape(shape)


def load_idx_dir(directory: str | Path) -> ImageData:
    """MNIST-format files (`{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`) in `directory`."""
    directory = Path(directory)
    paths = {stem: _find_idx(directory, stem) for stem in IDX_FILES}
    missing = [stem for stem, path in paths.items() if path is None]
    if missing:
        raise TaskDataError(f"{directory} lacks {', '.join(missing)} (.gz or not).")
    arrays = [read_idx(path) for path in paths.values()]
    train_x, train_y, test_x, test_y = arrays
    for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise TaskDataError(
                f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match."
            )
    return _image_data(train_x[:, None], train_y, test_x[:, None], test_y, f"idx:{directory}")


# -------------------------------------------------------------------------- CIFAR


def load_cifar10_dir(directory: str | Path) -> ImageData:
    """CIFAR-10's python pickle batches (`cifar-10-batches-py`) in `directory`.

    These are pickles: load them only from a copy you trust (the official archive).
    """
    directory = Path(directory)

    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        with open(directory / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
        return images, np.asarray(batch[b"labels"], np.int64)

    train = [read(name) for name in CIFAR_FILES[:-1]]
    test_x, test_y = read(CIFAR_FILES[-1])
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    return _image_data(train_x, train_y, test_x, test_y, f"cifar-pickle:{directory}")


# -------------------------------------------------------------------- Hugging Face


def _datasets_importable() -> bool:
    try:
        import datasets  # noqa: F401
    except ImportError:
        return False
    return True


def load_huggingface(spec: DatasetSpec) -> ImageData:
    """Train and test splits of `spec.hf_repo` through `datasets.load_dataset` (network or HF cache)."""
    try:
        import datasets
    except ImportError:
        raise TaskDataError(
            f"loading {spec.hf_repo} from Hugging Face needs the `datasets` package: pip install datasets."
        ) from None
    try:
        splits = datasets.load_dataset(spec.hf_repo)
        train_x, train_y = _hf_arrays(splits["train"], spec.hf_image_column)
        test_x, test_y = _hf_arrays(splits["test"], spec.hf_image_column)
    except Exception as err:  # offline, no such repo, changed schema: all are "no data"
        summary = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise TaskDataError(
            f"loading {spec.hf_repo} from Hugging Face failed ({type(err).__name__}: {summary}); "
            "it needs network access or a copy in the Hugging Face cache."
        ) from None
    return _image_data(train_x, train_y, test_x, test_y, f"huggingface:{spec.hf_repo}")


def _hf_arrays(split: Any, image_column: str) -> tuple[np.ndarray, np.ndarray]:
    """PIL images (or arrays) of one split -> [N, C, H, W] uint8 and int64 labels."""
    images = np.stack([np.asarray(image, np.uint8) for image in split[image_column]])
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)  # HWC -> CHW
    return images, np.asarray(split["label"], np.int64)


# ------------------------------------------------------------------------ digits


def load_digits() -> ImageData:
    """scikit-learn's 1,797 8x8 digits (values 0..16) with a fixed, stratified 20% test split.

    The dataset has no official test split; carving one with a fixed seed keeps the test
    set the same for every run, seed and machine.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise TaskDataError(
            "the digits task needs scikit-learn (its data ships with it): pip install scikit-learn."
        ) from None
    digits = sklearn_digits()
    images = digits.images.astype(np.uint8)[:, None]  # values 0..16 fit a byte
    labels = digits.target.astype(np.int64)
    n_test = round(DIGITS_TEST_FRACTION * len(labels))
    train, test = stratified_holdout(labels, n_test, DIGITS_SPLIT_SEED)
    source = f"sklearn.datasets.load_digits (stratified {DIGITS_TEST_FRACTION:.0%} test, seed {DIGITS_SPLIT_SEED})"
    return _image_data(images[train], labels[train], images[test], labels[test], source)


def stratified_holdout(labels: np.ndarray, n_holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held out) with `n_holdout` held out, class proportions kept.

    Each class gives its proportional share (largest remainders get the leftover slots),
    drawn at random by `seed`; both index arrays come back sorted.
    """
    labels = np.asarray(labels)
    if not 0 <= n_holdout <= len(labels):
        raise ValueError(f"cannot hold out {n_holdout} of {len(labels)} examples.")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n_holdout / max(len(labels), 1))
    take = np.floor(quota).astype(np.int64)
    leftover = n_holdout - int(take.sum())
    take[np.argsort(-(quota - take), kind="stable")[:leftover]] += 1
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    keep = np.ones(len(labels), bool)
    keep[held_out] = False
    return np.flatnonzero(keep), held_out


# ------------------------------------------------------------------------ helpers


def _image_data(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, source: str
) -> ImageData:
    arrays = [np.ascontiguousarray(a) for a in (train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64))]
    for array in arrays:
        array.setflags(write=False)  # shared by every task in the process through the cache
    return ImageData(*arrays, source=source)


def _ways_to_get(spec: DatasetSpec, huggingface: bool = True) -> str:
    ways = []
    if spec.apt_package:
        ways.append(f"apt-get install {spec.apt_package} (installs to {spec.default_dir})")
    holder = "the four IDX files" if spec.format == "idx" else "the python batches (cifar-10-batches-py)"
    ways.append(f"data_dir=DIR in the task config, DIR holding {holder} or a sub-directory "
                f"{' or '.join(spec.subdirs)} with them")
    if huggingface:
        ways.append(f"source=huggingface with network access and `pip install datasets` (downloads {spec.hf_repo})")
    return "; or ".join(f"({i}) {way}" for i, way in enumerate(ways, 1))


def _missing_message(spec: DatasetSpec, searched: list[Path], hf_note: str | None) -> str:
    files = IDX_FILES if spec.format == "idx" else CIFAR_FILES
    what = ", ".join(f + ("[.gz]" if spec.format == "idx" else "") for f in files)
    if searched:
        message = f"{spec.title} not found: looked for {what} in {', '.join(str(p) for p in searched)}."
    else:
        message = f"{spec.title} not found: no data_dir was given and it has no default directory."
    message += f" To get it: {_ways_to_get(spec)}."
    if hf_note:
        message += f" Hugging Face was tried: {hf_note}"
    return message
