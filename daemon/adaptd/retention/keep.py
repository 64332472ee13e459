"""What retention must never delete however old it is, and why (read from the store).

- The first ``monitors.reference_window`` predictions of the active adapter, with their labels:
  ``monitoring.edges.build_windows`` tops the monitors' reference up with them (all of it, for
  an imported adapter with no stored validation rows). Pruning them would move the reference.
- While the active adapter is on probation (``retraining.probation.window_s`` since it was
  promoted), every prediction of it and of the adapter it replaced (its parent), with their
  labels: probation compares the two adapters' labelled records (``retraining.observe``).
  The probation itself lives in the control role's memory, so the store's promotion time stands
  in for it: the CLI's ``adaptd data prune`` keeps the same rows as the daemon's pass.

Never touched by retention at all, so not listed: the monitors' stored reference rows
(``reference_rows``, replaced when an adapter is promoted), the golden set and the replay
reservoir (the ``replay_sets`` table); only forgetting deletes from those.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from adaptd.config import Settings
from adaptd.storage import repository as repo
from adaptd.storage.repository import KeepRule


def kept_predictions(engine: Engine, settings: Settings, now: datetime) -> list[KeepRule]:
    active = repo.active_adapter(engine)
    if active is None:
        return []
    probation = timedelta(seconds=settings.retraining.probation.window_s)
    if active.promoted is not None and now - active.promoted < probation:
        rules: list[KeepRule] = [(active.version, None)]
        if active.parent is not None:
            rules.append((active.parent, None))
        return rules
    seq = repo.first_prediction_seq(
        engine, adapter=active.version, limit=settings.monitors.reference_window
    )
    return [(active.version, seq)] if seq is not None else []
