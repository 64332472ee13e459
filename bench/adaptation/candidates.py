"""``python -m bench.adaptation.candidates [demo-state]``: was the gate right?

After a ``make demo`` (or ``adaptd demo``, or ``python -m bench.adaptation --keep-state DIR``,
whose daemon state is ``DIR/tweets-to-movies/daemon``), every candidate its retrains trained is
still on disk with its run record. This scores each of them, and the first adapter, on the
shift's held-out rows that nothing trained on (1,000 movie snippets, 136 tweets), built exactly as
serving builds them, and prints beside each the gate's verdict: a rejected candidate that is
better held out is adaptation lost to the gate's caution, a promoted one that is worse is a
regression the gate let through. Differences are paired against the first adapter
(Bonett-Price, 95 %). ``--shift movies-to-tweets`` for a state kept by that shift's bench (its
held-out rows: 163 tweets, the target, and 1,000 movie snippets, the source).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Row, select

from adaptd.config import Settings
from adaptd.demo.scenario import correct_offline, scenario_settings
from adaptd.demo.shifts import SHIFTS
from adaptd.evaluation import measures as m
from adaptd.storage import tables
from adaptd.storage.engine import make_engine


def kept_runs(settings: Settings, state: Path) -> tuple[list[Row[Any]], dict[str, str]]:
    """The retrain runs of a kept state, oldest first, and each adapter version's directory."""
    engine = make_engine(settings.store_url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(
                select(tables.retrain_runs).order_by(tables.retrain_runs.c.id)
            ).all()
            recorded = conn.execute(select(tables.adapters.c.version, tables.adapters.c.path))
            # a copied state directory: its adapters beside its database
            paths = {
                r.version: r.path if Path(r.path).is_dir() else str(state / "adapters" / r.version)
                for r in recorded
            }
    finally:
        engine.dispose()
    return list(runs), paths


def kept_state(
    parser: argparse.ArgumentParser, state_dir: Path
) -> tuple[Path, Settings, list[Row[Any]], dict[str, str]]:
    """A kept daemon state named on the command line: its directory, the settings that read
    it, its runs and adapter directories (:func:`kept_runs`); a usage error when it holds no
    store."""
    state = state_dir.resolve()
    if not (state / "adaptd.db").is_file():
        parser.error(f"{state} holds no adaptd.db: run `make demo` or keep a bench state first")
    settings = scenario_settings(state, port=0, policies=[], check_interval_s=10.0)
    return (state, settings, *kept_runs(settings, state))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_dir", nargs="?", default="demo-state", type=Path)
    parser.add_argument("--shift", choices=sorted(SHIFTS), default="tweets-to-movies")
    args = parser.parse_args(argv)
    _, settings, runs, paths = kept_state(parser, args.state_dir)
    # only the held-out rows are read, and they do not depend on the size of the live pool
    shift = SHIFTS[args.shift]()
    held_out = {"target": shift.target_holdout, "source": shift.source_holdout}
    rows = []
    first = None
    for run in runs:
        if run.candidate is None or run.candidate not in paths:
            continue
        right = {
            k: np.asarray(correct_offline(settings, paths[run.candidate], rows_), dtype=bool)
            for k, rows_ in held_out.items()
        }
        first = first or right
        row = {"run": run.id, "status": run.status, "candidate": run.candidate[:12]}
        for k in held_out:
            d = m.paired_difference(right[k], first[k], level=0.95)
            row[k] = round(float(right[k].mean()), 4)
            row[f"{k}_change"] = [
                round(x, 4) for x in (d.difference, d.interval.low, d.interval.high)
            ]
        print(json.dumps(row), flush=True)  # noqa: T201
        rows.append(row)

    def pct(change: list[float]) -> str:
        return f"{100 * change[0]:+.1f} [{100 * change[1]:+.1f}, {100 * change[2]:+.1f}]"

    target, source = f"{shift.target} (target)", f"{shift.source} (source)"
    print(f"\n| run | gate | {target} | vs first [95%] | {source} | vs first [95%] |")  # noqa: T201
    print("|---:|---|---:|---|---:|---|")  # noqa: T201
    for r in rows:
        print(  # noqa: T201
            f"| {r['run']} | {r['status']} | {100 * r['target']:.1f}% | {pct(r['target_change'])} "
            f"| {100 * r['source']:.1f}% | {pct(r['source_change'])} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
