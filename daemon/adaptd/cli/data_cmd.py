"""``adaptd data prune`` (retention by hand) and ``adaptd data forget`` (one person's rows)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import typer

from adaptd.cli.common import ConfigOption, JsonOption, emit_json, load, open_store
from adaptd.errors import UsageError
from adaptd.retention.forget import ForgetReport, Target, forget, queue_retrain
from adaptd.retention.prune import Pruned, prune

app = typer.Typer(help="Retention and forgetting of logged data.", no_args_is_help=True)


def _pruned_dict(p: Pruned) -> dict[str, object]:
    return {
        "table": p.table,
        "age_days": p.age_days,
        "cutoff": p.cutoff.isoformat() if p.cutoff else None,
        "deleted": p.deleted,
        "batches": p.batches,
        "max_batch_s": round(p.max_batch_s, 4),
    }


@app.command("prune")
def prune_cmd(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; delete nothing."),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete what is older than its retention.* age now (the control role does it hourly)."""
    settings = load(config)
    engine = open_store(settings)
    try:
        results = prune(engine, settings, datetime.now(UTC), dry_run=dry_run)
    finally:
        engine.dispose()
    if as_json:
        emit_json({"dry_run": dry_run, "tables": [_pruned_dict(p) for p in results]})
        return
    verb = "would delete" if dry_run else "deleted"
    print(f"{'table':<18} {'keep (days)':>11}  {'older than':<25} {verb:>12} {'batches':>8} "
          f"{'max batch s':>11}")  # fmt: skip
    for p in results:
        age = "forever" if p.age_days is None else f"{p.age_days:g}"
        cutoff = p.cutoff.isoformat(timespec="seconds") if p.cutoff else "-"
        print(f"{p.table:<18} {age:>11}  {cutoff:<25} {p.deleted:>12} {p.batches:>8} "
              f"{p.max_batch_s:>11.3f}")  # fmt: skip


def _target(ids: list[str], attribute: str | None) -> Target:
    if bool(ids) == (attribute is not None):
        raise UsageError("name whose data to forget: --id ID (repeatable) or --attribute KEY=VALUE")
    if attribute is None:
        return Target(ids=tuple(dict.fromkeys(ids)))
    key, sep, value = attribute.partition("=")
    if not sep or not key.strip() or not value:
        raise UsageError(f"--attribute {attribute!r}: expected KEY=VALUE")
    return Target(attribute=(key.strip(), value))


def _print_report(report: ForgetReport) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    print(f"forget {report.target}: {verb}")
    for place, n in report.deleted.items():
        print(f"  {place:<16} {n}")
    if report.adapters:
        print("adapter versions whose training data contained them:")
        for a in report.adapters:
            print(f"  {a.version[:12]}  {a.status:<12} {a.how}")
        if report.queued_run is None and not report.dry_run:
            print("retrain without them: adaptd data forget ... --retrain, or adaptd retrain")
    else:
        print("no adapter version was trained on them")
    if report.queued_run is not None:
        print(f"retrain queued as run {report.queued_run}; the control role starts it")
    for run in report.running:
        print(f"warning: retrain {run} is running and may have read these rows; run this "
              "forget again once it has ended")  # fmt: skip


@app.command("forget")
def forget_cmd(
    ids: list[str] = typer.Option(
        [], "--id", help="A prediction id whose rows to delete (repeatable)."
    ),
    attribute: str | None = typer.Option(
        None, "--attribute", help="KEY=VALUE: delete every row carrying this attribute value."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would go; delete nothing."),
    retrain: bool = typer.Option(
        False, "--retrain", help="Queue a retrain without them (from the base model)."
    ),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a person's predictions, labels and texts from the store, the replay reservoir,
    the golden set and run directories; name the adapters that trained on them."""
    target = _target(ids, attribute)
    settings = load(config)
    engine = open_store(settings)
    try:
        now = datetime.now(UTC)
        report = forget(engine, settings, target, now, dry_run=dry_run)
        if retrain and not dry_run:
            report = replace(report, queued_run=queue_retrain(engine, now))
    finally:
        engine.dispose()
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report)
