"""Forgetting in the real loop: a unique text is served over HTTP, labelled, trained on by a
policy's retrain and promoted; ``adaptd data forget`` (a real CLI process) then deletes it and
names the adapter that learned from it, queues a retrain the control role runs, and afterwards
neither the state directory (SQLite file and log included) nor any table holds the text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from adaptd.service import RunState, Service
from adaptd.storage import repository as repo
from adaptd.storage import tables as t
from adaptd.storage.engine import make_engine
from tests.e2e.test_loop import (  # noqa: F401  (fixtures, used by name)
    _one_thread,
    daemon,
    send,
    served_version,
    wait_for_retrain,
)
from tests.unit.retraining.synthetic import keyword_examples

SECRET = "zorblax.quennington@example.net"


def adaptd(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = state.parent / "forget.yaml"
    config.write_text(f"state_dir: {state}\n")
    env = {k: v for k, v in os.environ.items() if k != "ADAPTD_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "adaptd", *args, "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def files_holding(root: Path, needle: str) -> list[str]:
    hits = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            data = path.read_bytes()
            if needle.encode() in data or json.dumps(needle).encode()[1:-1] in data:
                hits.append(str(path.relative_to(root)))
    return hits


def rows_holding(url: str, needle: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [
                table.name
                for table in t.metadata.sorted_tables
                for row in conn.execute(select(table))
                if needle in repr(tuple(row))
            ]
    finally:
        engine.dispose()


def files_holding_seen_from_a_child(root: Path, needle: str) -> list[str]:
    """:func:`files_holding`, run in a child process. This process must not open the SQLite
    files while the daemon inside it has them open: closing any descriptor of a file drops every
    POSIX lock the process holds on it (SQLite's "How To Corrupt" section 2.2), so the CLI's
    connection then believed it was the last one, ran the final checkpoint and deleted the WAL
    index under the daemon ("disk I/O error" on its next connection). Locks are per process,
    so a child reading the files disturbs nothing."""
    code = (
        "import json, sys; from pathlib import Path; from tests.e2e.test_forget import "
        "files_holding; print(json.dumps(files_holding(Path(sys.argv[1]), sys.argv[2])))"
    )
    root_dir = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root_dir, os.environ["PYTHONPATH"]])}
    out = subprocess.run(
        [sys.executable, "-c", code, str(root), needle],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    hits: list[str] = json.loads(out.stdout)
    return hits


@pytest.fixture
def no_queue_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """The queued retrain starts when the test says so: the control role's own 30 s poll,
    falling between the forget and the labels sent after it, once started the run before they
    reached the store (it then failed with nothing new to validate on)."""
    monkeypatch.setattr("adaptd.retention.jobs.QUEUE_POLL_S", 24 * 3600.0)


# no_queue_poll first: fixtures of one scope are set up in the order the signature names them.
def test_a_forgotten_text_is_gone_from_every_place(
    no_queue_poll: None,
    daemon: Service,  # noqa: F811
) -> None:
    assert daemon.engine is not None and daemon.control is not None
    state = daemon.settings.state_dir
    shifted = keyword_examples(400, seed=2, domain="b")
    # The oldest of the shifted labels: it trains, the newest are held out.
    shifted[0] = replace(shifted[0], text=f"{shifted[0].text} write to {SECRET}")
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.http_port}", timeout=60) as client:
        first = served_version(client)
        send(client, keyword_examples(200, seed=1), "a")
        send(client, shifted, "b")  # the planted text is prediction "b-0"
        outcome = daemon.control.loop.run_check_once(datetime.now(UTC))
        assert "action" in [d.kind.value for d in outcome.decisions]
        wait_for_retrain(daemon)
        second = served_version(client)
    assert second != first, repo.list_events(daemon.engine)[-5:]
    # It is there before (the store's files): the check after forgetting can fail.
    assert files_holding_seen_from_a_child(state, SECRET)

    unknown = adaptd(state, "data", "forget", "--id", "b-0", "--id", "nobody")
    assert unknown.returncode == 1, unknown.stderr
    assert "unknown prediction id 'nobody'" in unknown.stderr and "Traceback" not in unknown.stderr
    # the prediction log, and the replay reservoir the promoted run's data joined
    assert rows_holding(daemon.settings.store_url, SECRET) == ["predictions", "replay_sets"]

    forgotten = adaptd(state, "data", "forget", "--id", "b-0", "--retrain", "--json")
    assert forgotten.returncode == 0, forgotten.stderr
    report = json.loads(forgotten.stdout)
    assert report["deleted"]["predictions"] == 1 and report["deleted"]["feedback"] == 1
    assert report["deleted"]["reservoir"] == 1  # the promoted run's data joined the reservoir
    assert [(a["version"], a["how"]) for a in report["adapters"]] == [(second, "trained on them")]
    queued = report["queued_run"]
    assert repo.get_run(daemon.engine, queued).status == "queued"

    # Traffic goes on: labels newer than what the champion saw give the run a fair holdout.
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.http_port}", timeout=60) as client:
        send(client, keyword_examples(100, seed=9, domain="b"), "c")
    # Answered labels reach the store within a log flush; the run reads what the store holds.
    deadline = time.monotonic() + 30
    while not repo.labelled_predictions_for(daemon.engine, ["c-99"]):
        assert time.monotonic() < deadline, "the last label never reached the store"
        time.sleep(0.1)
    # The control role's poll starts the queued retrain (called here: no_queue_poll keeps it off).
    daemon.control.lifecycle.start_queued()
    wait_for_retrain(daemon)
    run = repo.get_run(daemon.engine, queued)
    assert run.status in {"promoted", "rejected"}, run
    assert (run.details or {}).get("data", {}).get("train", 0) > 0

    daemon.handle_term()
    daemon.shutdown()
    assert daemon.state is RunState.STOPPED
    assert files_holding(state, SECRET) == []
    assert rows_holding(daemon.settings.store_url, SECRET) == []
