"""Texts sent back with feedback (``{"id": ..., "label": ..., "text": ...}``).

In ``hashed`` mode the prediction log has no texts, so a retrain has nothing to learn from unless
the client sends the text again with its label. The text is accepted only if its keyed hash is the
one logged for that prediction (so feedback cannot attach a different text to a served
prediction), and it is stored as :meth:`TextGuard.scrub` allows (redacted unless the mode is full).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from adaptd.errors import AdaptdError
from adaptd.privacy.guard import TextGuard
from adaptd.storage import texts as store


class TextMismatch(AdaptdError):
    def __init__(self, prediction_id: str) -> None:
        super().__init__(
            f"the text sent with feedback for {prediction_id!r} is not the text that was served "
            "(its keyed hash differs); nothing was stored"
        )
        self.prediction_id = prediction_id


def attach_texts(conn: Connection, guard: TextGuard, texts: Mapping[str, str]) -> int:
    """Check every text against its prediction's hash, then fill the predictions that have no
    stored text. Raises :class:`TextMismatch` before writing anything; returns texts stored."""
    rows = store.stored_texts(conn, list(texts))
    for pid, text in texts.items():
        row = rows.get(pid)
        if row is not None and not guard.matches(text, row.text_hash):
            raise TextMismatch(pid)
    fill = {}
    for pid, text in texts.items():
        row = rows.get(pid)
        if row is None or row.text is not None:
            continue
        scrubbed = guard.scrub(text)
        if scrubbed is not None:
            fill[pid] = scrubbed
    store.set_texts(conn, fill)
    return len(fill)
