"""Repository functions: take an engine (or connection), return our dataclasses.

Writes that the serving path depends on are batched Core statements. Upserts use the dialect's
ON CONFLICT so repeated feedback is idempotent on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, Row, and_, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from adaptd.errors import ActiveChangedError, NotFoundError, StoreError
from adaptd.storage import tables as t
from adaptd.storage.notify import REGISTRY_CHANNEL
from adaptd.storage.records import (
    AdapterRecord,
    Event,
    FeedbackRecord,
    LabelledPrediction,
    MonitorResult,
    PredictionRecord,
    ReferenceRow,
    RetrainRun,
)

# --------------------------------------------------------------------------- predictions


def prediction_row(p: PredictionRecord) -> dict[str, Any]:
    """The insert parameters of a prediction (the log writer batches these)."""
    return {
        "id": p.id,
        "ts": p.ts,
        "adapter": p.adapter,
        "text": p.text,
        "text_hash": p.text_hash,
        "label": p.label,
        "score": p.score,
        "probabilities": p.probabilities,
        "embedding": p.embedding,
        "attributes": p.attributes or None,
        "truncated": p.truncated,
        "latency_ms": p.latency_ms,
        "text_features": p.text_features,
    }


def insert_prediction_rows(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """One executemany for the whole batch; the caller owns the transaction."""
    if rows:
        conn.execute(insert(t.predictions), list(rows))


def insert_predictions(engine: Engine, records: Iterable[PredictionRecord]) -> int:
    rows = [prediction_row(p) for p in records]
    with engine.begin() as conn:
        insert_prediction_rows(conn, rows)
    return len(rows)


def _prediction(row: Row[Any]) -> PredictionRecord:
    return PredictionRecord(
        seq=row.seq,
        id=row.id,
        ts=row.ts,
        adapter=row.adapter,
        text=row.text,
        text_hash=row.text_hash,
        label=row.label,
        score=row.score,
        probabilities=row.probabilities,
        embedding=row.embedding,
        attributes=row.attributes or {},
        truncated=row.truncated,
        latency_ms=row.latency_ms,
        text_features=row.text_features,
    )


def recent_predictions(
    engine: Engine,
    *,
    limit: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    adapter: str | None = None,
    oldest_first: bool = False,
) -> list[PredictionRecord]:
    """The newest ``limit`` predictions (optionally of one adapter, within a time range),
    returned oldest first when ``oldest_first`` else newest first."""
    conds = []
    if since is not None:
        conds.append(t.predictions.c.ts >= since)
    if until is not None:
        conds.append(t.predictions.c.ts < until)
    if adapter is not None:
        conds.append(t.predictions.c.adapter == adapter)
    query = select(t.predictions).where(and_(True, *conds))
    if oldest_first and limit is None:
        query = query.order_by(t.predictions.c.seq.asc())
    else:
        query = query.order_by(t.predictions.c.seq.desc())
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        out = [_prediction(r) for r in conn.execute(query)]
    if oldest_first and limit is not None:
        out.reverse()
    return out


def first_predictions(engine: Engine, *, adapter: str, limit: int) -> list[PredictionRecord]:
    """The first ``limit`` predictions an adapter served (its live reference window)."""
    query = (
        select(t.predictions)
        .where(t.predictions.c.adapter == adapter)
        .order_by(t.predictions.c.seq.asc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [_prediction(r) for r in conn.execute(query)]


def count_predictions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.predictions)).scalar_one())


def existing_prediction_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    query = select(t.predictions.c.id).where(t.predictions.c.id.in_(list(ids)))
    return {r.id for r in conn.execute(query)}


# --------------------------------------------------------------------------- feedback


def _insert(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_update`` / ``_do_nothing``."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    # pragma: no cover - only SQLite and PostgreSQL are supported
    raise StoreError(f"store.url: {dialect} is not supported (use SQLite or PostgreSQL)")


def _upsert(conn: Connection, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    stmt = _insert(conn, table)
    excluded = stmt.excluded
    columns = {c: excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=columns), rows)


def upsert_feedback(conn: Connection, records: Sequence[FeedbackRecord]) -> None:
    """Store feedback; the same prediction id again replaces the label (idempotent on repeat)."""
    rows = [
        {"prediction_id": r.prediction_id, "label": r.label, "ts": r.ts, "source": r.source}
        for r in records
    ]
    _upsert(conn, t.feedback, rows, ["prediction_id"])


def labelled_predictions(
    engine: Engine,
    *,
    limit: int | None = None,
    since: datetime | None = None,
    adapter: str | None = None,
) -> list[LabelledPrediction]:
    """Predictions that received feedback, newest ``limit`` by feedback time, oldest first."""
    j = t.predictions.join(t.feedback, t.feedback.c.prediction_id == t.predictions.c.id)
    conds = []
    if since is not None:
        conds.append(t.feedback.c.ts >= since)
    if adapter is not None:
        conds.append(t.predictions.c.adapter == adapter)
    query = (
        select(t.predictions, t.feedback.c.label.label("true_label"), t.feedback.c.ts.label("fts"))
        .select_from(j)
        .where(and_(True, *conds))
        .order_by(t.feedback.c.ts.desc(), t.predictions.c.seq.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        out = [
            LabelledPrediction(
                prediction=_prediction(r), true_label=r.true_label, feedback_ts=r.fts
            )
            for r in conn.execute(query)
        ]
    out.reverse()
    return out


def count_labelled(engine: Engine) -> int:
    """Labelled predictions that can be trained on (their text is stored).

    A running total: feedback only adds to it (a repeated label replaces the row), so a retrain
    policy counts the labels of an episode as the difference of two totals, one COUNT per check.
    Rows deleted by retention or forgetting stay counted (``counters``), or steady traffic under
    a retention age would hold the total flat and a policy waiting for labels would wait forever.
    """
    j = t.predictions.join(t.feedback, t.feedback.c.prediction_id == t.predictions.c.id)
    query = select(func.count()).select_from(j).where(t.predictions.c.text.is_not(None))
    gone = select(t.counters.c.value).where(t.counters.c.name == LABELLED_DELETED)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one()) + int(
            conn.execute(gone).scalar_one_or_none() or 0
        )


def labelled_times(engine: Engine, *, until: datetime | None = None) -> list[datetime]:
    """When each trainable label (see :func:`count_labelled`) arrived, oldest first: a backtest
    replays the label counts a retrain policy waits for."""
    j = t.predictions.join(t.feedback, t.feedback.c.prediction_id == t.predictions.c.id)
    query = select(t.feedback.c.ts).select_from(j).where(t.predictions.c.text.is_not(None))
    if until is not None:
        query = query.where(t.feedback.c.ts <= until)
    query = query.order_by(t.feedback.c.ts)
    with engine.connect() as conn:
        return [r.ts for r in conn.execute(query)]


def labelled_predictions_for(engine: Engine, ids: Sequence[str]) -> list[LabelledPrediction]:
    """The given predictions that received feedback (any order); monitors join labels onto
    their windows with this, however old the feedback is."""
    out: list[LabelledPrediction] = []
    j = t.predictions.join(t.feedback, t.feedback.c.prediction_id == t.predictions.c.id)
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):  # keeps IN lists within every driver's limits
            query = (
                select(
                    t.predictions,
                    t.feedback.c.label.label("true_label"),
                    t.feedback.c.ts.label("fts"),
                )
                .select_from(j)
                .where(t.predictions.c.id.in_(list(ids[start : start + 500])))
            )
            out += [
                LabelledPrediction(
                    prediction=_prediction(r), true_label=r.true_label, feedback_ts=r.fts
                )
                for r in conn.execute(query)
            ]
    return out


# --------------------------------------------------------------------------- adapters


def _adapter(row: Row[Any]) -> AdapterRecord:
    return AdapterRecord(
        version=row.version,
        parent=row.parent,
        status=row.status,
        path=row.path,
        created=row.created,
        promoted=row.promoted,
        reason=row.reason,
        data_window=row.data_window,
        metrics=row.metrics,
        verdict=row.verdict,
        config=row.config,
    )


def add_adapter(engine: Engine, record: AdapterRecord) -> AdapterRecord:
    """Register a version; registering the same content again returns the existing record."""
    with engine.begin() as conn:
        row = conn.execute(
            select(t.adapters).where(t.adapters.c.version == record.version)
        ).one_or_none()
        if row is not None:
            return _adapter(row)
        conn.execute(
            insert(t.adapters).values(
                version=record.version,
                parent=record.parent,
                status=record.status,
                path=record.path,
                created=record.created,
                promoted=record.promoted,
                reason=record.reason,
                data_window=record.data_window,
                metrics=record.metrics,
                verdict=record.verdict,
                config=record.config,
            )
        )
    return record


def get_adapter(engine: Engine, version: str) -> AdapterRecord:
    """An adapter by version or by a unique prefix of it (like git)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.adapters).where(t.adapters.c.version.startswith(version, autoescape=True))
        ).all()
    if not rows:
        raise NotFoundError(f"adapter {version!r} not found")
    exact = [r for r in rows if r.version == version]
    if exact:
        return _adapter(exact[0])
    if len(rows) > 1:
        raise NotFoundError(f"adapter prefix {version!r} is ambiguous ({len(rows)} versions)")
    return _adapter(rows[0])


def list_adapters(engine: Engine) -> list[AdapterRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(t.adapters).order_by(t.adapters.c.created.asc()))
        return [_adapter(r) for r in rows]


def active_adapter(engine: Engine) -> AdapterRecord | None:
    with engine.connect() as conn:
        row = conn.execute(select(t.adapters).where(t.adapters.c.status == "active")).one_or_none()
    return _adapter(row) if row is not None else None


def set_adapter_fields(engine: Engine, version: str, **fields: Any) -> None:
    with engine.begin() as conn:
        result = conn.execute(
            update(t.adapters).where(t.adapters.c.version == version).values(**fields)
        )
    if result.rowcount == 0:
        raise NotFoundError(f"adapter {version!r} not found")


def activate_adapter(engine: Engine, version: str, now: datetime) -> str | None:
    """Make ``version`` the one active adapter in one transaction; returns the previous one."""
    with engine.begin() as conn:
        target = conn.execute(
            select(t.adapters.c.version).where(t.adapters.c.version == version)
        ).one_or_none()
        if target is None:
            raise NotFoundError(f"adapter {version!r} not found")
        previous = conn.execute(
            select(t.adapters.c.version).where(t.adapters.c.status == "active")
        ).scalar_one_or_none()
        if previous == version:
            return str(previous)
        if previous is not None:
            conn.execute(
                update(t.adapters).where(t.adapters.c.version == previous).values(status="retired")
            )
        conn.execute(
            update(t.adapters)
            .where(t.adapters.c.version == version)
            .values(status="active", promoted=now)
        )
        _notify_switch(conn, version)
    return str(previous) if previous is not None else None


# An arbitrary constant naming the "who is active" critical section among PostgreSQL clients.
_ADAPTER_SWITCH_LOCK = 0x61646170_74640001


def switch_active_adapter(
    engine: Engine,
    version: str,
    now: datetime,
    *,
    previous_status: str = "retired",
    expect_active: str | None = None,
    then: Callable[[Connection, str | None], object] | None = None,
) -> str | None:
    """Make ``version`` the one active adapter, giving the one it replaces ``previous_status``
    (``retired`` on promotion, ``rolled_back`` on rollback); returns the replaced version.

    Two processes switching at once (the control loop and an operator's CLI) must never leave two
    active versions: PostgreSQL serialises switches with a transaction-scoped advisory lock, and on
    SQLite the transaction begins with its write, so it waits for the write lock before reading.
    ``expect_active``: switch only if that version is still the active one (raises
    :class:`ActiveChangedError` otherwise), so an automatic rollback never undoes a promotion
    someone made meanwhile. ``then(conn, replaced)`` runs in the same transaction.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADAPTER_SWITCH_LOCK})
        replaced = (
            conn.execute(
                update(t.adapters)
                .where(t.adapters.c.status == "active", t.adapters.c.version != version)
                .values(status=previous_status)
                .returning(t.adapters.c.version)
            )
            .scalars()
            .all()
        )
        if expect_active is not None and list(replaced) != [expect_active]:
            raise ActiveChangedError(
                f"adapter {expect_active[:12]} is no longer the active version; nothing changed"
            )
        result = conn.execute(
            update(t.adapters)
            .where(t.adapters.c.version == version)
            .values(status="active", promoted=now)
        )
        if result.rowcount == 0:
            raise NotFoundError(f"adapter {version!r} not found")
        if then is not None:
            then(conn, str(replaced[0]) if replaced else None)
        _notify_switch(conn, version)
    return str(replaced[0]) if replaced else None


def _notify_switch(conn: Connection, version: str) -> None:
    """Tell every listening host (:mod:`adaptd.storage.notify`); delivered only if this
    transaction commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_notify(:channel, :version)"),
            {"channel": REGISTRY_CHANNEL, "version": version},
        )


# --------------------------------------------------------------------------- replay sets


def replay_set(engine: Engine, name: str) -> tuple[list[dict[str, Any]], int] | None:
    """The examples (as stored dicts) and the count ever offered of a replay set, or None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(t.replay_sets.c.examples, t.replay_sets.c.seen).where(
                t.replay_sets.c.name == name
            )
        ).one_or_none()
    return None if row is None else (list(row.examples), int(row.seen))


def put_replay_set(
    conn: Connection, name: str, examples: Sequence[Mapping[str, Any]], seen: int
) -> None:
    """Replace a replay set (in the caller's transaction)."""
    rows = [{"name": name, "seen": seen, "examples": [dict(e) for e in examples]}]
    _upsert(conn, t.replay_sets, rows, ["name"])


def add_replay_set_once(
    engine: Engine, name: str, examples: Sequence[Mapping[str, Any]], seen: int
) -> list[dict[str, Any]]:
    """Store a replay set unless one by that name exists; returns the one stored (two
    controllers freezing a golden set at once keep the first one's)."""
    row = {"name": name, "seen": seen, "examples": [dict(e) for e in examples]}
    with engine.begin() as conn:
        stmt = _insert(conn, t.replay_sets).on_conflict_do_nothing(index_elements=["name"])
        conn.execute(stmt, [row])
    stored = replay_set(engine, name)
    assert stored is not None
    return stored[0]


# --------------------------------------------------------------------------- retrain runs


def _run(row: Row[Any]) -> RetrainRun:
    return RetrainRun(
        id=row.id,
        started=row.started,
        finished=row.finished,
        status=row.status,
        reason=row.reason,
        policy=row.policy,
        parent=row.parent,
        candidate=row.candidate,
        samples=row.samples,
        error=row.error,
        details=row.details,
    )


def start_run(
    engine: Engine,
    *,
    now: datetime,
    reason: str | None,
    policy: str | None = None,
    parent: str | None = None,
    status: str = "running",
) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(t.retrain_runs).values(
                started=now, status=status, reason=reason, policy=policy, parent=parent
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        return int(pk[0])


def update_run(engine: Engine, run_id: int, **fields: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(t.retrain_runs).where(t.retrain_runs.c.id == run_id).values(**fields))


def get_run(engine: Engine, run_id: int) -> RetrainRun:
    with engine.connect() as conn:
        row = conn.execute(
            select(t.retrain_runs).where(t.retrain_runs.c.id == run_id)
        ).one_or_none()
    if row is None:
        raise NotFoundError(f"retrain run {run_id} not found")
    return _run(row)


def list_runs(engine: Engine, *, limit: int = 50) -> list[RetrainRun]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.retrain_runs).order_by(t.retrain_runs.c.id.desc()).limit(limit)
        )
        return [_run(r) for r in rows]


# --------------------------------------------------------------------------- monitor results


def add_monitor_results(engine: Engine, results: Sequence[MonitorResult]) -> None:
    rows = [
        {
            "ts": r.ts,
            "signal": r.signal,
            "value": r.value,
            "status": r.status,
            "adapter": r.adapter,
            "n_reference": r.n_reference,
            "n_current": r.n_current,
            "details": r.details,
        }
        for r in results
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(t.monitor_results), rows)


def monitor_results(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    signals: Sequence[str] | None = None,
) -> list[MonitorResult]:
    """Stored signals, oldest first."""
    conds = []
    if since is not None:
        conds.append(t.monitor_results.c.ts >= since)
    if until is not None:
        conds.append(t.monitor_results.c.ts < until)
    if signals is not None:
        conds.append(t.monitor_results.c.signal.in_(list(signals)))
    query = (
        select(t.monitor_results)
        .where(and_(True, *conds))
        .order_by(t.monitor_results.c.ts.asc(), t.monitor_results.c.id.asc())
    )
    with engine.connect() as conn:
        return [
            MonitorResult(
                id=r.id,
                ts=r.ts,
                signal=r.signal,
                value=r.value,
                status=r.status,
                adapter=r.adapter,
                n_reference=r.n_reference,
                n_current=r.n_current,
                details=r.details,
            )
            for r in conn.execute(query)
        ]


# --------------------------------------------------------------------------- policy state


def load_policy_states(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.policy: r.state for r in conn.execute(select(t.policy_state))}


def save_policy_states(engine: Engine, states: Mapping[str, dict[str, Any]], now: datetime) -> None:
    rows = [{"policy": k, "state": v, "updated": now} for k, v in states.items()]
    with engine.begin() as conn:
        _upsert(conn, t.policy_state, rows, ["policy"])


def delete_policy_state(engine: Engine, policy: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(t.policy_state).where(t.policy_state.c.policy == policy))


# --------------------------------------------------------------------------- events


def add_events(engine: Engine, items: Sequence[Event]) -> None:
    rows = [
        {"ts": e.ts, "kind": e.kind, "source": e.source, "message": e.message, "details": e.details}
        for e in items
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(t.events), rows)


def list_events(
    engine: Engine,
    *,
    since: datetime | None = None,
    kinds: Sequence[str] | None = None,
    limit: int = 200,
) -> list[Event]:
    """The newest ``limit`` events, oldest first."""
    conds = []
    if since is not None:
        conds.append(t.events.c.ts >= since)
    if kinds is not None:
        conds.append(t.events.c.kind.in_(list(kinds)))
    query = select(t.events).where(and_(True, *conds)).order_by(t.events.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        out = [
            Event(
                id=r.id, ts=r.ts, kind=r.kind, source=r.source, message=r.message, details=r.details
            )
            for r in conn.execute(query)
        ]
    out.reverse()
    return out


# --------------------------------------------------------------------------- reference rows


def replace_reference_rows(
    engine: Engine, adapter: str, rows: Sequence[ReferenceRow], now: datetime
) -> int:
    """Store ``adapter``'s scored validation rows, replacing any it had (one transaction)."""
    values = [
        {
            "adapter": adapter,
            "slice": r.slice,
            "position": r.position,
            "text": r.text,
            "true_label": r.true_label,
            "label": r.label,
            "probabilities": r.probabilities,
            "embedding": r.embedding,
            "attributes": r.attributes or None,
            "created": now,
        }
        for r in rows
    ]
    with engine.begin() as conn:
        conn.execute(delete(t.reference_rows).where(t.reference_rows.c.adapter == adapter))
        if values:
            conn.execute(insert(t.reference_rows), values)
    return len(values)


def reference_rows(engine: Engine, adapter: str) -> list[ReferenceRow]:
    """``adapter``'s scored validation rows, in the order they were stored."""
    query = (
        select(t.reference_rows)
        .where(t.reference_rows.c.adapter == adapter)
        .order_by(t.reference_rows.c.id)
    )
    with engine.connect() as conn:
        return [
            ReferenceRow(
                adapter=r.adapter,
                slice=r.slice,
                position=r.position,
                text=r.text,
                true_label=r.true_label,
                label=r.label,
                probabilities=r.probabilities,
                embedding=r.embedding,
                attributes=r.attributes or {},
                created=r.created,
            )
            for r in conn.execute(query)
        ]


# --------------------------------------------------------------------------- retention

#: tables pruned by age with an integer primary key: batches are key ranges
_KEYED = {
    "predictions": (t.predictions, t.predictions.c.seq),
    "monitor_results": (t.monitor_results, t.monitor_results.c.id),
    "events": (t.events, t.events.c.id),
}
#: at most this many values in one IN list (SQLite's default limit is 32,766 variables)
_IN_CHUNK = 5000

#: predictions retention must keep: every row of an adapter, or its rows up to a ``seq``
KeepRule = tuple[str, int | None]


def first_prediction_seq(engine: Engine, *, adapter: str, limit: int) -> int | None:
    """The ``seq`` of the ``limit``-th prediction ``adapter`` served (its first ``limit`` are
    the monitors' live reference), or of its last one when it served fewer; None: none."""
    query = (
        select(t.predictions.c.seq)
        .where(t.predictions.c.adapter == adapter)
        .order_by(t.predictions.c.seq.asc())
        .limit(limit)
    )
    with engine.connect() as conn:
        seqs = conn.execute(query).scalars().all()
    return int(seqs[-1]) if seqs else None


def _kept_predictions(keep: Sequence[KeepRule]) -> Any:
    """The condition true for a prediction retention must keep (None: nothing is kept)."""
    p = t.predictions.c
    rules = [
        and_(p.adapter == adapter, *(() if seq is None else (p.seq <= seq,)))
        for adapter, seq in keep
    ]
    return sa.or_(*rules) if rules else None


def _expired_conditions(table: str, cutoff: datetime, keep: Sequence[KeepRule]) -> list[Any]:
    kept = _kept_predictions(keep)
    if table == "feedback":
        conds: list[Any] = [t.feedback.c.ts < cutoff]
        if kept is not None:
            conds.append(t.feedback.c.prediction_id.not_in(select(t.predictions.c.id).where(kept)))
        return conds
    target, _ = _KEYED[table]
    conds = [target.c.ts < cutoff]
    if table == "predictions" and kept is not None:
        conds.append(sa.not_(kept))
    return conds


def count_expired(
    engine: Engine, table: str, cutoff: datetime, *, keep: Sequence[KeepRule] = ()
) -> int:
    """Rows of ``table`` older than ``cutoff`` that retention may delete (a dry run's count)."""
    target = t.feedback if table == "feedback" else _KEYED[table][0]
    conds = _expired_conditions(table, cutoff, keep)
    query = select(func.count()).select_from(target).where(*conds)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def delete_expired_batch(
    engine: Engine,
    table: str,
    cutoff: datetime,
    *,
    limit: int,
    keep: Sequence[KeepRule] = (),
    timeout_s: float | None = None,
) -> tuple[int, float]:
    """Delete up to ``limit`` of the oldest expired rows of ``table``; returns the rows deleted
    and the seconds the deleting transaction was open (the write lock held, on SQLite).

    On PostgreSQL the server cancels a batch that runs longer than ``timeout_s`` (rolled back,
    :class:`TimeoutError` raised); SQLite has no statement timeout and ignores it.

    The keys are found by a read outside the transaction; the transaction then deletes one
    primary-key range (feedback, keyed by prediction id, one IN list), re-checking the age and
    the kept rows, so a row that changed in between is left alone.
    """
    conds = _expired_conditions(table, cutoff, keep)
    if table == "feedback":
        query = (
            select(t.feedback.c.prediction_id)
            .where(*conds)
            .order_by(t.feedback.c.ts.asc())
            .limit(min(limit, _IN_CHUNK))
        )
        with engine.connect() as conn:
            ids = conn.execute(query).scalars().all()
        if not ids:
            return 0, 0.0
        stmt: Any = delete(t.feedback).where(t.feedback.c.prediction_id.in_(list(ids)), *conds)
    else:
        target, key = _KEYED[table]
        with engine.connect() as conn:
            keys = conn.execute(select(key).where(*conds).order_by(key.asc()).limit(limit))
            found = keys.scalars().all()
        if not found:
            return 0, 0.0
        stmt = delete(target).where(key >= found[0], key <= found[-1], *conds)
    if engine.dialect.name == "postgresql":
        return _delete_in_one_statement(engine, table, stmt, timeout_s)
    with engine.begin() as conn:
        _secure_delete(conn, "FAST")
        if conn.dialect.name == "sqlite":
            # Take the write lock first, so the time below is the lock held, not the wait for
            # it behind the prediction log (pysqlite then sees the transaction and adds none).
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        started = time.perf_counter()
        if table in ("predictions", "feedback"):
            _count_labelled_gone(conn, stmt.whereclause)
        deleted = conn.execute(stmt).rowcount
    # the commit (the WAL write) is part of the hold
    return int(deleted), time.perf_counter() - started


#: PostgreSQL's SQLSTATE for a statement cancelled by ``statement_timeout``
_QUERY_CANCELED = "57014"


def _delete_in_one_statement(
    engine: Engine, table: str, stmt: Any, timeout_s: float | None
) -> tuple[int, float]:
    """PostgreSQL: the count of labelled pairs, the counter bump and the delete as one statement
    in its own transaction (data-modifying CTEs), so the transaction is open only while the
    server runs it. As three statements it also spanned the client's turns between them: on a
    CPU-starved box one batch of a few hundred rows stayed open 2.4 s (bench/retention)."""
    p, f = t.predictions.c, t.feedback.c
    if table == "predictions":
        gone = stmt.returning(p.id, p.text).cte("gone")
        pairs = gone.join(t.feedback, f.prediction_id == gone.c.id)
        labelled = select(func.count()).select_from(pairs).where(gone.c.text.is_not(None))
    elif table == "feedback":
        gone = stmt.returning(f.prediction_id).cte("gone")
        pairs = gone.join(t.predictions, p.id == gone.c.prediction_id)
        labelled = select(func.count()).select_from(pairs).where(p.text.is_not(None))
    else:
        gone, labelled = stmt.returning(sa.literal(1)).cte("gone"), None
    query = select(select(func.count()).select_from(gone).scalar_subquery())
    if labelled is not None:
        bump = (
            update(t.counters)
            .where(t.counters.c.name == LABELLED_DELETED)
            .values(value=t.counters.c.value + labelled.scalar_subquery())
            .returning(t.counters.c.value)
            .cte("bump")
        )
        # PostgreSQL runs every data-modifying CTE to completion, read or not; reading it keeps
        # SQLAlchemy from dropping it.
        query = query.add_columns(select(func.count()).select_from(bump).scalar_subquery())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if timeout_s is not None:
            # Set for the session, outside the statement's transaction; reset before the
            # connection goes back to the pool.
            conn.exec_driver_sql(f"SET statement_timeout = {max(1, round(timeout_s * 1000))}")
        started = time.perf_counter()
        try:
            deleted = conn.execute(query).scalar_one()
        except sa.exc.OperationalError as e:
            if getattr(e.orig, "sqlstate", None) != _QUERY_CANCELED:
                raise
            raise TimeoutError(
                f"retention: a batch on {table} ran past {timeout_s} s and was rolled back"
            ) from e
        finally:
            if timeout_s is not None:
                conn.exec_driver_sql("RESET statement_timeout")
        # the implicit transaction commits before the result returns
        held = time.perf_counter() - started
    return int(deleted), held


def retrain_runs_by_id(engine: Engine, run_ids: Iterable[int]) -> dict[int, RetrainRun]:
    out: dict[int, RetrainRun] = {}
    ids = sorted(run_ids)
    with engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            query = select(t.retrain_runs).where(
                t.retrain_runs.c.id.in_(ids[start : start + _IN_CHUNK])
            )
            out.update({r.id: _run(r) for r in conn.execute(query)})
    return out


# --------------------------------------------------------------------------- queued retrains


def queued_runs(engine: Engine) -> list[RetrainRun]:
    """Retrains requested by an operator (``adaptd data forget --retrain``), oldest first."""
    query = (
        select(t.retrain_runs)
        .where(t.retrain_runs.c.status == "queued")
        .order_by(t.retrain_runs.c.id.asc())
    )
    with engine.connect() as conn:
        return [_run(r) for r in conn.execute(query)]


def claim_queued_run(engine: Engine, run_id: int, now: datetime) -> bool:
    """Move a queued run to running; False when another process claimed it first."""
    with engine.begin() as conn:
        result = conn.execute(
            update(t.retrain_runs)
            .where(t.retrain_runs.c.id == run_id, t.retrain_runs.c.status == "queued")
            .values(status="running", started=now)
        )
    return bool(result.rowcount)


# --------------------------------------------------------------------------- lineage


def add_training_rows(engine: Engine, run_id: int, rows: Sequence[tuple[str | None, str]]) -> int:
    """Record that run ``run_id`` trained on ``rows`` of (prediction id or None, text hash)."""
    values = [{"run_id": run_id, "prediction_id": pid, "text_hash": h} for pid, h in rows]
    if values:
        with engine.begin() as conn:
            conn.execute(insert(t.training_rows), values)
    return len(values)


def _chunks(values: Iterable[str]) -> list[list[str]]:
    ordered = sorted(values)
    return [ordered[i : i + _IN_CHUNK] for i in range(0, len(ordered), _IN_CHUNK)]


def _lineage_match(prediction_ids: Iterable[str], text_hashes: Iterable[str]) -> list[Any]:
    c = t.training_rows.c
    return [
        *(c.prediction_id.in_(chunk) for chunk in _chunks(prediction_ids)),
        *(c.text_hash.in_(chunk) for chunk in _chunks(text_hashes)),
    ]


def runs_trained_on(
    engine: Engine, *, prediction_ids: Iterable[str], text_hashes: Iterable[str]
) -> set[int]:
    """The retrain runs whose training data held any of these predictions or texts."""
    match = _lineage_match(prediction_ids, text_hashes)
    if not match:
        return set()
    query = select(t.training_rows.c.run_id).where(sa.or_(*match)).distinct()
    with engine.connect() as conn:
        return {int(r) for r in conn.execute(query).scalars()}


def known_prediction_ids(engine: Engine, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` the store knows: as a prediction, a label, or in a run's lineage."""
    found: set[str] = set()
    with engine.connect() as conn:
        for chunk in _chunks(ids):
            for column in (
                t.predictions.c.id,
                t.feedback.c.prediction_id,
                t.training_rows.c.prediction_id,
            ):
                found |= set(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def predictions_with(
    engine: Engine, *, ids: Iterable[str] = (), attribute: tuple[str, str] | None = None
) -> list[PredictionRecord]:
    """The predictions with these ids, or whose attribute ``key`` equals ``value``."""
    out: list[PredictionRecord] = []
    with engine.connect() as conn:
        for chunk in _chunks(ids):
            query = select(t.predictions).where(t.predictions.c.id.in_(chunk))
            out += [_prediction(r) for r in conn.execute(query)]
        if attribute is not None:
            key, value = attribute
            field = t.predictions.c.attributes[key].as_string()
            query = select(t.predictions).where(field == value)
            out += [_prediction(r) for r in conn.execute(query)]
    return out


def reference_row_keys(engine: Engine) -> list[tuple[int, str | None, dict[str, str]]]:
    """(id, text, attributes) of every stored reference row, for forgetting by text."""
    c = t.reference_rows.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.id, c.text, c.attributes).order_by(c.id))
        return [(int(r.id), r.text, dict(r.attributes or {})) for r in rows]


def forget_rows(
    engine: Engine,
    *,
    prediction_ids: Iterable[str],
    reference_ids: Iterable[int],
    text_hashes: Iterable[str],
    replay_sets: Mapping[str, tuple[Sequence[Mapping[str, Any]], int]] | None = None,
) -> dict[str, int]:
    """Delete a person's rows in one transaction: their predictions and labels, the reference
    rows holding their texts, the lineage rows naming them (pseudonymous data too), and the
    replay sets rewritten without them (``replay_sets``: name -> kept examples, seen).
    Returns rows deleted per table; on any error nothing is deleted."""
    counts = dict.fromkeys(("predictions", "feedback", "reference_rows", "training_rows"), 0)
    with engine.begin() as conn:
        _secure_delete(conn, "ON")
        for name, (kept, seen) in (replay_sets or {}).items():
            put_replay_set(conn, name, kept, seen)
        for chunk in _chunks(prediction_ids):
            _count_labelled_gone(conn, t.predictions.c.id.in_(chunk))
            counts["feedback"] += conn.execute(
                delete(t.feedback).where(t.feedback.c.prediction_id.in_(chunk))
            ).rowcount
            counts["predictions"] += conn.execute(
                delete(t.predictions).where(t.predictions.c.id.in_(chunk))
            ).rowcount
        refs = sorted(reference_ids)
        for start in range(0, len(refs), _IN_CHUNK):
            counts["reference_rows"] += conn.execute(
                delete(t.reference_rows).where(
                    t.reference_rows.c.id.in_(refs[start : start + _IN_CHUNK])
                )
            ).rowcount
        match = _lineage_match(prediction_ids, text_hashes)
        if match:
            counts["training_rows"] += conn.execute(
                delete(t.training_rows).where(sa.or_(*match))
            ).rowcount
    _checkpoint(engine)
    return counts


def _secure_delete(conn: Connection, mode: str) -> None:
    """SQLite leaves deleted rows' bytes in free pages until they are reused: ``ON`` zeroes
    them, ``FAST`` does so where it costs no extra write (retention's bulk deletes)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA secure_delete={mode}")


def _checkpoint(engine: Engine) -> None:
    """Copy SQLite's write-ahead log into the database and truncate it: the log still holds the
    pages as they were before the delete. A reader that holds an old snapshot keeps the log;
    it is truncated at the next checkpoint (the last connection to close runs one)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


#: the ``counters`` row of labelled, trainable predictions deleted (see :func:`count_labelled`)
LABELLED_DELETED = "labelled_deleted"


def _count_labelled_gone(conn: Connection, where: Any) -> None:
    """Add the trainable labelled pairs a delete about to run (on predictions or feedback,
    ``where`` its condition) takes away to the running total, in the same transaction."""
    pairs = t.predictions.join(t.feedback, t.feedback.c.prediction_id == t.predictions.c.id)
    query = select(func.count()).select_from(pairs).where(t.predictions.c.text.is_not(None), where)
    gone = int(conn.execute(query).scalar_one())
    if gone:
        conn.execute(
            update(t.counters)
            .where(t.counters.c.name == LABELLED_DELETED)
            .values(value=t.counters.c.value + gone)
        )
