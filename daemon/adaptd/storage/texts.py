"""Reading and filling the text of logged predictions (feedback that brings its text back)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update

from adaptd.storage import tables as t


@dataclass(frozen=True, slots=True)
class StoredTextRow:
    id: str
    text: str | None
    text_hash: str


def stored_texts(conn: Connection, ids: Sequence[str]) -> dict[str, StoredTextRow]:
    p = t.predictions.c
    query = select(p.id, p.text, p.text_hash).where(p.id.in_(list(ids)))
    return {r.id: StoredTextRow(r.id, r.text, r.text_hash) for r in conn.execute(query)}


def set_texts(conn: Connection, texts: Mapping[str, str]) -> None:
    """Store the text of predictions logged without one."""
    if not texts:
        return
    query = (
        update(t.predictions)
        .where(t.predictions.c.id == bindparam("pid"))
        .values(text=bindparam("new_text"))
    )
    conn.execute(query, [{"pid": pid, "new_text": text} for pid, text in texts.items()])
