"""BERT's WordPiece tokenizer in plain Python, reading ``vocab.txt``.

Kiln ships its own rather than depending on the ``tokenizers`` package: it is ~100 lines,
needs nothing to install, works offline, and a test checks it token for token against
``tokenizers`` (``tokenizer.json`` of the same model) when that package is installed.

The steps are ``BertTokenizer``'s (``do_lower_case=True``, ``tokenize_chinese_chars=True``):
drop control characters and turn whitespace into spaces; put spaces around CJK ideographs;
split on whitespace; lowercase and strip accents (NFD, drop combining marks); split off
punctuation; then greedy longest-match-first WordPiece with ``##`` continuations, ``[UNK]``
for a word that does not split (or is longer than 100 characters).
"""

from __future__ import annotations

import os
import pathlib
import unicodedata
from typing import Any

from kiln.errors import ArgumentError, SerializationError

MAX_WORD_CHARS = 100


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # ASCII symbols count as punctuation ("$", "^", "`"), as in BERT.
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _clean(text: str) -> str:
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD:
            continue
        if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            continue
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return "".join(out)


def _split_punctuation(word: str) -> list[str]:
    pieces: list[str] = []
    current = ""
    for ch in word:
        if _is_punctuation(ch):
            if current:
                pieces.append(current)
            pieces.append(ch)
            current = ""
        else:
            current += ch
    if current:
        pieces.append(current)
    return pieces


class WordPieceTokenizer:
    """Text -> BERT token ids, from a ``vocab.txt`` (one token per line, id = line number).

    >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world",
    ...                           "play", "##ing", "!"])
    >>> tok.tokenize("Hello, WORLD playing!")
    ['hello', '[UNK]', 'world', 'play', '##ing', '!']
    >>> tok.encode("playing")
    [2, 6, 7, 3]
    """

    def __init__(self, vocab: list[str], lowercase: bool = True, unk: str = "[UNK]",
                 cls: str = "[CLS]", sep: str = "[SEP]", pad: str = "[PAD]") -> None:
        self.vocab = {token: i for i, token in enumerate(vocab)}
        self.lowercase = lowercase
        for name, token in (("unk", unk), ("cls", cls), ("sep", sep), ("pad", pad)):
            if token not in self.vocab:
                raise ArgumentError(f"WordPieceTokenizer: the {name} token {token!r} is not in "
                                    "the vocabulary")
        self.unk, self.cls_id = unk, self.vocab[cls]
        self.sep_id, self.pad_id = self.vocab[sep], self.vocab[pad]

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> WordPieceTokenizer:
        """Read ``vocab.txt`` from a model folder (or the file itself); a folder's
        ``tokenizer_config.json`` may set ``do_lower_case`` and the special tokens."""
        import json

        p = pathlib.Path(path)
        options: dict[str, Any] = {}
        if p.is_dir():
            config = p / "tokenizer_config.json"
            if config.is_file():
                try:
                    data = json.loads(config.read_text(encoding="utf-8"))
                except ValueError as e:
                    raise SerializationError(f"{os.fspath(config)}: not JSON: {e}") from None
                if isinstance(data, dict):
                    options["lowercase"] = bool(data.get("do_lower_case", True))
                    for key in ("unk", "cls", "sep", "pad"):
                        token = data.get(f"{key}_token")
                        if isinstance(token, str):
                            options[key] = token
            p = p / "vocab.txt"
        try:
            lines = p.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as e:
            raise SerializationError(f"{os.fspath(p)}: not UTF-8: {e}") from None
        if lines and lines[-1] == "":
            lines.pop()
        return cls([line.rstrip("\r") for line in lines], **options)

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into WordPiece tokens (strings)."""
        if not isinstance(text, str):
            raise ArgumentError(f"tokenize: expected a str, got {type(text).__name__}")
        tokens: list[str] = []
        for word in _clean(text).split():
            if self.lowercase:
                word = "".join(ch for ch in unicodedata.normalize("NFD", word.lower())
                               if unicodedata.category(ch) != "Mn")
            for piece in _split_punctuation(word):
                tokens.extend(self._wordpiece(piece))
        return tokens

    def _wordpiece(self, word: str) -> list[str]:
        if len(word) > MAX_WORD_CHARS:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in self.vocab:
                    pieces.append(candidate)
                    break
                end -= 1
            else:
                return [self.unk]  # some part of the word matches nothing
            start = end
        return pieces

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """``[CLS] tokens [SEP]`` as ids, the tokens cut to fit ``max_length``."""
        ids = [self.vocab[t] for t in self.tokenize(text)]
        if max_length is not None:
            if max_length < 2:
                raise ArgumentError(f"encode: max_length must be >= 2, got {max_length}")
            ids = ids[: max_length - 2]
        return [self.cls_id, *ids, self.sep_id]

    def batch(self, texts: list[str], max_length: int | None = None
              ) -> tuple[list[list[int]], list[list[int]]]:
        """``(input_ids, attention_mask)`` for several texts, padded to the longest."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts) or not texts:
            raise ArgumentError("batch: expected a non-empty list of str")
        rows = [self.encode(t, max_length) for t in texts]
        width = max(map(len, rows))
        ids = [r + [self.pad_id] * (width - len(r)) for r in rows]
        mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
        return ids, mask
