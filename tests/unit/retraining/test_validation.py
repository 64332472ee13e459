from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adaptd.errors import NotFoundError
from adaptd.retraining.settings import GateSettings, ValidationSettings
from adaptd.retraining.validation import Outcome, SliceData, Verdict, episode_baseline, judge
from adaptd.storage.records import AdapterRecord


def flip(y: list[int], share: float, seed: int) -> list[int]:
    """Predictions that get ``1 - share`` of ``y`` right."""
    rng = random.Random(seed)
    out = list(y)
    for i in rng.sample(range(len(y)), round(share * len(y))):
        out[i] = 1 - out[i]
    return out


RNG = random.Random(7)
Y_RECENT = [RNG.randrange(2) for _ in range(400)]
Y_GOLDEN = [RNG.randrange(2) for _ in range(300)]
SLICES = {
    "recent": SliceData(
        name="recent",
        y_true=tuple(Y_RECENT),
        attributes=tuple({"gender": ("male", "female")[i % 2]} for i in range(400)),
    ),
    "golden": SliceData(name="golden", y_true=tuple(Y_GOLDEN)),
}


def preds(recent_err: float, golden_err: float, seed: int = 0) -> dict[str, list[int]]:
    return {"recent": flip(Y_RECENT, recent_err, seed), "golden": flip(Y_GOLDEN, golden_err, seed)}


def run(
    candidate: dict[str, list[int]],
    champion: dict[str, list[int]] | None,
    settings_: ValidationSettings | None = None,
    slices: dict[str, SliceData] | None = None,
) -> Verdict:
    return judge(
        settings_ or ValidationSettings(),
        SLICES if slices is None else slices,
        candidate,
        champion,
        min_group_size=30,
        positive=1,
    )


def test_better_candidate_passes_and_every_number_has_an_interval() -> None:
    verdict = run(preds(0.10, 0.10, 1), preds(0.30, 0.10, 2))
    assert verdict.passed, verdict.reason()
    assert [g.name for g in verdict.gates] == ["accuracy@recent", "accuracy@golden"]
    recent = verdict.gates[0]
    assert recent.value == pytest.approx(0.9) and recent.champion == pytest.approx(0.7)
    assert recent.difference == pytest.approx(0.2)
    assert recent.interval is not None and recent.interval.contains(0.9)
    assert recent.difference_interval is not None and recent.difference_interval.low > 0.1
    assert recent.details["mcnemar_p"] < 1e-6
    reason = verdict.reason()
    assert reason.startswith("passed: accuracy@recent passed: 0.9 [")
    assert "difference +0.200 [+0.1" in reason and "min_gain 0" in reason
    doc = verdict.to_dict()
    assert doc["passed"] is True and doc["confidence_level"] == 0.9
    assert doc["not_judged"] == {"policy": "block", "gates": []}
    gate = doc["gates"][0]
    assert gate["outcome"] == "passed" and gate["passed"] is True
    assert gate["ci"][0] < 0.9 < gate["ci"][1]
    assert gate["champion_ci"][0] < 0.7 < gate["champion_ci"][1]
    assert gate["difference_ci"][0] > 0.1


def test_regression_on_recent_is_rejected_with_its_interval() -> None:
    verdict = run(preds(0.30, 0.10, 1), preds(0.20, 0.10, 2))
    assert [g.name for g in verdict.failing] == ["accuracy@recent"]
    reason = verdict.reason()
    assert reason.startswith("gate accuracy@recent failed: 0.7 [")
    assert "vs champion 0.8 [" in reason and "difference -0.100 [-0.1" in reason
    assert "not surely better than the champion by more than 0: the 90% interval" in reason


def test_noise_is_not_promoted() -> None:
    # The same quality with different mistakes: not better with confidence.
    verdict = run(preds(0.20, 0.10, 1), preds(0.21, 0.10, 2))
    assert [g.name for g in verdict.failing] == ["accuracy@recent"]


def test_clear_forgetting_on_golden_fails_but_noise_on_golden_does_not() -> None:
    forgets = run(preds(0.10, 0.25, 1), preds(0.30, 0.10, 2))
    assert [g.name for g in forgets.failing] == ["accuracy@golden"]
    assert "significant drop of 0.150, more than 0.02" in forgets.reason()
    # 1.3 points lower on 300 golden rows, other mistakes: noise, not a regression
    noisy = run(preds(0.10, 0.113, 1), preds(0.30, 0.10, 2))
    golden = noisy.gates[1]
    assert golden.difference is not None and golden.difference < 0
    assert golden.outcome is Outcome.PASSED and noisy.passed


def test_the_golden_gate_judges_at_its_own_alpha() -> None:
    """A 4-point loss on 300 golden rows is not significant at the verdict's 90% but is at the
    golden gate's own 70% (alpha 0.3, the default), so the default gates reject it."""
    candidate, champion = preds(0.10, 0.14, 1), preds(0.30, 0.10, 2)
    at_verdict_alpha = [g.model_copy(update={"alpha": None}) for g in ValidationSettings().gates]
    lenient = run(candidate, champion, ValidationSettings(gates=at_verdict_alpha))
    assert lenient.passed, lenient.reason()
    strict = run(candidate, champion)
    assert [g.name for g in strict.failing] == ["accuracy@golden"]
    golden = strict.failing[0]
    assert golden.difference_interval is not None and golden.difference_interval.level == 0.7
    assert "significant drop of 0.040" in strict.reason()
    # the verdict's other gates keep validation.alpha
    assert strict.gates[0].difference_interval is not None
    assert strict.gates[0].difference_interval.level == pytest.approx(0.9)


def test_shuffled_label_candidate_is_rejected_with_and_without_champion() -> None:
    rng = random.Random(3)
    shuffled = {k: [rng.randrange(2) for _ in v.y_true] for k, v in SLICES.items()}
    with_champion = run(shuffled, preds(0.2, 0.2))
    first = run(shuffled, None)
    assert not with_champion.passed and not first.passed
    assert [g.name for g in first.failing] == ["beats_majority@recent", "beats_majority@golden"]


def test_first_adapter_must_beat_the_majority_class_on_every_slice() -> None:
    # The SmolLM2 case: 52 % on a golden slice where 60 % are one class.
    y = [1] * 60 + [0] * 40
    golden = [1] * 52 + [0] * 48
    rng = random.Random(1)
    rng.shuffle(golden)
    slices = {
        "recent": SliceData(name="recent", y_true=tuple(Y_RECENT)),
        "golden": SliceData(name="golden", y_true=tuple(y)),
    }
    verdict = run({"recent": flip(Y_RECENT, 0.1, 1), "golden": golden}, None, slices=slices)
    assert [g.name for g in verdict.failing] == ["beats_majority@golden"]
    gate = verdict.failing[0]
    assert gate.threshold == {"majority": 0.6}
    assert "not above the majority class's 0.600" in verdict.reason()
    # Without a champion the relative gates do not apply: skipped, not failed.
    assert {g.name: g.outcome for g in verdict.gates}["accuracy@recent"] is Outcome.SKIPPED


def test_lucky_first_adapter_just_above_the_majority_is_not_promoted() -> None:
    # 62 % on 50 rows where 60 % are one class: above the majority, not with confidence.
    y = [1] * 30 + [0] * 20
    cand = [1] * 50
    cand[30] = 0
    slices = {"recent": SliceData(name="recent", y_true=tuple(y))}
    gates = [GateSettings(metric="accuracy", slice="recent", min=0.6)]
    verdict = run(
        {"recent": cand}, None, ValidationSettings(gates=gates, not_judged="pass"), slices
    )
    assert verdict.gates[0].outcome is Outcome.PASSED
    assert [g.name for g in verdict.failing] == ["beats_majority@recent"]


def test_missing_golden_slice_is_not_judged_and_blocks_by_default() -> None:
    only_recent = {"recent": SLICES["recent"]}
    cand, champ = preds(0.1, 0.1, 1), preds(0.3, 0.1, 2)
    blocked = run(cand, champ, slices=only_recent)
    assert not blocked.passed
    assert blocked.failing[0].outcome is Outcome.NOT_JUDGED
    assert blocked.reason() == (
        "gate accuracy@golden not_judged (no golden slice); validation.not_judged is block"
    )
    assert blocked.to_dict()["not_judged"] == {"policy": "block", "gates": ["accuracy@golden"]}
    allowed = run(cand, champ, ValidationSettings(not_judged="pass"), only_recent)
    assert allowed.passed
    assert "not judged, allowed by validation.not_judged: pass: accuracy@golden" in (
        allowed.reason()
    )


def test_too_small_slice_and_too_small_groups_are_not_judged() -> None:
    tiny = {
        "recent": SliceData(name="recent", y_true=tuple(Y_RECENT[:20])),
        "golden": SLICES["golden"],
    }
    cand, champ = preds(0.1, 0.1, 1), preds(0.3, 0.1, 2)
    small = run({**cand, "recent": cand["recent"][:20]}, {**champ, "recent": champ["recent"][:20]},
                slices=tiny)  # fmt: skip
    assert small.gates[0].outcome is Outcome.NOT_JUDGED
    assert small.gates[0].note == "recent has 20 rows, fewer than min_group_size 30"
    gates = [GateSettings(metric="dp_diff", slice="gender", max=0.1)]
    few = {
        "recent": SliceData(
            name="recent",
            y_true=tuple(Y_RECENT),
            attributes=tuple({"gender": "f"} if i < 20 else {} for i in range(400)),
        )
    }
    verdict = run(cand, champ, ValidationSettings(gates=gates), few)
    assert verdict.gates[0].outcome is Outcome.NOT_JUDGED and not verdict.passed
    assert "groups of at least 30 rows" in (verdict.gates[0].note or "")


def test_bias_gate_on_attribute_slice_with_interval() -> None:
    # The candidate predicts class 1 for every male example: a huge parity gap.
    cand = preds(0.1, 0.1)
    cand["recent"] = [1 if i % 2 == 0 else y for i, y in enumerate(cand["recent"])]
    gates = [GateSettings(metric="dp_diff", slice="gender", max=0.1, max_rise=0.02)]
    verdict = run(cand, preds(0.1, 0.1, 3), ValidationSettings(gates=gates, bootstrap_samples=200))
    gate = verdict.gates[0]
    assert gate.name == "dp_diff@gender" and gate.outcome is Outcome.FAILED
    assert (gate.value or 0) > 0.3 and gate.interval is not None and gate.interval.low > 0.2
    assert gate.difference_interval is not None and gate.difference_interval.low > 0.2
    assert "above max 0.1" in (gate.note or "") and "significant rise" in (gate.note or "")


def test_gate_config_errors_name_the_gate() -> None:
    with pytest.raises(ValueError, match="gate accuracy@recent has no bound"):
        GateSettings(metric="accuracy", slice="recent")
    with pytest.raises(ValueError, match="gate dp_diff@recent: .* take an attribute slice"):
        GateSettings(metric="dp_diff", slice="recent", max=0.1)
    with pytest.raises(ValueError, match="gate error_rate@golden: .* max_rise, not max_drop"):
        GateSettings(metric="error_rate", slice="golden", max_drop=0.1)
    with pytest.raises(ValidationError, match="gate accuracy@golden is declared twice"):
        ValidationSettings(
            gates=[
                GateSettings(metric="accuracy", slice="golden", max_drop=0.1),
                GateSettings(metric="accuracy", slice="golden", min=0.5),
            ]
        )


def test_error_rate_and_macro_f1_gates_judge_in_their_direction() -> None:
    gates = [
        GateSettings(metric="error_rate", slice="recent", min_gain=0.0),
        GateSettings(metric="macro_f1", slice="golden", max_drop=0.02),
    ]
    verdict = run(preds(0.1, 0.1, 1), preds(0.3, 0.1, 2), ValidationSettings(gates=gates))
    assert verdict.passed, verdict.reason()
    err = verdict.gates[0]
    assert err.difference == pytest.approx(-0.2)
    assert err.difference_interval is not None and err.difference_interval.high < -0.1
    worse = run(preds(0.3, 0.1, 1), preds(0.1, 0.1, 2), ValidationSettings(gates=gates))
    assert [g.name for g in worse.failing] == ["error_rate@recent"]


@settings(max_examples=30, deadline=None)
@given(err=st.floats(0.0, 0.5), bound=st.floats(0.0, 1.0), looser=st.floats(0.0, 0.5))
def test_a_gate_that_passes_also_passes_when_loosened(
    err: float, bound: float, looser: float
) -> None:
    cand = preds(err, err, 5)
    champ = preds(0.3, 0.1, 2)
    strict = ValidationSettings(gates=[GateSettings(metric="accuracy", slice="recent", min=bound)])
    loose = ValidationSettings(
        gates=[GateSettings(metric="accuracy", slice="recent", min=max(0.0, bound - looser))]
    )
    assert not run(cand, champ, strict).passed or run(cand, champ, loose).passed


def test_verdict_shows_where_the_rows_of_a_slice_came_from() -> None:
    verdict = judge(
        ValidationSettings(), SLICES, preds(0.10, 0.10, 1), preds(0.30, 0.10, 2),
        min_group_size=30, positive=1, sources={"recent": {"holdout": 100, "late": 300}},
    )  # fmt: skip
    assert verdict.to_dict()["sources"] == {"recent": {"holdout": 100, "late": 300}}
    assert verdict.reason().endswith("(recent = 100 holdout + 300 late)")
    # one source only: nothing to say
    alone = judge(
        ValidationSettings(), SLICES, preds(0.10, 0.10, 1), preds(0.30, 0.10, 2),
        min_group_size=30, positive=1, sources={"recent": {"holdout": 400, "late": 0}},
    )  # fmt: skip
    assert "holdout" not in alone.reason()


def refining(
    candidate: dict[str, list[int]],
    champion: dict[str, list[int]],
    baseline: dict[str, list[int]] | None = None,
) -> Verdict:
    small = {
        "recent": SliceData(name="recent", y_true=tuple(Y_RECENT[:150])),
        **{"golden": SLICES["golden"]},
    }
    cut = {**candidate, "recent": candidate["recent"][:150]}
    champ = {**champion, "recent": champion["recent"][:150]}
    return judge(
        ValidationSettings(), small, cut, champ, min_group_size=30, positive=1, refinement=True,
        baseline=None if baseline is None else {"golden": baseline["golden"]},
        baseline_version=None if baseline is None else "start",
    )  # fmt: skip


def champion_and(fixed: int, broken: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """A champion wrong on 45 of the first 150 recent rows, and a candidate that gets ``fixed``
    of those right and ``broken`` of the champion's right ones wrong (same golden)."""
    champion = preds(0.0, 0.10, 3)
    wrong = list(range(0, 135, 3))
    for i in wrong:
        champion["recent"][i] = 1 - Y_RECENT[i]
    candidate = {k: list(v) for k, v in champion.items()}
    for i in wrong[:fixed]:
        candidate["recent"][i] = Y_RECENT[i]
    for i in [i for i in range(150) if i not in wrong][:broken]:
        candidate["recent"][i] = 1 - Y_RECENT[i]
    return candidate, champion


def as_retrain(candidate: dict[str, list[int]], champion: dict[str, list[int]]) -> Verdict:
    """What :func:`refining` judges, judged as a plain retrain."""
    return run(
        {**candidate, "recent": candidate["recent"][:150]},
        {**champion, "recent": champion["recent"][:150]},
        slices={"recent": SliceData(name="recent", y_true=tuple(Y_RECENT[:150])),
                "golden": SLICES["golden"]},
    )  # fmt: skip


def test_a_refinement_passes_when_no_worse_where_a_retrain_must_be_surely_better() -> None:
    # +4 points on 150 rows (16 fixed, 10 broken): not surely better, but no worse
    candidate, champion = champion_and(16, 10)
    plain = as_retrain(candidate, champion)
    assert not plain.passed
    verdict = refining(candidate, champion)
    assert verdict.passed, verdict.reason()
    assert verdict.gates[0].threshold == {"min_gain": 0.0, "refinement_margin": 0.02}


@pytest.mark.parametrize("broken", [1, 6])
def test_a_refinement_that_measures_worse_is_rejected(broken: int) -> None:
    candidate, champion = champion_and(0, broken)
    verdict = refining(candidate, champion)
    assert not verdict.passed
    assert "a refinement must be no worse than the champion" in verdict.reason()


def test_a_refinement_whose_interval_reaches_below_the_margin_is_rejected() -> None:
    # Gain 0 on 40 disagreements (20 each way): the interval reaches about -0.07
    candidate, champion = champion_and(20, 20)
    verdict = refining(candidate, champion)
    assert verdict.gates[0].difference == pytest.approx(0.0)
    assert not verdict.passed
    assert "it starts at -0.0" in verdict.reason()


def with_golden(
    candidate: dict[str, list[int]], champion: dict[str, list[int]], broken: int, fixed: int
) -> dict[str, list[int]]:
    """``candidate`` with ``broken`` of the champion's right golden rows wrong and ``fixed`` of
    its wrong ones right: a loss of (broken - fixed) / 300 on golden, with that much churn."""
    golden = list(champion["golden"])
    right = [i for i, (p, t) in enumerate(zip(golden, Y_GOLDEN, strict=True)) if p == t]
    wrong = [i for i, (p, t) in enumerate(zip(golden, Y_GOLDEN, strict=True)) if p != t]
    for i in right[:broken]:
        golden[i] = 1 - Y_GOLDEN[i]
    for i in wrong[:fixed]:
        golden[i] = Y_GOLDEN[i]
    return {**candidate, "golden": golden}


def test_a_refinement_may_not_trade_a_measured_golden_loss_that_a_retrain_may() -> None:
    # +4 points on 150 recent rows (no worse, not surely better) and -2.3 points on 300 golden
    # rows in 53 changed answers (30 broken, 23 fixed): not significant at the golden gate's 70 %.
    candidate, champion = champion_and(16, 10)
    candidate = with_golden(candidate, champion, broken=30, fixed=23)
    plain = as_retrain(candidate, champion)
    golden = plain.gates[1]
    assert golden.difference == pytest.approx(-7 / 300)
    assert golden.difference_interval is not None and golden.difference_interval.high > 0
    assert golden.outcome is Outcome.PASSED  # a retrain: a loss must be significant to fail
    verdict = refining(candidate, champion)
    assert verdict.gates[0].outcome is Outcome.PASSED  # no worse on recent
    assert [g.name for g in verdict.failing] == ["accuracy@golden"]
    assert "a refinement must be no worse than the champion: it measures a drop of 0.023" in (
        verdict.reason()
    )


def test_a_refinement_within_max_drop_on_golden_passes() -> None:
    # -1.3 points on golden (14 broken, 10 fixed): inside max_drop 0.02, passed as before
    candidate, champion = champion_and(16, 10)
    verdict = refining(with_golden(candidate, champion, broken=14, fixed=10), champion)
    assert verdict.gates[1].difference == pytest.approx(-4 / 300)
    assert verdict.passed, verdict.reason()


def test_a_refinement_is_judged_on_golden_against_the_adapter_its_episode_started_from() -> None:
    # Runs 35 and 40 (bench/adaptation/RESULTS.md): the champion measured lucky on the golden
    # rows, its refinement gave that back (-2.2 against it) and no more: against the adapter
    # the shift found serving it has lost nothing to be turned away for.
    candidate, champion = champion_and(16, 10)
    start = dict(champion)
    champion = with_golden(champion, start, broken=0, fixed=6)  # +2.0 over the start
    candidate = with_golden(candidate, champion, broken=30, fixed=23)  # -2.3 against it
    against_champion = refining(candidate, champion)
    assert [g.name for g in against_champion.failing] == ["accuracy@golden"]
    verdict = refining(candidate, champion, baseline=start)
    assert verdict.passed, verdict.reason()
    golden = verdict.gates[1]
    assert golden.difference == pytest.approx(-7 / 300)  # the champion's numbers stay shown
    assert golden.details["baseline"]["difference"] == pytest.approx(-1 / 300)
    assert "against the baseline" in golden.describe()
    doc = verdict.to_dict()
    assert (doc["refinement"], doc["baseline"]) == (True, "start")


def test_a_refinement_may_not_add_its_loss_to_its_champions() -> None:
    # Forgetting that creeps: the champion measured -1.3 from the start, the refinement another
    # -1.3 from the champion. Each step is inside max_drop; the episode's loss is not.
    candidate, champion = champion_and(16, 10)
    start = dict(champion)
    champion = with_golden(champion, start, broken=4, fixed=0)
    candidate = with_golden(candidate, champion, broken=4, fixed=0)
    assert refining(candidate, champion).passed  # against the champion alone: -1.3, passed
    verdict = refining(candidate, champion, baseline=start)
    assert [g.name for g in verdict.failing] == ["accuracy@golden"]
    assert (
        "no worse than the baseline (the adapter its episode started from): it measures a "
        "drop of 0.027" in verdict.reason()
    )


def test_a_significant_loss_against_the_champion_fails_however_the_baseline_did() -> None:
    # A champion far ahead of a poor start on golden; its refinement loses 9 points of that
    # (significant), still 1 point ahead of the start: a first retrain's test still holds.
    candidate, champion = champion_and(16, 10)
    start = with_golden(dict(champion), champion, broken=30, fixed=0)  # the start: -10
    candidate = with_golden(candidate, champion, broken=27, fixed=0)
    verdict = refining(candidate, champion, baseline=start)
    golden = verdict.gates[1]
    assert golden.details["baseline"]["difference"] == pytest.approx(3 / 300)
    assert golden.outcome is Outcome.FAILED
    assert "significant drop of 0.090" in verdict.reason()


def test_a_plain_retrain_ignores_a_baseline() -> None:
    candidate, champion = preds(0.10, 0.10, 1), preds(0.30, 0.10, 2)
    verdict = judge(
        ValidationSettings(), SLICES, candidate, champion, min_group_size=30, positive=1,
        baseline={"golden": [1 - y for y in Y_GOLDEN]}, baseline_version="start",
    )  # fmt: skip
    assert verdict.passed
    assert verdict.baseline is None and not verdict.refinement
    assert all("baseline" not in g.details for g in verdict.gates)


# --------------------------------------------------------------- the episode's baseline

T0 = datetime(2026, 12, 5, tzinfo=UTC)


def lineage(*steps: tuple[str, bool]) -> dict[str, AdapterRecord]:
    """Adapters each made from the one before, an hour apart: (version, judged as a refinement)."""
    out: dict[str, AdapterRecord] = {}
    parent = None
    for hour, (version, refinement) in enumerate(steps):
        out[version] = AdapterRecord(
            version=version, status="retired", path=f"/adapters/{version}",
            created=T0 + timedelta(hours=hour), parent=parent,
            verdict={"refinement": refinement, "gates": []},
        )  # fmt: skip
        parent = version
    return out


def get(adapters: dict[str, AdapterRecord]) -> Callable[[str], AdapterRecord]:
    def adapter(version: str) -> AdapterRecord:
        if version not in adapters:
            raise NotFoundError(f"adapter {version!r} not found")
        return adapters[version]

    return adapter


EPISODE = lineage(("start", False), ("first", False), ("refined", True), ("again", True))


@pytest.mark.parametrize("champion", ["first", "refined", "again"])
def test_the_baseline_is_the_parent_of_the_episodes_first_retrain(champion: str) -> None:
    start = episode_baseline(EPISODE[champion], get(EPISODE))
    assert start is not None and start.version == "start"


def test_the_adapter_that_started_the_episode_has_no_other_baseline() -> None:
    # the very first adapter, or one made before the episode's labels (rolled back to)
    assert episode_baseline(EPISODE["start"], get(EPISODE)) is None
    since = EPISODE["first"].created + timedelta(minutes=1)
    assert episode_baseline(EPISODE["first"], get(EPISODE), since) is None
    # ... and a refinement made before them leads back to it, not past it
    refined = episode_baseline(EPISODE["again"], get(EPISODE), since)
    assert refined is not None and refined.version == "first"


def test_a_verdict_stored_before_it_said_refinement_is_read_by_its_threshold() -> None:
    old = {"gates": [{"threshold": {"refinement_margin": 0.02}}]}
    adapters = dict(EPISODE)
    adapters["refined"] = dataclasses.replace(EPISODE["refined"], verdict=old)
    start = episode_baseline(adapters["refined"], get(adapters))
    assert start is not None and start.version == "start"


def test_a_lineage_that_loops_stops_where_it_closes() -> None:
    looped = lineage(("a", True), ("b", True))
    looped["a"] = AdapterRecord(
        version="a", status="retired", path="/a", created=T0, parent="b",
        verdict={"refinement": True},
    )  # fmt: skip
    # the walk ends back at the champion: no other baseline (and no endless loop)
    assert episode_baseline(looped["b"], get(looped)) is None


def test_a_missing_parent_is_the_readers_error() -> None:
    broken = {k: v for k, v in EPISODE.items() if k != "start"}
    with pytest.raises(NotFoundError, match="'start'"):
        episode_baseline(broken["again"], get(broken))
