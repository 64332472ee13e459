"""Padding-aware micro-batches: the plan is a partition, and the cheapest one."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptd.serving.padding import plan


def cost(lengths: list[int], groups: list[list[int]], overhead: int) -> int:
    return sum(len(g) * max(lengths[i] for i in g) + overhead for g in groups)


@given(st.lists(st.integers(1, 128), max_size=40), st.integers(0, 600))
def test_every_text_is_in_exactly_one_forward(lengths: list[int], overhead: int) -> None:
    groups = plan(lengths, overhead)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(groups)
    # runs of the sorted lengths: each group's texts are no longer than the next group's
    for a, b in itertools.pairwise(groups):
        assert max(lengths[i] for i in a) <= min(lengths[i] for i in b)


@given(st.lists(st.integers(1, 64), min_size=1, max_size=9), st.integers(0, 200))
def test_no_cut_of_the_sorted_texts_costs_less(lengths: list[int], overhead: int) -> None:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = min(
        cost(lengths, [order[a:b] for a, b in itertools.pairwise((0, *cuts, len(order)))], overhead)
        for k in range(len(order))
        for cuts in itertools.combinations(range(1, len(order)), k)
    )
    assert cost(lengths, plan(lengths, overhead), overhead) == best


def test_similar_lengths_share_one_forward_and_outliers_get_their_own() -> None:
    assert plan([20, 22, 21, 19], overhead=128) == [[3, 0, 2, 1]]
    # 31 short texts and one long one: padding all 32 to 120 tokens costs more than a forward
    lengths = [15] * 31 + [120]
    assert plan(lengths, overhead=128) == [list(range(31)), [31]]


def test_no_texts_no_forward_and_a_negative_overhead_is_refused() -> None:
    assert plan([]) == []
    with pytest.raises(ValueError, match="overhead"):
        plan([3], overhead=-1)
