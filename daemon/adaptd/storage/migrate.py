"""Run the Alembic migrations shipped inside the package, against an engine we already made."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from adaptd.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _run(engine: Engine, action: str, target: str) -> None:
    config = _config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            getattr(command, action)(config, target)
    except SQLAlchemyError as e:
        raise StoreError(f"migration {action} to {target} failed: {e}") from e


def upgrade(engine: Engine, target: str = "head") -> None:
    _run(engine, "upgrade", target)


def downgrade(engine: Engine, target: str = "base") -> None:
    _run(engine, "downgrade", target)


def require_current(engine: Engine) -> None:
    """Refuse to run against a schema older than this code: the fix is `adaptd db upgrade`."""
    current = current_revision(engine)
    if current != head_revision():
        raise StoreError(
            f"store schema is at {current or 'nothing'}, this adaptd needs {head_revision()}: "
            "run `adaptd db upgrade`"
        )
