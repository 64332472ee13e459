"""Policy state and events through the control loop on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry

from adaptd.control.loop import ControlLoop, Hooks
from adaptd.control.settings import SchedulerSettings
from adaptd.metrics import Metrics
from adaptd.policy.engine import Decision
from adaptd.policy.schema import Policy
from adaptd.storage import repository
from tests.unit.policy.helpers import CATALOG, T0, sig


def test_state_and_events_survive_a_restart_on_each_backend(engine):
    p = Policy.model_validate(
        {
            "name": "drift",
            "trip": {"signal": "drift.embedding.auc", "gt": 0.7},
            "n_of_m": {"n": 2, "m": 3},
            "cooldown": "6h",
            "action": {"type": "retrain", "overrides": {"group_reweighting": True}},
        },
        context={"known": CATALOG},
    )
    retrains: list[Decision] = []
    values = iter([0.9, 0.5, 0.9, 0.9, 0.9])

    def loop() -> ControlLoop:
        return ControlLoop(
            engine=engine,
            metrics=Metrics(CollectorRegistry()),
            settings=SchedulerSettings(),
            policies=[p],
            hooks=Hooks(
                check=lambda now: [sig("drift.embedding.auc", next(values), ts=now)],
                retrain=retrains.append,
                rollback=retrains.append,
                alert=retrains.append,
            ),
        )

    for i in range(5):  # a new daemon for every check
        loop().run_check_once(T0 + i * timedelta(minutes=5))
    assert len(retrains) == 1
    assert retrains[0].overrides == {"group_reweighting": True}
    events = repository.list_events(engine)
    assert [e.kind for e in events] == ["trip", "action"]
    assert events[1].details == {
        "policy": "drift",
        "action": "retrain",
        "overrides": {"group_reweighting": True},
        "signals": {"drift.embedding.auc": {"value": 0.9, "gt": 0.7}},
    }
    stored = repository.load_policy_states(engine)["drift"]
    assert stored["tripped"] is True
    assert stored["last_action"] == (T0 + timedelta(minutes=10)).isoformat()


def test_the_label_count_a_policy_waits_on_counts_trainable_labels_once(engine):
    from adaptd.storage.records import FeedbackRecord, PredictionRecord

    predictions = [
        PredictionRecord(
            id=f"p{i}",
            ts=T0 + timedelta(minutes=i),
            adapter="a1",
            text=None if i == 3 else f"text {i}",  # a hashed text cannot be trained on
            text_hash=str(i),
            label="positive",
            score=0.9,
            probabilities={},
        )
        for i in range(5)
    ]
    repository.insert_predictions(engine, predictions)
    assert repository.count_labelled(engine) == 0
    feedback = [
        FeedbackRecord(prediction_id=p.id, label="negative", ts=p.ts + timedelta(seconds=5))
        for p in predictions[:4]
    ]
    with engine.begin() as conn:
        repository.upsert_feedback(conn, feedback)
    with engine.begin() as conn:  # the same label again replaces it: still one
        repository.upsert_feedback(conn, feedback[:1])
    assert repository.count_labelled(engine) == 3
    times = repository.labelled_times(engine)
    assert times == [f.ts for f in feedback[:3]]
    assert repository.labelled_times(engine, until=feedback[1].ts) == times[:2]
