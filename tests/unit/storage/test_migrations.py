from __future__ import annotations

from sqlalchemy import inspect

from adaptd.storage import migrate
from adaptd.storage.engine import make_engine
from adaptd.storage.tables import metadata

TABLES = {
    "predictions",
    "feedback",
    "adapters",
    "retrain_runs",
    "monitor_results",
    "policy_state",
    "events",
    "reference_rows",
    "training_rows",
    "counters",
    "probations",
    "adapter_files",
    "store_locks",
    "replay_sets",
}


def user_tables(engine):
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_creates_every_table(empty_engine):
    engine = empty_engine
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert user_tables(engine) == TABLES


def test_migrations_match_the_table_definitions(engine):
    """The migration and tables.py describe the same columns (no drift between the two)."""
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        migrated = {c["name"] for c in inspector.get_columns(table.name)}
        assert migrated == {c.name for c in table.columns}, table.name


def test_downgrade_upgrade_round_trip(engine):
    migrate.downgrade(engine, "base")
    assert user_tables(engine) == set()
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert user_tables(engine) == TABLES


def test_sqlite_runs_in_wal_mode(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    engine.dispose()
    assert mode == "wal"
