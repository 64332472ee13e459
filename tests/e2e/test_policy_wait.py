"""A tripped retrain policy waits for labels from after the shift, visibly, in a running daemon
(tiny model, real HTTP, store, scheduler thread and fine-tune child), then trains on just them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from adaptd.service import Service
from adaptd.storage import repository as repo
from adaptd.storage.records import RetrainRun
from tests.e2e import tiny
from tests.e2e.test_loop import send, wait_for_retrain
from tests.unit.retraining.synthetic import keyword_examples

POLICY = """\
policies:
  - name: accuracy-fell
    trip:
      signal: performance.accuracy
      lt: 0.8
    min_samples: 50
    for: 1
    action:
      type: retrain
      min_new_labels: 400
"""


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def policy_text() -> str:
    return POLICY


@pytest.fixture
def daemon(tiny_base: Path, tmp_path: Path, policy_text: str) -> Iterator[Service]:
    with tiny.running_daemon(tiny_base, tmp_path, policy_text) as service:
        yield service


def policy_runs(daemon: Service) -> list[RetrainRun]:
    assert daemon.engine is not None
    return [r for r in repo.list_runs(daemon.engine) if r.policy == "accuracy-fell"]


def metric(client: httpx.Client, line_start: str) -> float:
    text = client.get("/metrics").text
    (line,) = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(line.rsplit(" ", 1)[1])


def test_the_wait_shows_in_status_metrics_and_events_then_trains_on_the_new_labels(
    daemon: Service,
) -> None:
    assert daemon.engine is not None and daemon.control is not None
    loop = daemon.control.loop
    awaited = 'adaptd_policy_labels_awaited{policy="accuracy-fell"}'
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.http_port}", timeout=60) as client:
        # Domain a only (the reference window takes the first 200), then two calm checks: the
        # labels of an episode count from the calm check before the last one.
        assert send(client, keyword_examples(200, seed=1), "a") > 0.9
        assert send(client, keyword_examples(200, seed=4), "a2") > 0.85
        now = datetime.now(UTC)
        for seconds in (0, 30):
            calm = loop.run_check_once(now + timedelta(seconds=seconds))
            assert calm.decisions == [], calm.decisions

        # The shift: 300 labels arrive, the policy trips but waits for 400.
        send(client, keyword_examples(300, seed=2, domain="b"), "b")
        outcome = loop.run_check_once(now + timedelta(minutes=1))
        assert [(d.kind.value, d.reason and d.reason.value) for d in outcome.decisions][-2:] == [
            ("trip", None),
            ("suppressed", "awaiting_labels"),
        ]
        control = client.get("/v1/status").json()["control"]
        assert control["summary"] == [
            f"accuracy-fell: tripped, waiting for 100 more labels (300 of 400 since "
            f"{now.isoformat()})"
        ]
        (policy,) = control["policies"]
        assert policy["labels"]["awaited"] == 100
        assert policy["labels"]["since"] == now.isoformat()
        assert metric(client, awaited) == 100
        assert not loop.retrain_running
        assert policy_runs(daemon) == []
        waiting = [e for e in repo.list_events(daemon.engine) if e.kind == "suppressed"]
        assert waiting[-1].message == (
            f"waiting for 100 more labelled examples (300 of 400 since {now.isoformat()})"
        )

        # 100 more labels: the wait ends and the run trains on the 400 since the shift.
        send(client, keyword_examples(100, seed=3, domain="b"), "b2")
        outcome = loop.run_check_once(now + timedelta(minutes=2))
        assert [d.kind.value for d in outcome.decisions] == ["wait_ended", "action"]
        assert metric(client, awaited) == 0
        wait_for_retrain(daemon)

    (run,) = policy_runs(daemon)
    data = (run.details or {})["data"]
    # the 200 labels of domain a, given before the shift, are not among them
    assert 360 <= data["new"] + data["holdout"] <= 400, data
    kinds = [e.kind for e in repo.list_events(daemon.engine) if e.source == "policy/accuracy-fell"]
    assert kinds[-1] == "outcome", kinds


REFINING = """\
policies:
  - name: accuracy-fell
    trip:
      signal: performance.accuracy
      lt: 0.8
    min_samples: 50
    # two checks, so that the check that refines cannot also trip a new episode
    for: 2
    cooldown: 6h
    action:
      type: retrain
      refinements: 1
"""


@pytest.mark.parametrize("policy_text", [REFINING])
def test_after_a_promotion_the_policy_refines_on_every_label_since_the_shift(
    daemon: Service,
) -> None:
    assert daemon.engine is not None and daemon.control is not None
    loop = daemon.control.loop
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.http_port}", timeout=60) as client:
        send(client, keyword_examples(200, seed=1), "a")
        send(client, keyword_examples(300, seed=2, domain="b"), "b")
        now = datetime.now(UTC)
        assert loop.run_check_once(now).decisions == []  # 1 of 2
        outcome = loop.run_check_once(now + timedelta(minutes=1))
        assert [d.kind.value for d in outcome.decisions] == ["trip", "action"]
        # No calm check came before: every stored label is evidence, 500 of them.
        assert outcome.decisions[1].new_labels == 500
        wait_for_retrain(daemon)
        (first,) = policy_runs(daemon)
        assert first.status == "promoted", first.error
        (policy,) = client.get("/v1/status").json()["control"]["policies"]
        assert policy["phase"] == "refining"
        assert policy["refine"] == {"since": None, "new": 500, "needed": 750, "left": 1}
        assert 'adaptd_policy_state{policy="accuracy-fell",state="refining"} 1.0' in (
            client.get("/metrics").text
        )

        # 250 more labels of the new domain: within the cooldown the promotion started, with
        # nothing tripped again, the next check refines on all 750.
        send(client, keyword_examples(250, seed=3, domain="b"), "b2")
        outcome = loop.run_check_once(now + timedelta(minutes=2))
        (action,) = [d for d in outcome.decisions if d.kind.value == "action"]
        assert action.refinement and action.new_labels == 750
        wait_for_retrain(daemon)

    second = policy_runs(daemon)[0]
    assert second.id != first.id
    # judged as a refinement: no worse than the adapter it refines (validation.refinement_margin)
    assert second.candidate is not None
    verdict = repo.get_adapter(daemon.engine, second.candidate).verdict or {}
    recent = next(g for g in verdict["gates"] if g["name"] == "accuracy@recent")
    floor = tiny.GATES[0]["min"]
    assert recent["threshold"] == {"min": floor, "min_gain": 0.0, "refinement_margin": 0.02}
    assert first.candidate is not None
    verdict = repo.get_adapter(daemon.engine, first.candidate).verdict or {}
    recent = next(g for g in verdict["gates"] if g["name"] == "accuracy@recent")
    assert "refinement_margin" not in recent["threshold"]
    data = (second.details or {})["data"]
    assert data["new"] + data["holdout"] >= 700, data
    events = [e for e in repo.list_events(daemon.engine) if e.source == "policy/accuracy-fell"]
    assert events[-1].kind == "outcome"
    assert "no refinement left" in events[-1].message, events[-1].message
    (policy,) = daemon.control.status()["policies"]
    assert policy["phase"] != "refining" and policy["refine"] is None
