"""Cheap per-text descriptors: what input drift on raw text is measured on, and what the prediction
log keeps of a text when ``privacy.text`` is ``hashed`` (the text itself is not kept, these few
numbers about it are: a length and some shares say nothing about who wrote it).

``oov_share`` uses the serving model's own tokenizer (passed in as a batch callable returning
word pieces), because unknown and split pieces are what the model actually struggles with on a
new domain; the others need nothing but the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

#: every descriptor, with what it measures; each becomes the signal ``drift.text.<name>``
TEXT_DESCRIPTORS: dict[str, str] = {
    "length": "characters per text",
    "word_count": "whitespace-separated words per text",
    "oov_share": "share of word pieces that are [UNK] or continuation pieces under the tokenizer",
    "non_alpha_share": "share of characters that are neither letters nor spaces",
    "upper_share": "share of letters in upper case",
    "url_share": "share of words that look like URLs, @mentions or #hashtags",
}
#: the descriptors that need no tokenizer (what the prediction log keeps in ``hashed`` mode)
PLAIN_DESCRIPTORS = tuple(name for name in TEXT_DESCRIPTORS if name != "oov_share")


#: texts -> word pieces per text (e.g. a Hugging Face tokenizer's tokens without specials)
Tokenizer = Callable[[Sequence[str]], Sequence[Sequence[str]]]

#: links, mentions and hashtags, and the placeholders privacy.text: redacted leaves for links and
#: emails, so url_share means the same on redacted text
_URLISH = re.compile(r"(?:https?://\S+|www\.\S+|[@#]\w+|<URL>|<EMAIL>)")
_ASCII = 128
#: per-character classes, as bit flags
_LETTER, _UPPER, _SPACE, _OTHER = 1, 2, 4, 8


def _classes(code_points: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint8]:
    """Class flags of each code point: a lookup table for ASCII, str methods once per distinct
    non-ASCII code point (a few hundred in practice)."""
    table = np.zeros(_ASCII, dtype=np.uint8)
    for c in range(_ASCII):
        table[c] = _flags(chr(c))
    out = np.empty(len(code_points), dtype=np.uint8)
    ascii_ = code_points < _ASCII
    out[ascii_] = table[code_points[ascii_]]
    if not ascii_.all():
        distinct, inverse = np.unique(code_points[~ascii_], return_inverse=True)
        flags = np.array([_flags(chr(int(c))) for c in distinct], dtype=np.uint8)
        out[~ascii_] = flags[inverse]
    return out


def _flags(ch: str) -> int:
    if ch.isalpha():
        return _LETTER | (_UPPER if ch.isupper() else 0)
    if ch.isspace():
        return _SPACE
    return _OTHER


def descriptors(
    texts: Sequence[str], tokenizer: Tokenizer | None = None
) -> dict[str, npt.NDArray[np.float64]]:
    """One array per descriptor, aligned with ``texts``. ``oov_share`` only with a tokenizer.

    Vectorised over the concatenation of all texts (one pass of numpy over the code points),
    because per-text regular expressions took seconds on a 100k window.
    """
    n = len(texts)
    length = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    joined = "".join(texts)
    # surrogatepass: a lone surrogate (possible in JSON input) is a character, not a crash
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    flags = _classes(codes)
    starts = np.concatenate([[0], np.cumsum(length)[:-1]]) if n else np.zeros(0, dtype=np.int64)
    space = (flags & _SPACE) > 0
    # a word starts at a non-space character that opens its text or follows a space
    previous_space = np.concatenate([[True], space[:-1]])
    previous_space[starts[length > 0]] = True
    word_start = ~space & previous_space

    def per_text(values: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        if not n:
            return np.zeros(0)
        # a trailing zero keeps every start (even that of a last, empty text) a valid index
        padded = np.append(values.astype(np.int64), 0)
        sums = np.add.reduceat(padded, starts)
        return np.where(length > 0, sums, 0).astype(np.float64)

    letters = per_text((flags & _LETTER) > 0)
    upper = per_text((flags & _UPPER) > 0)
    other = per_text((flags & _OTHER) > 0)
    words = per_text(word_start)
    urls = np.fromiter(
        (
            len(_URLISH.findall(t))
            if ("@" in t or "#" in t or "http" in t or "www." in t or "<" in t)
            else 0
            for t in texts
        ),
        dtype=np.float64,
        count=n,
    )
    lengths = length.astype(np.float64)
    out = {
        "length": lengths,
        "word_count": words,
        "non_alpha_share": np.where(lengths > 0, other / np.maximum(lengths, 1), 0.0),
        "upper_share": np.where(letters > 0, upper / np.maximum(letters, 1), 0.0),
        "url_share": np.where(words > 0, urls / np.maximum(words, 1), 0.0),
    }
    if tokenizer is not None:
        out["oov_share"] = oov_shares(texts, tokenizer)
    return out


def oov_shares(texts: Sequence[str], tokenizer: Tokenizer) -> npt.NDArray[np.float64]:
    """Share of pieces that are unknown (``[UNK]``/``<unk>``) or word continuations (``##``)."""
    if not texts:  # a Hugging Face tokenizer fails on an empty batch
        return np.zeros(0)
    pieces = tokenizer(list(texts))
    out = np.zeros(len(texts))
    for i, toks in enumerate(pieces):
        if toks:
            bad = sum(1 for p in toks if p.startswith("##") or p in ("[UNK]", "<unk>"))
            out[i] = bad / len(toks)
    return out


def descriptor_rows(texts: Sequence[str]) -> list[dict[str, float]]:
    """The tokenizer-free descriptors of each text, one small dict per text (a JSON column)."""
    columns = descriptors(texts)
    values = [columns[name].tolist() for name in PLAIN_DESCRIPTORS]
    return [
        {name: round(float(v[i]), 6) for name, v in zip(PLAIN_DESCRIPTORS, values, strict=True)}
        for i in range(len(texts))
    ]
