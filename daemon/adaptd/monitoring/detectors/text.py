"""Input drift on raw text: cheap per-text descriptors, each tested with Evidently's column rule.

Descriptors need no second model. ``oov_share`` uses the serving model's own tokenizer (passed in
as a batch callable returning word pieces), because unknown and split pieces are what the model
actually struggles with on a new domain.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from adaptd.monitoring.catalog import TEXT_DESCRIPTORS
from adaptd.monitoring.detectors.base import CheckContext, enough, error, insufficient, verdict
from adaptd.monitoring.detectors.stattests import column_drift, wasserstein_normed
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal, Status

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
    pieces = tokenizer(list(texts))
    out = np.zeros(len(texts))
    for i, toks in enumerate(pieces):
        if toks:
            bad = sum(1 for p in toks if p.startswith("##") or p in ("[UNK]", "<unk>"))
            out[i] = bad / len(toks)
    return out


def text_drift(
    ctx: CheckContext, reference: Window, current: Window, tokenizer: Tokenizer | None = None
) -> list[Signal]:
    """``drift.text.<descriptor>`` per descriptor and ``drift.text.share`` over them."""
    ref_texts, cur_texts = reference.text_list(), current.text_list()
    n_ref, n_cur = len(ref_texts), len(cur_texts)
    names = [f"drift.text.{d}" for d in TEXT_DESCRIPTORS]
    if not enough(ctx, n_ref, n_cur):
        return [
            insufficient(ctx, name, n_reference=n_ref, n_current=n_cur)
            for name in [*names, "drift.text.share"]
        ]
    ref_desc = descriptors(ref_texts, tokenizer)
    cur_desc = descriptors(cur_texts, tokenizer)
    signals: list[Signal] = []
    drifted = 0
    tested = 0
    for name in TEXT_DESCRIPTORS:
        signal_name = f"drift.text.{name}"
        if name not in ref_desc:
            signals.append(
                error(
                    ctx, signal_name, "no tokenizer was given", n_reference=n_ref, n_current=n_cur
                )
            )
            continue
        ref, cur = ref_desc[name], cur_desc[name]
        test = column_drift(ref, cur, "numerical")
        tested += 1
        drifted += int(test.drifted)
        signals.append(
            verdict(
                ctx,
                signal_name,
                wasserstein_normed(ref, cur),
                drifted=test.drifted,
                n_reference=n_ref,
                n_current=n_cur,
                details={
                    "method": test.method,
                    "statistic": test.statistic,
                    "reference_mean": float(ref.mean()),
                    "current_mean": float(cur.mean()),
                },
            )
        )
    share = drifted / tested
    distinct = len(set(cur_texts))
    details: dict[str, object] = {
        "drifted": [s.name for s in signals if s.status is Status.DRIFT],
        "tested": tested,
        "distinct_current_texts": distinct,
    }
    # One text repeated over a whole window (a stuck client, a replay) can keep most descriptors
    # inside their reference range; it is never normal traffic, so it is drift on its own.
    degenerate = distinct == 1 and len(set(ref_texts)) > 1
    if degenerate:
        details["reason"] = "every text in the current window is the same"
    signals.append(
        verdict(
            ctx,
            "drift.text.share",
            share,
            drifted=share >= ctx.settings.drift_share or degenerate,
            n_reference=n_ref,
            n_current=n_cur,
            details=details,
        )
    )
    return signals
