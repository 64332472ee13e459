"""The post-shift stream of the demo and ``bench/adaptation``: which rows carry labels."""

from __future__ import annotations

from itertools import islice

import pytest

from adaptd.datasets.records import Example
from adaptd.demo.scenario import target_traffic


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
