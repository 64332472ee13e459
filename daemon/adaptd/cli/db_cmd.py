from __future__ import annotations

import typer

from adaptd.cli.common import ConfigOption, load, open_store
from adaptd.storage import migrate

app = typer.Typer(help="Create or migrate the store's schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(
    config: ConfigOption = None,
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Apply the migrations shipped with this adaptd (creates the schema on an empty store)."""
    settings = load(config)
    engine = open_store(settings, require_schema=False)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine, revision)
    after = migrate.current_revision(engine)
    print(f"store schema: {before or 'empty'} -> {after}")


@app.command("downgrade")
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, or 'base' to drop everything."),
    config: ConfigOption = None,
) -> None:
    """Revert migrations down to REVISION."""
    settings = load(config)
    engine = open_store(settings, require_schema=False)
    migrate.downgrade(engine, revision)
    print(f"store schema: {migrate.current_revision(engine) or 'empty'}")


@app.command("current")
def current(config: ConfigOption = None) -> None:
    """Print the store's schema revision and the one this adaptd needs."""
    settings = load(config)
    engine = open_store(settings, require_schema=False)
    print(
        f"store: {migrate.current_revision(engine) or 'empty'}  needed: {migrate.head_revision()}"
    )
