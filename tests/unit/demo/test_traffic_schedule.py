"""The post-shift stream of the demo and ``bench/adaptation``: which rows carry labels."""

from __future__ import annotations

from itertools import islice

import pytest

from adaptd.datasets.records import Example
from adaptd.demo.scenario import labels_spent_stop, target_traffic


def pool(n: int) -> list[Example]:
    return [Example(text=f"t{i}", label="positive") for i in range(n)]


def test_share_one_sends_the_pool_labelled_then_cycles_it_unlabelled() -> None:
    rows = pool(20)
    batches = list(islice(target_traffic(rows, 8, 1.0), 6))
    assert [(len(b), f) for b, f in batches] == [
        (8, True), (8, True), (4, True), (8, False), (8, False), (4, False),
    ]  # fmt: skip
    assert [e.text for b, f in batches if f for e in b] == [e.text for e in rows]
    assert batches[3][0][0].text == "t0"


def test_a_share_below_one_spreads_the_labels_and_sends_each_once() -> None:
    rows = pool(40)
    batches = list(islice(target_traffic(rows, 4, 0.25), 60))
    labelled = [e.text for b, f in batches if f for e in b]
    assert labelled == [e.text for e in rows]  # every row labelled exactly once, in order
    flags = [f for _, f in batches]
    # One labelled batch in four while the pool lasts, then unlabelled traffic only.
    assert flags[:8] == [True, False, False, False, True, False, False, False]
    assert flags.index(True, 36) == 36 and not any(flags[37:])


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_share_outside_0_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="labelled_share"):
        next(target_traffic(pool(3), 2, share))


def test_an_empty_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        next(target_traffic([], 2, 1.0))


def test_after_the_last_label_the_stream_waits_for_running_retrains_then_stops_when_idle() -> None:
    def stop(now: float, busy_at: float = 0.0) -> str | None:
        return labels_spent_stop(
            now, pool_done_at=100.0, busy_at=busy_at, idle_limit_s=60.0, max_wait_s=900.0
        )

    # nothing runs: a minute after the last label there is nothing left to wait for
    assert stop(150.0) is None
    assert stop(161.0) == "no retrain for 61 s"
    # a retry outlasting a fixed wait (CI, a loaded box) is waited for...
    assert stop(500.0, busy_at=499.0) is None
    # ... and so is the next one its outcome allows, which starts at the next check
    assert stop(540.0, busy_at=499.0) is None
    assert stop(560.0, busy_at=499.0) == "no retrain for 61 s"
    # ... but never beyond max_wait_s after the last label
    assert stop(1001.0, busy_at=1000.0) == "time is up"
