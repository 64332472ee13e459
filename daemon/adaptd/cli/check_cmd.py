"""``adaptd check``: one monitoring pass against the configured store, printed (not stored)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adaptd.cli.common import ConfigOption, JsonOption, emit_json, load, open_store
from adaptd.monitoring.edges import build_windows
from adaptd.signals import Signal
from adaptd.storage import repository


def signal_document(s: Signal) -> dict[str, Any]:
    return {
        "name": s.name,
        "status": str(s.status),
        "value": s.value,
        "reference_value": s.reference_value,
        "n_reference": s.n_reference,
        "n_current": s.n_current,
        "adapter": s.adapter,
        "ts": s.ts.isoformat(),
        "details": dict(s.details),
    }


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Run every monitor once over the reference and current windows and print the signals."""
    # imported here: the detectors pull in scikit-learn, which every other command can skip
    from adaptd.monitoring.runner import run_checks

    settings = load(config)
    engine = open_store(settings)
    try:
        now = datetime.now(UTC)
        active = repository.active_adapter(engine)
        version = active.version if active is not None else None
        reference, current = build_windows(
            engine,
            settings.monitors,
            version,
            [],
            now,
            labels=settings.model.labels,
            max_text_chars=settings.serving.max_text_chars,
        )
    finally:
        engine.dispose()
    signals = run_checks(reference, current, settings.monitors, now=now)
    if as_json:
        emit_json(
            {
                "ts": now.isoformat(),
                "adapter": version,
                "reference_rows": reference.n,
                "reference": reference.origin,
                "current_rows": current.n,
                "signals": [signal_document(s) for s in signals],
            }
        )
        return
    print(
        f"adapter {version or '(none active)'}: reference {reference.n} rows "
        f"({reference.origin}), current {current.n} rows"
    )
    if current.n == 0:
        print("no predictions in the current window yet: every monitor reports insufficient data")
    width = max(len(s.name) for s in signals)
    print(f"{'signal':<{width}}  {'status':<17}  {'value':>9}  {'ref':>9}  n_ref/n_cur")
    for s in signals:
        print(
            f"{s.name:<{width}}  {s.status!s:<17}  {_cell(s.value):>9}  "
            f"{_cell(s.reference_value):>9}  {s.n_reference}/{s.n_current}"
        )
