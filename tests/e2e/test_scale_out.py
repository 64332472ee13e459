"""Scale-out on a real PostgreSQL, as separate processes on one machine standing in for hosts:
two ``--role serve`` replicas and two ``--role control`` instances, each with its own state_dir
(so adapter files reach them only through the store).

The leader's policy trips on a domain shift, it retrains and promotes; both replicas pick the
new version up (every prediction names a registered version, none fails). The leader is then
killed with ``kill -9``; the standby takes the lock, and when the traffic shifts again, it is
the one that retrains and promotes, and the replicas follow. Never two runs at once, no version
promoted twice. The measured pickup and takeover times are printed (run with ``-s``) and
written to ``scale-out.json`` in the test's directory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from adaptd.config import Settings
from adaptd.datasets.records import Example
from adaptd.storage import migrate
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine
from tests.e2e import tiny
from tests.unit.retraining.synthetic import (
    NEGATIVE_B,
    NEGATIVE_C,
    POSITIVE_B,
    POSITIVE_C,
    keyword_examples,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.long]

ROOT = Path(__file__).resolve().parents[2]
POLICY = """\
policies:
  - name: accuracy-fell
    trip:
      signal: performance.accuracy
      lt: 0.8
    min_samples: 150
    for: 1
    cooldown: 0s
    action:
      type: retrain
"""
#: a third domain for the standby's turn: yet other words carry the sentiment
SWAP_C = dict(zip((*POSITIVE_B, *NEGATIVE_B), (*POSITIVE_C, *NEGATIVE_C), strict=True))
POLL_S = 1.0
#: Far above the 2-s pickup target: a replica that picks a promotion up within it was woken by
#: the store's notification (PostgreSQL NOTIFY), not by its poll.
REGISTRY_POLL_S = 30.0


def domain_c(examples: list[Example]) -> list[Example]:
    out = []
    for e in examples:
        words = [SWAP_C.get(w, w) for w in e.text.split(" ")]
        out.append(Example(text=" ".join(words), label=e.label, attributes=e.attributes))
    return out


def sections(state_dir: Path, base: Path, url: str, policy: Path) -> dict[str, Any]:
    return {
        "state_dir": str(state_dir),
        "store": {"url": url},
        "server": {
            "host": "127.0.0.1",
            "port": 0,
            "admin_token": {"env": "ADAPTD_TEST_ADMIN_TOKEN"},  # tests/conftest.py sets it
            "max_inputs": 64,
        },
        "model": {"base": str(base), **tiny.MODEL, "threads": 1},
        "serving": {"registry_poll_s": REGISTRY_POLL_S, "log_flush_ms": 50.0, "max_wait_ms": 1.0},
        "scheduler": {"check_interval_s": 2.0, "leader_poll_s": POLL_S},
        "monitors": {"min_samples": 50, "current_window": 300, "reference_window": 200},
        "retraining": {
            **tiny.RETRAINING,
            # Probation compares the new adapter's live accuracy with the old one's from before
            # it: the shift to domain c this test makes right after the takeover would roll v2
            # back (v1 served other traffic), leaving the standby nothing of v1's to retrain on.
            # Out of this test, which is about who decides; tests/faults covers probation.
            "probation": {"min_samples": 10_000},
        },
        # The golden set the first run froze is in the store, not in the operator's state_dir:
        # both controllers judge on it, and an unjudged golden slice blocks (the default).
        # The recent gate of the other loop tests; the golden one at this test's own (and the
        # shipped) max_drop 0.02, tighter than their 0.05.
        "validation": {"gates": [tiny.GATES[0], {**tiny.GATES[1], "max_drop": 0.02}]},
        "policies": [str(policy)],
    }


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def status(self) -> dict[str, Any]:
        with self.client() as c:
            body: dict[str, Any] = c.get("/v1/status").json()
            return body


def start(name: str, role: str, config: Path, log: Path) -> Daemon:
    notify = config.parent / f"{name}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify),
        "PYTHONPATH": f"{ROOT / 'daemon'}{os.pathsep}{ROOT}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "adaptd", "serve", "--role", role, "--config", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        sock.settimeout(120)
        message = sock.recv(4096).decode()
    finally:
        sock.close()
    match = re.search(r"on 127\.0\.0\.1:(\d+)", message)
    assert message.startswith("READY=1") and match, message
    return Daemon(name=name, proc=proc, port=int(match.group(1)))


@dataclass
class Probe:
    """Predictions sent to one replica every 50 ms: when each version was first served, and
    every answer's versions (a failure is any non-200)."""

    replica: Daemon
    first_seen: dict[str, float] = field(default_factory=dict)
    versions: set[str] = field(default_factory=set)
    answered: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with self.replica.client() as c:
            while not self.stop.wait(0.05):
                try:
                    r = c.post("/v1/predict", json={"inputs": ["good day", "awful day"]})
                except httpx.HTTPError as e:
                    self.failures.append(repr(e))
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                    continue
                self.answered += 1
                for p in r.json()["predictions"]:
                    self.versions.add(p["adapter"])
                    self.first_seen.setdefault(p["adapter"], time.time())


@dataclass
class Probes:
    replicas: list[Daemon]
    all: list[Probe] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Probes:
        for replica in self.replicas:
            probe = Probe(replica)
            thread = threading.Thread(target=probe.run, daemon=True)
            thread.start()
            self.all.append(probe)
            self.threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        for probe in self.all:
            probe.stop.set()
        for thread in self.threads:
            thread.join(10)


def send(replica: Daemon, examples: list[Example], tag: str) -> tuple[int, set[str]]:
    """Predict and feed back the true labels through one replica; returns (failures, versions)."""
    failures, versions = 0, set()
    with replica.client() as c:
        for start_at in range(0, len(examples), 50):
            batch = examples[start_at : start_at + 50]
            inputs = [{"text": e.text, "id": f"{tag}-{start_at + i}"} for i, e in enumerate(batch)]
            r = c.post("/v1/predict", json={"inputs": inputs})
            if r.status_code != 200:
                failures += 1
                continue
            predictions = r.json()["predictions"]
            versions |= {p["adapter"] for p in predictions}
            feedback = [
                {"id": p["id"], "label": e.label} for p, e in zip(predictions, batch, strict=True)
            ]
            if c.post("/v1/feedback", json={"feedback": feedback}).status_code != 200:
                failures += 1
    return failures, versions


def wait_for(what: str, check: Any, timeout_s: float, step_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step_s)


def promoted_after(engine: Engine, known: set[str]) -> str | None:
    active = repo.active_adapter(engine)
    return active.version if active is not None and active.version not in known else None


def pickup_seconds(engine: Engine, probes: Probes, version: str) -> list[float]:
    promoted = repo.get_adapter(engine, version).promoted
    assert promoted is not None
    wait_for(
        f"both replicas serving {version[:12]}",
        lambda: all(version in p.first_seen for p in probes.all),
        timeout_s=30,
    )
    return [round(p.first_seen[version] - promoted.timestamp(), 3) for p in probes.all]


@pytest.fixture
def cluster(
    tiny_base: Path, tmp_path: Path, pg_database: str
) -> Iterator[tuple[Engine, list[Daemon], list[Daemon]]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    engine = make_engine(pg_database)
    migrate.upgrade(engine)
    # The first adapter, trained and promoted from an operator's machine (its own state_dir).
    boot = Settings(**sections(tmp_path / "operator", tiny_base, pg_database, policy))
    tiny.promote_first_adapter(boot, engine, tiny_base)
    daemons: list[Daemon] = []
    try:
        for name, role in (("serve-1", "serve"), ("serve-2", "serve"), ("ctl-1", "control")):
            config = tmp_path / f"{name}.yaml"
            cfg = sections(tmp_path / name, tiny_base, pg_database, policy)
            config.write_text(yaml.safe_dump(cfg))
            daemons.append(start(name, role, config, tmp_path / f"{name}.log"))
        # Started second, so it is the standby.
        config = tmp_path / "ctl-2.yaml"
        config.write_text(
            yaml.safe_dump(sections(tmp_path / "ctl-2", tiny_base, pg_database, policy))
        )
        daemons.append(start("ctl-2", "control", config, tmp_path / "ctl-2.log"))
        yield engine, daemons[:2], daemons[2:]
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.proc.send_signal(signal.SIGTERM)
        for d in daemons:
            try:
                d.proc.wait(30)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
        engine.dispose()


def test_two_replicas_follow_the_elected_controller_through_a_kill_9_takeover(
    cluster: tuple[Engine, list[Daemon], list[Daemon]], tmp_path: Path
) -> None:
    engine, replicas, (leader, standby) = cluster
    v1 = promoted_after(engine, set())
    assert v1 is not None
    assert leader.status()["leader"]["leader"] is True
    assert standby.status()["leader"]["leader"] is False
    assert standby.status()["control"]["standby"] is True

    # Each replica built the first version from its own copy, fetched from the store.
    for replica in replicas:
        assert replica.status()["adapter"]["serving"] == v1
        assert (tmp_path / replica.name / "adapters" / v1).is_dir()

    # --- the leader retrains on a shift and promotes; the replicas follow
    failures, _ = send(replicas[0], keyword_examples(200, seed=1), "a")
    failures += send(replicas[1], keyword_examples(300, seed=2, domain="b"), "b")[0]
    wait_for("a retrain on the leader", lambda: repo.list_runs(engine, limit=1)[0].id > 1, 60)
    with Probes(replicas) as probes:
        v2 = wait_for("the leader's promotion", lambda: promoted_after(engine, {v1}), 300, 0.2)
        pickup_v2 = pickup_seconds(engine, probes, v2)
    assert {probe.replica.name for probe in probes.all} == {"serve-1", "serve-2"}
    failures += sum(len(p.failures) for p in probes.all)
    served = set().union(*(p.versions for p in probes.all))

    # --- kill -9 the leader: the standby takes over
    killed = time.time()
    os.kill(leader.proc.pid, signal.SIGKILL)
    leader.proc.wait()
    wait_for("the standby's takeover", lambda: standby.status()["leader"]["leader"], 60)
    takeover_s = round(time.time() - killed, 3)
    # of which: until the standby held the lock (the rest is starting its control loop)
    since = datetime.fromisoformat(standby.status()["leader"]["since"])
    lock_s = round(since.timestamp() - killed, 3)

    # --- another shift: now the standby retrains and promotes; the replicas follow again
    runs_before = repo.list_runs(engine, limit=1)[0].id
    # 600 labels of domain c: the standby's retrain learns from 480 and is judged on 120 (on the
    # cued base it scored 0.95-1.0 there, against v2's ~0.55, keeping domain a within 0.01).
    failures += send(replicas[0], domain_c(keyword_examples(600, seed=3, domain="b")), "c")[0]
    wait_for(
        "a retrain on the new leader",
        lambda: repo.list_runs(engine, limit=1)[0].id > runs_before,
        60,
    )
    with Probes(replicas) as probes:
        v3 = wait_for("the new leader's promotion", lambda: promoted_after(engine, {v1, v2}), 300)
        pickup_v3 = pickup_seconds(engine, probes, v3)
    failures += sum(len(p.failures) for p in probes.all)
    served |= set().union(*(p.versions for p in probes.all))

    report = {
        "replica_pickup_s": {"leader_promotion": pickup_v2, "standby_promotion": pickup_v3},
        "registry_poll_s": REGISTRY_POLL_S,
        "standby_takeover_s": takeover_s,
        "standby_lock_s": lock_s,
        "leader_poll_s": POLL_S,
        "failed_requests": failures,
        "answered_probes": sum(p.answered for p in probes.all),
    }
    (tmp_path / "scale-out.json").write_text(json.dumps(report, indent=2))
    sys.stderr.write(f"\nscale-out: {json.dumps(report)}\n")

    assert failures == 0
    assert served <= {v1, v2, v3} and v3 in served
    assert takeover_s <= 30
    # The 2-s target is reported (docs/scale-out.md), not asserted: at load average 15 on this
    # shared box, building the adapter alone took over a second (0.2-0.3 s at load 9). What
    # this asserts is that the notification, not the 30-s poll, brought the promotion.
    assert max(pickup_v2 + pickup_v3) <= REGISTRY_POLL_S / 6, report

    # Who decided what: the second promotion was the standby's, and nothing happened twice.
    runs = sorted(repo.list_runs(engine, limit=50), key=lambda r: r.id)
    promoted = [r for r in runs if r.status == "promoted"]
    assert [r.candidate for r in promoted] == [v1, v2, v3]
    for earlier, later in zip(runs, runs[1:], strict=False):
        # One run at a time, store-wide: each started after the previous one ended.
        assert earlier.finished is not None and earlier.finished <= later.started, runs
    events = repo.list_events(engine, kinds=("promoted",), limit=100)
    versions = [(e.details or {}).get("version") for e in events]
    assert sorted(versions) == sorted({*versions}) and len(versions) == 3
    assert standby.status()["control"]["retrain"]["running"] is False
