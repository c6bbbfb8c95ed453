"""The book's text corpora and their tokenizers: characters (:class:`CharTokenizer`) and byte-level BPE
(:func:`train_bpe`, :func:`encode`, which also encodes with a pretrained model's tokenizer).

Offline corpus (every chapter, CI, Colab): the Python Language Reference, which ships with every
CPython as ``pydoc_data.topics``: about 80 articles of real English prose written by the Python
documentation authors, not by us. ``prose_only=True`` drops the indented code and grammar blocks.
The book reads a snapshot of CPython 3.11.7's copy that ships inside ``ntp_lib`` (``ntp_lib/data``,
PSF licence), checked by its SHA-256, so the corpus is the same bytes on every Python.

Online corpus (readers with internet only, never at test time): WikiText-2 through Hugging Face
``datasets``.

>>> text = load_python_docs()
>>> len(text) > 100_000
True
>>> tok = CharTokenizer.fit("abca")
>>> tok.encode("cab"), tok.decode([0, 1])
([2, 0, 1], 'ab')
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Sequence
from importlib import resources

import numpy as np

from ntp_lib.runtime import check_int, check_positive_ints

#: The shipped snapshot of ``pydoc_data.topics`` and the SHA-256 of its decompressed JSON bytes.
PYTHON_DOCS_SNAPSHOT = "python_docs_3.11.7.json.gz"
PYTHON_DOCS_SHA256 = "4717ccc51e2e7bd1eed2feddb0bcb5a7da19a1a923fd2f258cf81e4285e31683"
DOC_SOURCES = ("snapshot", "interpreter")


def python_docs_topics(source: str = "snapshot") -> dict[str, str]:
    """The Language Reference as ``{topic: text}``: the checked snapshot, or the running Python's own.

    ``source="snapshot"`` (the book's corpus) reads ``ntp_lib/data/python_docs_3.11.7.json.gz`` and
    raises ValueError if its bytes are not the ones the book was made with; ``"interpreter"`` reads
    ``pydoc_data.topics`` of the Python you run (its text differs between Python versions).
    """
    if source not in DOC_SOURCES:
        raise ValueError(f"source must be one of {DOC_SOURCES}, got {source!r}")
    if source == "interpreter":
        from pydoc_data.topics import topics

        return dict(topics)
    raw = gzip.decompress((resources.files("ntp_lib") / "data" / PYTHON_DOCS_SNAPSHOT).read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != PYTHON_DOCS_SHA256:
        raise ValueError(f"corpus snapshot {PYTHON_DOCS_SNAPSHOT} has SHA-256 {digest}, "
                         f"expected {PYTHON_DOCS_SHA256}: the installed ntp_lib is damaged, reinstall it")
    return json.loads(raw.decode("utf-8"))


def load_python_docs(prose_only: bool = True, max_chars: int | None = None, source: str = "snapshot") -> str:
    """The Python Language Reference (``pydoc_data.topics``), as one string.

    Articles are joined in sorted order of their keys. With the default ``source="snapshot"`` the text
    is the same on every machine and every Python (CPython 3.11.7's copy, shipped with ntp_lib);
    ``source="interpreter"`` reads the running Python's own copy instead.

    Args:
        prose_only: keep only unindented paragraphs (drops code examples and grammar rules),
            with each paragraph's lines joined into one line.
        max_chars: truncate to this many characters (``None``: the whole text).
        source: ``"snapshot"`` (the book's fixed corpus) or ``"interpreter"``.

    >>> len(load_python_docs()), len(load_python_docs(prose_only=False))
    (227446, 465047)
    """
    if max_chars is not None:
        check_positive_ints(max_chars=max_chars)
    topics = python_docs_topics(source)
    parts = []
    for key in sorted(topics):
        article = topics[key]
        if prose_only:
            paragraphs = []
            for para in re.split(r"\n\s*\n", article):
                lines = para.split("\n")
                if any(line.startswith((" ", "\t")) for line in lines) or not para.strip():
                    continue  # code, grammar, tables and nested lists are indented
                if set(lines[-1].strip()) <= set("*=-"):
                    continue  # a section title underlined with *** or ===
                paragraphs.append(" ".join(line.strip() for line in lines))
            article = "\n".join(paragraphs)
        parts.append(article.strip())
    text = "\n\n".join(p for p in parts if p)
    return text[:max_chars] if max_chars else text


def load_wikitext2(split: str = "train") -> str:  # pragma: no cover - needs the internet
    """WikiText-2 (raw) from the Hugging Face hub: **online readers only** (Colab).

    Needs ``pip install datasets`` and network access; CI and the offline book never call it.
    """
    allowed = ("train", "validation", "test")
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")
    try:
        from datasets import load_dataset
    except ImportError as err:
        raise ImportError("load_wikitext2 needs the 'datasets' package: pip install datasets") from err
    rows = load_dataset("Salesforce/wikitext", "wikitext-2-raw-v1", split=split)["text"]
    return "".join(rows)


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens: ``"Hello, world."`` -> ``['hello', ',', 'world', '.']``."""
    return re.findall(r"[a-z0-9_]+|[^\sa-z0-9_]", text.lower())


def train_bpe(text: str, vocab_size: int):
    """Train a byte-level BPE tokenizer (``tokenizers`` package) on ``text``; deterministic.

    The pre-tokenizer and decoder are GPT-2's byte-level ones (as the Pythia tokenizer), with the
    256 byte symbols always in the vocabulary, so ``vocab_size`` must be at least 257.

    Returns:
        a ``tokenizers.Tokenizer``; ``encode(text).ids`` gives token ids.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string (the corpus is empty)")
    check_int("vocab_size", vocab_size, low=257, high=1_000_000, why="256 bytes + at least one merge")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.split("\n"), trainer=trainer)
    return tok


def encode(tokenizer, text: str) -> np.ndarray:
    """Token ids (N,) int64 of the whole of ``text``, with no special token added.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` (such as :func:`train_bpe`'s) or a fast tokenizer of
    ``transformers`` (its ``backend_tokenizer`` is used, on a copy with truncation and padding off, so
    a text longer than the model's context is encoded whole and without a warning).
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string (the corpus is empty)")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(backend.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
    return np.asarray(tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int64)


class CharTokenizer:
    """Characters <-> integer ids, with the vocabulary sorted so ids are reproducible."""

    def __init__(self, chars: Sequence[str]) -> None:
        if len(chars) == 0:
            raise ValueError("CharTokenizer needs a non-empty vocabulary")
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer vocabulary has repeated characters")
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        if not text:
            raise ValueError("cannot fit a tokenizer on an empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        missing = sorted(set(text) - set(self.stoi))
        if missing:
            raise ValueError(f"characters not in the vocabulary: {missing[:10]}")
        return [self.stoi[c] for c in text]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        bad = [int(i) for i in ids if not 0 <= int(i) < self.vocab_size]
        if bad:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {bad[:10]}")
        return "".join(self.chars[int(i)] for i in ids)
