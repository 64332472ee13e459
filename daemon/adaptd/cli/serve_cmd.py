from __future__ import annotations

import gc

import typer

from adaptd.cli.common import ConfigOption
from adaptd.config import load_settings
from adaptd.role import Role


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
    from adaptd.service import Service  # torch: loaded by the commands that need it only

    settings = load_settings(config)
    code = Service(config, role=role, settings=settings).run()
    # The process exits now. Frozen, the interpreter's last collections skip the objects torch
    # and the model left behind: 0.5 s from SIGTERM to exit instead of 2.7 s (2-core box,
    # bench.faults.restarts), which systemd's stop and every restart wait for.
    gc.freeze()
    raise typer.Exit(code)
