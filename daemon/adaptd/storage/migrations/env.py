"""Alembic environment: run with the connection adaptd hands over (see storage/migrate.py)."""

from __future__ import annotations

from alembic import context

from adaptd.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - adaptd always passes a connection
    raise RuntimeError("adaptd migrations run through `adaptd db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
