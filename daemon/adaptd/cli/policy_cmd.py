"""``adaptd policy validate|backtest|schema``: check policy files, replay them, print the schema."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from adaptd.cli.common import ConfigOption, JsonOption, emit_json, load, open_store
from adaptd.control.policy_files import load_configured_policies
from adaptd.errors import ConfigError, UsageError
from adaptd.policy.backtest import BacktestReport, backtest, checks_from_results
from adaptd.policy.engine import Decision
from adaptd.policy.schema import json_schema, parse_duration

app = typer.Typer(help="Check policy files, replay them over stored signals.", no_args_is_help=True)

FilesArgument = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Policy files (default: the `policies` of the config).", show_default=False
    ),
]


@app.command("validate")
def validate(files: FilesArgument = None, config: ConfigOption = None) -> None:
    """Check policy files: exit 0 when all are valid, else 1 with one `file:line: field: message`
    line per error. Signal names are checked against what the configured monitors export
    (`monitors.attributes`, `model.labels`)."""
    settings = load(config)
    paths = list(files or settings.policies)
    if not paths:
        raise UsageError("no policy files given and the config lists none under `policies`")
    policies, errors = load_configured_policies(settings, paths)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        raise typer.Exit(1)
    print(f"{len(paths)} file(s), {len(policies)} policies: valid")


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of policy files (for yaml-language-server and other editors)."""
    print(json.dumps(json_schema(), indent=2))


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or a duration back from now ('7d')."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            back: timedelta = parse_duration(text)
            return now - back
        except ValueError:
            raise UsageError(
                f"not a date, time or duration: {text!r} (e.g. 2026-01-31, 2026-01-31T12:00, 7d)"
            ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _validation_by_adapter(engine: Any) -> dict[str, dict[str, float]]:
    from adaptd.storage import repository

    out: dict[str, dict[str, float]] = {}
    for adapter in repository.list_adapters(engine):
        values = {
            k: float(v)
            for k, v in (adapter.metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        out[adapter.version] = values
    return out


def _line(d: Decision) -> str:
    what = d.kind.value if d.reason is None else f"suppressed ({d.reason.value})"
    seen = ", ".join(
        f"{name}={v['value']:.4g}" if isinstance(v.get("value"), float) else f"{name}=?"
        for name, v in d.observations.items()
    )
    return f"{d.ts.isoformat()}  {d.policy}  {what}  {d.message}  [{seen}]"


def _print_report(report: BacktestReport) -> None:
    if report.checks == 0:
        print("no stored checks in that time range")
        return
    print(f"{report.checks} checks from {report.first} to {report.last}")
    for d in report.decisions:
        print(_line(d))
    for policy, counts in report.counts().items():
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        print(f"{policy}: {parts}")
    print(f"retrains it would have started: {len(report.actions('retrain'))}")


@app.command("backtest")
def backtest_cmd(
    since: str = typer.Option(..., "--since", help="Start: 2026-01-31, 2026-01-31T12:00 or 7d."),
    until: str | None = typer.Option(None, "--until", help="End (default: now)."),
    policy: list[Path] | None = typer.Option(
        None, "--policy", help="Policy file to replay (repeatable; default: the config's)."
    ),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the stored signals through policies from a fresh state and print when they would
    have tripped, cleared, been suppressed, and the retrains they would have started."""
    from adaptd.storage import repository

    settings = load(config)
    now = datetime.now(UTC)
    start = parse_when(since, now)
    end = parse_when(until, now) if until is not None else None
    if end is not None and end <= start:
        raise UsageError(f"--until {until!r} is not after --since {since!r}")
    paths = list(policy or settings.policies)
    if not paths:
        raise UsageError("no --policy given and the config lists none under `policies`")
    policies, errors = load_configured_policies(settings, paths)
    if errors:
        raise ConfigError("; ".join(str(e) for e in errors))
    engine = open_store(settings)
    try:
        results = repository.monitor_results(engine, since=start, until=end)
        report = backtest(
            policies,
            checks_from_results(results),
            validation_by_adapter=_validation_by_adapter(engine),
            label_times=repository.labelled_times(engine, until=end),
        )
    finally:
        engine.dispose()
    if as_json:
        emit_json(report.to_json())
    else:
        _print_report(report)
