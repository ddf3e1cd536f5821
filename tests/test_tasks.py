"""Image-classification tasks: loaders, splits, models, and that a ViT learns digits.

No test touches the network: Hugging Face is replaced by stand-ins, and the hub is set
offline in case `datasets` is installed.
"""

from __future__ import annotations

import gzip
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import registry
from harness.interface import SubsetEvaluableTask, Task, TaskDataError
from suites.tasks import image_data
from suites.tasks.image_classification import (
    DigitsConfig,
    DigitsTask,
    FashionMNISTTask,
    ImageTaskConfig,
    MNISTTask,
    prepare_splits,
)
from suites.tasks.vision_models import MLPConfig, ViTConfig, build_mlp, build_vit

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def offline_and_fresh_caches(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
    # Stand-in data from one test must not be served to the next from the caches.
    image_data._load_cached.cache_clear()
    prepare_splits.cache_clear()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ IDX files


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def write_mnist_like(directory: Path, n_train: int, n_test: int, gz: bool) -> dict[str, np.ndarray]:
    """Tiny MNIST-format files whose pixels and labels encode the example index."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(directory / name, array, gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_idx_files_load_with_shapes_and_labels(tmp_path, gz):
    written = write_mnist_like(tmp_path, n_train=30, n_test=12, gz=gz)
    data = image_data.load_image_data("fashion_mnist", tmp_path, source="local")
    assert data.train_x.shape == (30, 1, 28, 28) and data.test_x.shape == (12, 1, 28, 28)
    np.testing.assert_array_equal(data.train_x[:, 0], written["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.train_y, written["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test_y, written["t10k-labels-idx1-ubyte"])
    assert data.train_y.dtype == np.int64

    task = FashionMNISTTask(ImageTaskConfig(data_dir=str(tmp_path), val_size=10))
    info = task.describe()
    assert (info["n_train"], info["n_val"], info["n_test"]) == (20, 10, 12)
    assert info["input_shape"] == [1, 28, 28]
    # Normalised with the training examples' statistics.
    assert abs(task.splits.train_x.mean().item()) < 1e-4
    assert task.splits.train_x.std().item() == pytest.approx(1.0, abs=1e-3)


def test_a_data_root_with_one_subdirectory_per_dataset(tmp_path):
    write_mnist_like(tmp_path / "mnist", n_train=20, n_test=5, gz=True)
    info = MNISTTask(ImageTaskConfig(data_dir=str(tmp_path), val_size=5)).describe()
    assert info["n_test"] == 5 and info["source"].endswith("mnist")


def test_missing_data_says_how_to_get_it(tmp_path):
    task = FashionMNISTTask(ImageTaskConfig(data_dir=str(tmp_path)))  # constructing loads nothing
    with pytest.raises(TaskDataError) as err:
        task.check_available()
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "data_dir" in message and str(tmp_path) in message
    assert "source=huggingface" in message


def test_a_truncated_idx_file_is_reported(tmp_path):
    write_mnist_like(tmp_path, n_train=10, n_test=5, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(TaskDataError, match="truncated"):
        image_data.load_image_data("mnist", tmp_path)


# ---------------------------------------------------------------- Hugging Face


def test_huggingface_without_datasets_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(TaskDataError, match="pip install datasets"):
        MNISTTask(ImageTaskConfig(source="huggingface")).check_available()


def test_huggingface_offline_is_a_clear_error(monkeypatch):
    def load_dataset(repo):
        raise ConnectionError(f"Couldn't reach {repo} on the Hub")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(TaskDataError) as err:
        image_data.load_image_data("cifar10", source="huggingface")
    assert "uoft-cs/cifar10" in str(err.value) and "ConnectionError" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_huggingface_images_become_nchw(monkeypatch):
    rng = np.random.default_rng(0)

    def split(n):  # CIFAR-10 on the hub: HWC colour images in an "img" column
        return {"img": [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(n)], "label": list(range(n))}

    splits = {"train": split(12), "test": split(4)}
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=lambda repo: splits))
    data = image_data.load_image_data("cifar10", source="huggingface")
    assert data.train_x.shape == (12, 3, 32, 32) and data.source == "huggingface:uoft-cs/cifar10"
    np.testing.assert_array_equal(data.train_x[5].transpose(1, 2, 0), splits["train"]["img"][5])


# ---------------------------------------------------------------------- digits


def rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.flatten(1)}


def test_digits_split_is_fixed_disjoint_and_stratified():
    splits = DigitsTask().splits
    sizes = [len(splits.train_y), len(splits.val_y), len(splits.test_y)]
    assert sum(sizes) == 1797 and sizes[1] == 180 and sizes[2] == 359
    # sklearn's digits hold a few duplicated images; disjoint indices may still repeat one.
    train, val, test = rows(splits.train_x), rows(splits.val_x), rows(splits.test_x)
    assert len(train & val) <= 2 and len(train & test) <= 2 and len(val & test) <= 2

    prepare_splits.cache_clear()  # a second, independent preparation gives the same split
    again = DigitsTask().splits
    assert torch.equal(splits.test_x, again.test_x) and torch.equal(splits.val_y, again.val_y)

    full = np.bincount(np.concatenate([s.numpy() for s in (splits.train_y, splits.val_y, splits.test_y)]))
    test_share = np.bincount(splits.test_y.numpy(), minlength=10) / full
    assert np.all(np.abs(test_share - 0.2) < 0.01)

    other = DigitsTask(DigitsConfig(split_seed=1)).splits
    assert not torch.equal(splits.val_x, other.val_x)  # split_seed, not luck, fixes the carve
    # The test set never moves (its normalisation follows the train statistics, hence allclose).
    assert torch.equal(splits.test_y, other.test_y)
    assert torch.allclose(splits.test_x, other.test_x, atol=0.02)


def test_digits_refuses_huggingface():
    with pytest.raises(ValueError, match="huggingface"):
        DigitsTask(DigitsConfig(source="huggingface"))


def test_train_batches_cover_an_epoch_and_follow_the_generator():
    task = DigitsTask()
    n = len(task.splits.train_y)  # 1258 = 19 * 64 + 42
    stream = task.train_batches(64, gen(3))
    epoch = [next(stream) for _ in range(20)]
    assert [b.size for b in epoch[-2:]] == [64, n - 19 * 64]  # last partial batch kept
    assert rows(torch.cat([b.inputs for b in epoch])) == rows(task.splits.train_x)
    assert next(stream).size == 64  # and it goes on: a new epoch
    replay = next(task.train_batches(64, gen(3)))
    assert torch.equal(replay.targets, epoch[0].targets)


def test_evaluate_scores_logits_and_rejects_unknown_splits():
    task = DigitsTask()
    always_zero = lambda x: torch.zeros(len(x), 10)  # noqa: E731
    result = task.evaluate(always_zero, "test", torch.device("cpu"))
    assert result["accuracy"] == pytest.approx((task.splits.test_y == 0).float().mean().item())
    assert result["loss"] == pytest.approx(np.log(10))
    with pytest.raises(ValueError, match="split"):
        task.evaluate(always_zero, "train", torch.device("cpu"))


def test_evaluate_subset_scores_the_same_stratified_images_whatever_the_cell():
    task, cpu = DigitsTask(), torch.device("cpu")
    seen: list[torch.Tensor] = []

    def record(x: torch.Tensor) -> torch.Tensor:  # logits that name each image's own class: accuracy 1
        seen.append(x.clone())
        return torch.nn.functional.one_hot(lookup(x), 10).float()

    val_x, val_y = task.splits.val_x, task.splits.val_y
    lookup = lambda x: torch.stack([val_y[(val_x == row).flatten(1).all(1)][0] for row in x])  # noqa: E731
    assert task.evaluate_subset(record, "val", cpu, 50)[0]["accuracy"] == 1.0  # it scored the images it was shown
    first = torch.cat(seen)
    seen.clear()
    DigitsTask().evaluate_subset(record, "val", cpu, 50)  # another task object (another cell): the same images
    assert len(first) == 50 and torch.equal(torch.cat(seen), first)
    counts = torch.bincount(lookup(first), minlength=10)
    assert counts.min() >= 4 and counts.max() <= 6  # stratified: 180 images of 10 classes -> 5 of each
    always_zero = lambda x: torch.zeros(len(x), 10)  # noqa: E731
    assert task.evaluate_subset(always_zero, "val", cpu, 10_000) == (task.evaluate(always_zero, "val", cpu), None)
    weights = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    linear = lambda x: x.flatten(1) @ weights  # noqa: E731
    subset, whole = task.evaluate_subset(linear, "val", cpu, 50, whole=True)  # the subset, then the rest
    assert subset == task.evaluate_subset(linear, "val", cpu, 50)[0]
    full = task.evaluate(linear, "val", cpu)
    assert whole["accuracy"] == full["accuracy"] and whole["loss"] == pytest.approx(full["loss"], rel=1e-6)
    assert isinstance(task, SubsetEvaluableTask)


def test_tasks_are_registered_and_satisfy_the_protocol():
    assert {"fashion_mnist", "mnist", "cifar10", "digits"} <= set(registry.task_names())
    task = registry.get_task("digits")(DigitsConfig())
    assert isinstance(task, Task) and task.name == "digits" and task.metric == "accuracy"


# ---------------------------------------------------------------------- models


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)])
@pytest.mark.parametrize("kind", ["mlp", "vit"])
def test_models_map_images_to_logits_through_blocks(kind, shape):
    if kind == "mlp":
        model, depth = build_mlp(MLPConfig(hidden=(32, 16, 8)), shape, 10, gen()), 3
    else:
        model, depth = build_vit(ViTConfig(patch_size=4, dim=16, depth=2, heads=2), shape, 10, gen()), 2
    x = torch.randn(5, *shape)
    assert model(x).shape == (5, 10)
    outputs = model.block_outputs(x)
    assert len(outputs) == depth + 1
    assert torch.allclose(model.head(outputs[-1]), model(x), atol=1e-6)


@pytest.mark.parametrize("build", [build_mlp, build_vit])
def test_model_init_depends_only_on_the_generator(build):
    config = MLPConfig() if build is build_mlp else ViTConfig()
    before = torch.random.get_rng_state()
    a, b, c = (build(config, (1, 28, 28), 10, gen(s)) for s in (7, 7, 8))
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_bad_vit_shapes_name_the_key():
    with pytest.raises(ValueError, match="patch_size"):
        build_vit(ViTConfig(patch_size=5), (1, 28, 28), 10, gen())
    with pytest.raises(ValueError, match="patch_size"):
        FashionMNISTTask(ImageTaskConfig(model="vit", vit=ViTConfig(patch_size=3)))
    with pytest.raises(ValueError, match="heads"):
        ViTConfig(dim=30, heads=4)


# -------------------------------------------------------------------- learning


def test_vit_learns_digits():
    """The whole path a method uses (batches, model, loss, evaluate) reaches far above chance."""
    task = DigitsTask(DigitsConfig(model="vit", vit=ViTConfig(patch_size=2, dim=32, depth=2, heads=4)))
    model = task.build_model(gen(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    batches = task.train_batches(128, gen(1))
    for _ in range(150):  # ~4 s; test accuracy 0.90-0.93 over init seeds 0-3
        batch = next(batches)
        loss = task.loss(model(batch.inputs), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        result = task.evaluate(model, "test", torch.device("cpu"))
    assert result["accuracy"] > 0.8, result  # chance is 0.1


# ---------------------------------------------------------------- real data


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"{FASHION_DIR} absent: apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_the_debian_package():
    info = FashionMNISTTask().describe()
    assert (info["n_train"], info["n_val"], info["n_test"]) == (55000, 5000, 10000)
    assert info["source"] == f"idx:{FASHION_DIR}"
