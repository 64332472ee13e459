"""The ``adaptd`` command line. Every command takes ``--config``; exit codes: 0 success,
1 failure, 2 usage or configuration error. Errors are one line on stderr, never a traceback
(set ADAPTD_DEBUG=1 to see one)."""

from __future__ import annotations

import logging
import os
import sys

import typer

from adaptd import __version__
from adaptd.cli import (
    adapters_cmd,
    check_cmd,
    config_cmd,
    data_cmd,
    db_cmd,
    demo_cmd,
    policy_cmd,
    replay_cmd,
    report_cmd,
    retrain_cmd,
    serve_cmd,
    status_cmd,
)
from adaptd.errors import AdaptdError
from adaptd.security import mask_secrets, use_private_umask

app = typer.Typer(
    name="adaptd",
    help="Serve a LoRA-adapted classifier, watch it drift, retrain by policy, hot-swap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")
app.add_typer(data_cmd.app, name="data")
app.add_typer(policy_cmd.app, name="policy")
app.command("replay")(replay_cmd.replay)
app.add_typer(adapters_cmd.app, name="adapters")
app.command("serve")(serve_cmd.serve)
app.command("retrain")(retrain_cmd.retrain)
app.command("demo")(demo_cmd.demo)
app.command("status")(status_cmd.status)
app.command("check")(check_cmd.check)
app.command("report")(report_cmd.report)


def _version(value: bool) -> None:
    if value:
        print(f"adaptd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """adaptd keeps a fine-tuned transformer classifier fit for the traffic it really sees."""


def main(argv: list[str] | None = None) -> None:
    # Every command may create state (the store, adapters, run directories): private files.
    use_private_umask()
    # Standalone mode lets click report usage errors itself (exit 2); our own errors and anything
    # unexpected propagate to here and become one line.
    try:
        app(args=argv)
    except AdaptdError as e:
        print(f"adaptd: error: {mask_secrets(str(e))}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if os.environ.get("ADAPTD_DEBUG"):
            raise
        logging.getLogger("adaptd").debug("internal error", exc_info=True)
        print(
            f"adaptd: internal error: {type(e).__name__}: {mask_secrets(str(e))} "
            "(ADAPTD_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
