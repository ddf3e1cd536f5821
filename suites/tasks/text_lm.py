"""Byte-level language modelling on real text: Shakespeare, Milton, or any text you have.

The `Task` protocol for next-token prediction, so every method trains it through
`task.loss(outputs, batch)` like any other task:

- Tokens are UTF-8 bytes (vocabulary 256, no special tokens): nothing to download, no
  tokenizer to version, and the loss in bits per token *is* bits per byte, the metric
  that compares across tokenizers. Where a model needs a token before the first one
  (lm-eval's rolling log-likelihood), it is a newline byte: what precedes a line of text.
- `Batch.inputs` are token ids [B, T], `Batch.targets` the next tokens [B, T]. An epoch
  is one pass, in a fresh order, over the non-overlapping windows of T+1 bytes of the
  training split (so epochs-to-target is examples-to-target / windows per epoch).
- The metric is bits per byte on the validation split (lower is better). Validation
  scores `eval_bytes` of it, in evenly spaced windows fixed by the split alone, so
  evaluating often stays cheap; the test split is scored whole (`test_bytes: 0`).
- The model is the decoder of suites/tasks/language_models.py, sized by `preset`
  ("1m", "10m", "100m", "1b") or by `decoder.*` keys.
- After training the harness runs lm-eval on the selected state (harness/lm_eval_bridge.py):
  `lm_eval_tasks` names the tasks, by default the offline pack in suites/lm/tasks/.
- `init_from: LABEL` makes this a fine-tuning task: the harness first trains (or finds in
  the store) the suite's backprop cell of task LABEL with the same seed and starts from its
  selected state.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.interface import Batch, BlockModel, TaskDataError
from harness.registry import register_task
from suites.tasks import lm_eval_pack, text_corpus
from suites.tasks.language_models import DecoderConfig, build_decoder, decoder_parameter_count, decoder_preset

VOCAB_SIZE = 256
PREFIX_TOKEN = ord("\n")
EVAL_BATCH = 64  # windows per `predict` call in `evaluate`
LN2 = math.log(2.0)
PACK_DIR = Path(__file__).resolve().parent.parent / "lm" / "tasks"


@dataclass(frozen=True)
class TextLMConfig:
    """What a suite may set for a language-modelling task."""

    preset: str | None = None  # a named decoder shape (language_models.DECODER_PRESETS); wins over `decoder`
    decoder: DecoderConfig = field(default_factory=lambda: DecoderConfig(dim=128, depth=4, heads=4, context=128))
    data_dir: str | None = None  # where `bench data shakespeare` put the texts (default ~/.cache/paradigm-bench)
    source: Literal["auto", "local", "huggingface"] = "auto"
    path: str | None = None  # source=local: a .txt file or a directory; source=huggingface: a dataset name
    hf_config: str | None = None
    text_column: str = "text"
    eval_bytes: int = 65536  # validation bytes scored at each evaluation; 0 = the whole split
    test_bytes: int = 0  # test bytes scored once at the end; 0 = the whole split
    lm_eval_tasks: tuple[str, ...] = ("shakespeare_next_line", "shakespeare_bpb")
    lm_eval_limit: int | None = None  # documents per lm-eval task (None = all)
    lm_eval_batch_size: int = 64
    init_from: str | None = None  # label of the suite task whose backprop cell this one fine-tunes

    def __post_init__(self) -> None:
        if self.preset is not None:
            decoder_preset(self.preset)  # a ValueError naming the presets
        for key in ("eval_bytes", "test_bytes"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be 0 (everything) or positive, got {getattr(self, key)}.")
        if self.lm_eval_batch_size < 1:
            raise ValueError(f"lm_eval_batch_size must be positive, got {self.lm_eval_batch_size}.")

    @property
    def model(self) -> DecoderConfig:
        return decoder_preset(self.preset) if self.preset is not None else self.decoder


@dataclass(frozen=True)
class MiltonConfig(TextLMConfig):
    """Milton is scored on Milton's held-out poems."""

    lm_eval_tasks: tuple[str, ...] = ("milton_next_line", "milton_bpb")


@dataclass(frozen=True)
class OwnTextConfig(TextLMConfig):
    """Your own text has no offline pack of its own; name lm-eval tasks when you want them."""

    lm_eval_tasks: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextSplits:
    """The three splits as uint8 byte tensors, and where they came from."""

    train: Tensor
    val: Tensor
    test: Tensor
    source: str


class TextLMTask:
    """Next-byte prediction on one corpus; subclasses name it (`corpus`)."""

    Config: ClassVar[type[TextLMConfig]] = TextLMConfig
    corpus: ClassVar[str | None] = None  # a text_corpus.CORPORA name; None: `source`/`path` say where
    kind = "lm"
    metric = "bits_per_byte"
    higher_is_better = False
    vocab_size = VOCAB_SIZE
    prefix_token = PREFIX_TOKEN
    lm_eval_include_path = PACK_DIR

    def __init__(self, config: TextLMConfig | None = None) -> None:
        config = self.Config() if config is None else config
        if not isinstance(config, TextLMConfig):
            raise TypeError(f"{type(self).__name__} needs a TextLMConfig, got {type(config).__name__}.")
        if self.corpus is None and (config.source == "auto" or config.path is None):
            raise ValueError("task `text` reads your own text: set source=local (a .txt file or directory) or "
                             "source=huggingface (a dataset name), and path=...")
        self.config = config
        self._splits: TextSplits | None = None

    # ------------------------------------------------------------------- data

    @classmethod
    def fetch_data(cls, data_dir: str | None = None, force: bool = False) -> dict[str, Any]:
        """`bench data <task>`: fetch the texts, write the manifest and the lm-eval pack; what is where."""
        if cls.corpus is None:
            raise TaskDataError("task `text` reads your own text (source=local path=...): nothing to fetch.")
        directory = text_corpus.fetch_shakespeare(data_dir, force)
        pack = lm_eval_pack.ensure_pack(data_dir)
        return {"directory": str(directory), "splits": text_corpus.describe_manifest(data_dir),
                "manifest": str(directory / "manifest.json"), "lm_eval_pack": {k: str(v) for k, v in pack.items()}}

    @property
    def context(self) -> int:
        return self.config.model.context

    # LMEvaluableTask (harness/interface.py): what lm-eval scores the selected state on
    @property
    def lm_eval_tasks(self) -> tuple[str, ...]:
        return tuple(self.config.lm_eval_tasks)

    @property
    def lm_eval_limit(self) -> int | None:
        return self.config.lm_eval_limit

    @property
    def lm_eval_batch_size(self) -> int:
        return self.config.lm_eval_batch_size

    @property
    def splits(self) -> TextSplits:
        if self._splits is None:
            c = self.config
            self._splits = load_splits(self.corpus, c.data_dir, c.source, c.path, c.hf_config, c.text_column)
        return self._splits

    def check_available(self) -> None:
        """The text, lm-eval when tasks are asked of it, and MMLU's data when it is one of them."""
        _ = self.splits
        if not self.config.lm_eval_tasks:
            return
        if importlib.util.find_spec("lm_eval") is None:
            raise TaskDataError("lm_eval_tasks needs lm-eval: pip install -e '.[lm]' (or set "
                                "lm_eval_tasks=[] to train without the lm-eval evaluation).")
        if any(lm_eval_pack.is_mmlu(t) for t in self.config.lm_eval_tasks):
            lm_eval_pack.check_mmlu(self.config.lm_eval_tasks, self.lm_eval_metadata()["data_dir"])
        if any(t in lm_eval_pack.PACK_TASKS for t in self.config.lm_eval_tasks):
            lm_eval_pack.ensure_pack(self.config.data_dir)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Endless batches of windows; each epoch is a fresh permutation of all training windows."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        data, t = self.splits.train, self.context
        count = (len(data) - 1) // t
        if count < 1:
            raise TaskDataError(f"the training split has {len(data)} bytes, fewer than one window of {t + 1}.")
        while True:
            order = torch.randperm(count, generator=generator)
            for start in range(0, count, batch_size):
                yield windows(data, order[start:start + batch_size] * t, t)

    # ------------------------------------------------------ model, loss, metric

    def build_model(self, generator: torch.Generator) -> BlockModel:
        return build_decoder(self.config.model, VOCAB_SIZE, generator)

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Mean next-byte cross-entropy (nats) over every position of the batch."""
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]).float(), batch.targets.reshape(-1))

    def evaluate(self, predict: Callable[[Tensor], Tensor], split: str, device: torch.device) -> dict[str, float]:
        """Bits per byte (and nats per byte) of `predict` on "val" (capped) or "test"."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}.")
        data = self.splits.val if split == "val" else self.splits.test
        cap = self.config.eval_bytes if split == "val" else self.config.test_bytes
        return score_bytes(predict, data, self.context, cap, device)

    # ------------------------------------------------- what lm-eval needs

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, tokens: list[int]) -> str:
        return bytes(t for t in tokens if 0 <= t < 256).decode("utf-8", errors="replace")

    def lm_eval_metadata(self) -> dict[str, Any]:
        """What the offline pack's loaders are told (suites/lm/tasks/bench_pack.py): where the text is."""
        return {"data_dir": str(text_corpus.corpus_dir(self.config.data_dir).parent)}

    def describe(self) -> dict[str, Any]:
        s, model = self.splits, self.config.model
        return {
            "corpus": self.corpus or self.config.path,
            "source": s.source,
            "data_dir": self.lm_eval_metadata()["data_dir"] if self.corpus else None,
            "train_bytes": len(s.train),
            "val_bytes": len(s.val),
            "test_bytes": len(s.test),
            "windows_per_epoch": (len(s.train) - 1) // self.context,
            "context": self.context,
            "vocab_size": VOCAB_SIZE,
            "tokenizer": "utf-8 bytes",
            "model_config": dataclasses.asdict(model),
            "parameters": decoder_parameter_count(model, VOCAB_SIZE),
            "init_from": self.config.init_from,
            # the baseline every model must beat: bits per byte of the test split under the
            # training split's byte frequencies (add-one smoothed), i.e. a unigram model
            "unigram_test_bits_per_byte": unigram_bits_per_byte(s.train, s.test),
        }


def unigram_bits_per_byte(train: Tensor, test: Tensor) -> float:
    """Cross-entropy (bits per byte) of `test` under byte frequencies counted on `train`, add-one smoothed."""
    counts = torch.bincount(train.long(), minlength=VOCAB_SIZE).double() + 1.0
    log2p = torch.log2(counts / counts.sum())
    return float(-(torch.bincount(test.long(), minlength=VOCAB_SIZE).double() * log2p).sum() / len(test))


def windows(data: Tensor, starts: Tensor, t: int) -> Batch:
    """Inputs data[s : s+t] and targets data[s+1 : s+t+1] for each start s, as int64 [B, t]."""
    rows = data[starts.unsqueeze(1) + torch.arange(t + 1)].long()
    return Batch(rows[:, :-1], rows[:, 1:])


def score_bytes(predict: Callable[[Tensor], Tensor], data: Tensor, t: int, cap: int,
                device: torch.device) -> dict[str, float]:
    """Cross-entropy of every next byte in non-overlapping windows of `data`.

    With `cap` > 0 only cap // t windows are scored, spread evenly over the split (the same
    ones for every method and every evaluation).
    """
    count = (len(data) - 1) // t
    if count < 1:
        raise ValueError(f"a split of {len(data)} bytes holds no window of {t + 1} bytes.")
    index = torch.arange(count)
    if cap and cap // t < count:
        index = torch.linspace(0, count - 1, max(1, cap // t)).round().long()
    total, tokens = 0.0, 0
    for chunk in index.split(EVAL_BATCH):
        batch = windows(data, chunk * t, t)
        logits = predict(batch.inputs.to(device)).detach().float()
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.to(device).reshape(-1),
                                 reduction="sum").item()
        tokens += batch.targets.numel()
    return {"bits_per_byte": total / tokens / LN2, "loss": total / tokens, "bytes_scored": float(tokens)}


@lru_cache(maxsize=4)
def load_splits(corpus: str | None, data_dir: str | None, source: str, path: str | None, hf_config: str | None,
                text_column: str) -> TextSplits:
    """Train/val/test bytes of a corpus from the fetched texts, a local path or the hub."""
    if source == "huggingface":
        if not path:
            raise TaskDataError("source=huggingface needs path=<dataset name>.")
        texts, where = text_corpus.huggingface_splits(path, hf_config, text_column), f"huggingface:{path}"
    elif source == "local" and path:
        texts, where = text_corpus.local_splits(path), f"local:{path}"
    elif corpus is not None:
        texts = {split: text_corpus.split_text(data_dir, corpus, split) for split in text_corpus.SPLITS}
        where = f"{text_corpus.corpus_dir(data_dir)} ({corpus})"
    else:
        raise TaskDataError("no text to read: set source=local path=FILE_OR_DIR, or source=huggingface path=NAME.")

    def as_bytes(text: str) -> Tensor:
        return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)

    return TextSplits(as_bytes(texts["train"]), as_bytes(texts["val"]), as_bytes(texts["test"]), where)


@register_task("shakespeare")
class ShakespeareTask(TextLMTask):
    """Shakespeare's plays and poems (Gutenberg, 42 works split by document): byte-level LM."""

    corpus = "shakespeare"


@register_task("milton")
class MiltonTask(TextLMTask):
    """Milton's verse (Paradise Lost / Regained / shorter poems): the held-out author for fine-tuning."""

    Config = MiltonConfig
    corpus = "milton"


@register_task("text")
class TextTask(TextLMTask):
    """Any text: a local .txt file or directory (source=local), or a hub dataset (source=huggingface)."""

    Config = OwnTextConfig
    corpus = None
