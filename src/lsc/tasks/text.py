"""Language modelling: word-level PTB-format text and char-level text.

**PTB format** (Mikolov's ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt`` in ``path``
or ``$LSC_DATA/ptb``): one sentence a line, words separated by spaces, rare words already
``<unk>``. Every newline becomes the token ``<eos>`` (docs/design.md A4.3). The vocabulary
comes from the training file, most frequent first (ties alphabetical); a validation or
test word outside it becomes ``<unk>``.

**Char level**: any UTF-8 text file (``path``), or by default the Python standard
library's own sources, present on every machine: the ``*.py`` files directly in
``sysconfig.get_paths()["stdlib"]``, sorted by name and concatenated up to ``max_chars``
(deterministic for a given Python version). Split 90/5/5 % in order. Characters seen
only outside the training part map to one unknown symbol.

Batching is contiguous truncated BPTT (:class:`lsc.tasks.base.StreamSplit`): windows of
``bptt`` tokens, targets shifted by one, the state carried between windows.
"""

from __future__ import annotations

import sysconfig
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from .base import Split, StreamSplit, Task
from .paths import DataError, locate

PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
EOS, UNK = "<eos>", "<unk>"
UNK_CHAR = "\ufffd"


def read_text(path: str | Path) -> str:
    """The text of a file; an empty file (or one with only whitespace) is a clear error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        raise DataError(f"{path} is empty: a text corpus needs at least one word")
    return text


def words(text: str) -> list[str]:
    """PTB tokens: the words of every line, then ``<eos>`` for its newline."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend(line.split())
        out.append(EOS)
    return out


def build_vocab(tokens: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """Tokens by frequency (most frequent first, ties alphabetical), plus ``extra`` ones
    that are missing, at the end."""
    counts = Counter(tokens)
    vocab = sorted(counts, key=lambda w: (-counts[w], w))
    return vocab + [e for e in extra if e not in counts]


def to_ids(tokens: Sequence[str], vocab: Sequence[str], unknown: str) -> torch.Tensor:
    index = {w: i for i, w in enumerate(vocab)}
    unk = index[unknown]
    return torch.tensor([index.get(w, unk) for w in tokens], dtype=torch.long)


def ptb(*, path: str | Path | None = None, bptt: int = 35, time_repeat: int = 1) -> Task:
    """Word-level language modelling on PTB-format files; metric perplexity."""
    _check_bptt(bptt)
    files = locate(
        "PTB",
        PTB_FILES,
        path,
        "ptb",
        gzip_ok=False,
        hint="Any corpus in this format works (one sentence a line, words separated by spaces).",
    )
    texts = {name: read_text(files[name]) for name in PTB_FILES}
    train_words = words(texts[PTB_FILES[0]])
    vocab = build_vocab(train_words, extra=(UNK,))
    splits: dict[str, Split] = {
        split: StreamSplit(to_ids(train_words if split == "train" else words(texts[name]), vocab, UNK), bptt)
        for split, name in zip(("train", "val", "test"), PTB_FILES)
    }
    options: dict[str, object] = {"path": None if path is None else str(path), "bptt": bptt, "time_repeat": time_repeat}
    return Task(
        "ptb",
        "lm",
        splits,
        output_size=len(vocab),
        seq_len=bptt,
        vocab_size=len(vocab),
        time_repeat=time_repeat,
        stateful=True,
        source=f"PTB-format files in {files[PTB_FILES[0]].parent}",
        options=options,
        vocab=vocab,
    )


def stdlib_corpus(max_chars: int) -> tuple[str, str]:
    """(text, description): the standard library's top-level ``*.py`` sources, sorted
    by file name, concatenated up to ``max_chars`` characters."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for f in sorted(root.glob("*.py")):
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    text = "".join(parts)[:max_chars]
    if not text:
        raise DataError(f"found no Python sources in {root} for the default char-level corpus; pass path=FILE")
    return text, f"Python standard library sources in {root} (first {len(text)} characters, files sorted by name)"


def char(*, path: str | Path | None = None, bptt: int = 100, max_chars: int = 1_000_000, time_repeat: int = 1) -> Task:
    """Char-level language modelling on a text file or the standard library's sources."""
    _check_bptt(bptt)
    if not isinstance(max_chars, int) or max_chars < 100:
        raise ValueError(f"max_chars must be an integer >= 100, got {max_chars!r}")
    if path is not None:
        text, source = read_text(path)[:max_chars], f"text file {path}"
    else:
        text, source = stdlib_corpus(max_chars)
    n = len(text)
    a, b = int(n * 0.9), int(n * 0.95)
    parts = {"train": text[:a], "val": text[a:b], "test": text[b:]}
    for name, part in parts.items():
        if len(part) < 2:
            raise DataError(f"the corpus ({n} characters) is too short to give a {name} split; use a longer text")
    vocab = build_vocab(list(parts["train"]), extra=(UNK_CHAR,))
    splits: dict[str, Split] = {k: StreamSplit(to_ids(list(v), vocab, UNK_CHAR), bptt) for k, v in parts.items()}
    options: dict[str, object] = {
        "path": None if path is None else str(path),
        "bptt": bptt,
        "max_chars": max_chars,
        "time_repeat": time_repeat,
    }
    return Task(
        "char",
        "lm",
        splits,
        output_size=len(vocab),
        seq_len=bptt,
        vocab_size=len(vocab),
        time_repeat=time_repeat,
        stateful=True,
        source=source,
        options=options,
        vocab=vocab,
    )


def _check_bptt(bptt: int) -> None:
    if isinstance(bptt, bool) or not isinstance(bptt, int) or bptt < 1:
        raise ValueError(f"bptt must be an integer >= 1, got {bptt!r}")
