"""Repository functions of the ``probations`` table (one row per promotion that replaced a
version). Kept apart from :mod:`adaptd.storage.repository` because probation is one concern with
its own small lifecycle: ``running`` until the control loop ends it as ``passed``,
``rolled_back`` or ``superseded`` (the active version changed by other hands meanwhile).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update

from adaptd.storage import tables as t
from adaptd.storage.records import ProbationRecord

RUNNING = "running"
#: how a probation can end
ENDINGS = frozenset({"passed", "rolled_back", "superseded"})


def _record(row: Row[Any]) -> ProbationRecord:
    return ProbationRecord(
        id=row.id,
        version=row.version,
        previous=row.previous,
        started=row.started,
        source=row.source,
        status=row.status,
        finished=row.finished,
        reason=row.reason,
    )


def start(conn: Connection, *, version: str, previous: str, now: datetime, source: str) -> int:
    """Put ``version`` on probation against ``previous``, inside the caller's transaction (the
    promotion's own, so a crash cannot leave a promotion without its probation). A probation
    still running for an earlier promotion is superseded: only the newest one is judged."""
    conn.execute(
        update(t.probations)
        .where(t.probations.c.status == RUNNING)
        .values(status="superseded", finished=now, reason=f"{version[:12]} promoted")
    )
    result = conn.execute(
        insert(t.probations).values(
            version=version, previous=previous, started=now, source=source, status=RUNNING
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def running(engine: Engine) -> ProbationRecord | None:
    """The probation being judged, if any (the newest running one)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(t.probations)
            .where(t.probations.c.status == RUNNING)
            .order_by(t.probations.c.id.desc())
            .limit(1)
        ).one_or_none()
    return _record(row) if row is not None else None


def finish(engine: Engine, probation_id: int, *, status: str, now: datetime, reason: str) -> bool:
    """End a running probation; False when it had already ended (another control instance or a
    later promotion got there first), so the caller acts at most once."""
    if status not in ENDINGS:
        raise ValueError(f"probation status {status!r}: one of {sorted(ENDINGS)}")
    with engine.begin() as conn:
        result = conn.execute(
            update(t.probations)
            .where(t.probations.c.id == probation_id, t.probations.c.status == RUNNING)
            .values(status=status, finished=now, reason=reason)
        )
    return result.rowcount == 1


def history(engine: Engine, *, limit: int = 50) -> list[ProbationRecord]:
    """The newest probations first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.probations).order_by(t.probations.c.id.desc()).limit(limit)
        ).all()
    return [_record(r) for r in rows]
