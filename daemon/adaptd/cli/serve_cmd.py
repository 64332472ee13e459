from __future__ import annotations

import typer

from adaptd.cli.common import ConfigOption
from adaptd.config import load_settings
from adaptd.service import Role, Service


def serve(
    role: Role = typer.Option(
        Role.ALL,
        "--role",
        help="all: serve, and run the control loop while elected leader; serve: predictions "
        "only (scale-out replicas); control: the control loop (while elected leader) and the "
        "admin API, no predictions. However many daemons share a store, one controls.",
    ),
    config: ConfigOption = None,
) -> None:
    """Run the daemon: serve predictions, log them, watch and retrain (until SIGTERM)."""
    settings = load_settings(config)
    raise typer.Exit(Service(config, role=role, settings=settings).run())
