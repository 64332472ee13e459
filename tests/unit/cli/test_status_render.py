"""`adaptd status` without --json answers the operator's first questions, one line each."""

from __future__ import annotations

from typing import Any

from adaptd.cli.status_cmd import render

DOC: dict[str, Any] = {
    "version": "0.1.0",
    "state": "running",
    "role": "all",
    "uptime_seconds": 3723.4,
    "ready": True,
    "not_ready_reason": None,
    "adapter": {
        "serving": "a4ac952b7562ffff",
        "promoted": "2026-11-30T09:00:00+00:00",
        "promoted_reason": "retrain 3 for policy accuracy-fell: accuracy 0.71 < 0.8",
        "refused": {"bad0123456789": "labels differ"},
    },
    "queue": {"depth": 3, "size": 1024},
    "log": {
        "queued_rows": 5,
        "written_rows": 3400,
        "dropped_rows": 2,
        "lag_seconds": 0.25,
        "store_ok": True,
        "last_error": None,
    },
    "config": {"last_reload": {"ok": False, "ts": "2026-11-30T10:00:00", "error": "bad.yaml:3"}},
    "control": {
        "last_check": {
            "ts": "2026-11-30T10:05:00+00:00",
            "duration_s": 0.412,
            "drifted": ["drift.embedding.auc", "performance.accuracy"],
            "error": None,
        },
        "policies": [
            {
                "name": "accuracy-fell",
                "enabled": True,
                "action": "retrain",
                "phase": "tripped",
                "pending": 0,
                "action_due": True,
                "last_action": "2026-11-30T09:00:00+00:00",
            },
            {
                "name": "drift-alert",
                "enabled": True,
                "action": "alert",
                "phase": "pending",
                "pending": 1,
                "action_due": False,
                "last_action": None,
            },
            {
                "name": "retrain-on-shift",
                "enabled": True,
                "action": "retrain",
                "phase": "tripped",
                "pending": 0,
                "action_due": True,
                "last_action": None,
                "labels": {"since": "2026-11-30T08:00", "new": 180, "needed": 300, "awaited": 120},
            },
        ],
        "retrain": {"running": True, "policy": "accuracy-fell", "started": "2026-11-30T10:05:01"},
        "retrain_progress": {"phase": "train", "fraction": 0.42},
        "probation": {
            "version": "a4ac952b7562ffff",
            "previous": "0123456789abcdef",
            "since": "2026-11-30T09:00:00+00:00",
        },
    },
}


def test_each_first_question_has_its_line() -> None:
    lines = render(DOC)
    assert lines[0] == "adaptd 0.1.0, role all, running, ready (up 1h02m)"
    assert lines[1:] == [
        "serving      a4ac952b7562 since 2026-11-30T09:00:00+00:00: "
        "retrain 3 for policy accuracy-fell: accuracy 0.71 < 0.8",
        "refused      bad012345678: labels differ",
        "queue        3 of 1024 texts waiting",
        "log          lag 0.25 s, 5 queued, 3400 written, 2 dropped; store ok",
        "last check   2026-11-30T10:05:00+00:00 (0.41 s): "
        "drifted: drift.embedding.auc, performance.accuracy",
        "policies     accuracy-fell        tripped, retrain held back by cooldown or budget; "
        "last retrain 2026-11-30T09:00:00+00:00",
        "             drift-alert          pending (1 recent check(s) held)",
        "             retrain-on-shift     tripped, waiting for 120 more labels "
        "(180 of 300 since the shift)",
        "retrain      running for policy accuracy-fell since 2026-11-30T10:05:01, 42% (train)",
        "probation    a4ac952b7562 since 2026-11-30T09:00:00+00:00 "
        "(rolls back to 0123456789ab if worse)",
        "config       last reload at 2026-11-30T10:00:00: REFUSED: bad.yaml:3",
    ]


def test_a_serve_replica_that_is_not_ready_says_why() -> None:
    doc = {**DOC, "role": "serve", "ready": False, "not_ready_reason": "no adapter is active"}
    doc = {k: v for k, v in doc.items() if k != "control"}
    lines = render(doc)
    assert lines[0].endswith("NOT READY: no adapter is active (up 1h02m)")
    assert not any(line.startswith(("policies", "retrain", "last check")) for line in lines)


def test_a_fallback_is_named_next_to_the_version_it_replaces() -> None:
    adapter = {
        **DOC["adapter"],
        "fallback": {"serving": "0123456789abcd", "instead_of": "bad0123456789"},
    }
    lines = render({**DOC, "adapter": adapter})
    assert (
        "fallback     serving 0123456789ab instead of the active bad012345678, which cannot be "
        "built here"
    ) in lines


def test_a_standby_says_who_leads_instead_of_an_empty_control_loop() -> None:
    standby = {
        **DOC,
        "leader": {"leader": False, "current_leader": "ctl-a:4242:9f3c1e", "since": None},
        "control": {"standby": True, "reason": "this instance is not the control leader"},
    }
    lines = render(standby)
    assert "control      standby (leader: ctl-a:4242:9f3c1e)" in lines
    assert not any(line.startswith("last check") for line in lines)
    leading = {**DOC, "leader": {"leader": True, "since": "2026-11-30T08:00:00+00:00"}}
    lines = render(leading)
    assert "control      leader since 2026-11-30T08:00:00+00:00" in lines
    assert any(line.startswith("last check") for line in lines)


def test_a_refining_policy_says_when_it_refines_next() -> None:
    refining = {
        "name": "retrain-on-shift",
        "enabled": True,
        "action": "retrain",
        "phase": "refining",
        "pending": 0,
        "action_due": False,
        "last_action": "2026-11-30T09:00:00+00:00",
        "refine": {"since": "2026-11-30T08:00", "new": 380, "needed": 450, "left": 2},
    }
    running = {**refining, "refine": {**refining["refine"], "needed": None, "left": 1}}
    lines = [
        line
        for policy in (refining, running)
        for line in render({**DOC, "control": {**DOC["control"], "policies": [policy]}})
        if line.startswith("policies")
    ]
    assert lines == [
        "policies     retrain-on-shift     refining, next refinement at 450 labels since the "
        "shift (380 so far, 2 allowed); last retrain 2026-11-30T09:00:00+00:00",
        "policies     retrain-on-shift     refining, refinement running (1 more allowed); "
        "last retrain 2026-11-30T09:00:00+00:00",
    ]
