"""Policy files as operators write them: every bad input is one error naming file, line, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptd.policy.loading import SignalNames, load_policies, parse_policy_file
from adaptd.policy.schema import RetrainAction
from tests.unit.policy.helpers import CATALOG

GOOD = """\
policies:
  - name: drift
    trip:
      signal: drift.embedding.auc
      gt: 0.7
    for: 2
    cooldown: 6h
    max_per_day: 1
    action:
      type: retrain
      overrides:
        replay_ratio: 0.5
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    policies, errors = load_policies([path], CATALOG)
    assert policies == []
    assert len(errors) >= 1, errors
    return str(errors[0])


def test_a_good_file_loads(tmp_path):
    policies, errors = load_policies([write(tmp_path, GOOD)], CATALOG)
    assert errors == []
    (policy,) = policies
    assert policy.name == "drift"
    assert policy.window == (2, 2)
    assert policy.cooldown.total_seconds() == 6 * 3600
    assert isinstance(policy.action, RetrainAction)
    assert policy.action.overrides.replay_ratio == 0.5


def test_unknown_signal_names_file_line_and_field(tmp_path):
    text = GOOD.replace("drift.embedding.auc", "drift.embeding.auc")
    assert one_error(tmp_path, text) == (
        f"{tmp_path}/p.yaml:4: policies.0.trip.signal: unknown signal 'drift.embeding.auc'; "
        "known drift.* signals: drift.embedding.auc, drift.text.length"
    )


def test_type_error(tmp_path):
    text = GOOD.replace("gt: 0.7", "gt: high")
    message = one_error(tmp_path, text)
    assert message.startswith(f"{tmp_path}/p.yaml:5: policies.0.trip.gt: ")
    assert "'high'" in message


def test_contradictory_thresholds_under_all(tmp_path):
    text = GOOD.replace(
        "    trip:\n      signal: drift.embedding.auc\n      gt: 0.7\n",
        "    trip:\n      all:\n        - signal: drift.embedding.auc\n          gt: 0.5\n"
        "        - signal: drift.embedding.auc\n          lt: 0.3\n",
    )
    message = one_error(tmp_path, text)
    assert message.startswith(f"{tmp_path}/p.yaml:3: policies.0.trip: contradictory thresholds")
    assert "gt 0.5 and lt 0.3" in message


def test_contradictory_thresholds_in_one_comparison(tmp_path):
    text = GOOD.replace("gt: 0.7", "gt: 0.7\n      lte: 0.7")
    assert "contradictory thresholds on 'drift.embedding.auc'" in one_error(tmp_path, text)


def test_a_band_is_not_a_contradiction(tmp_path):
    text = GOOD.replace("gt: 0.7", "gt: 0.6\n      lt: 0.9")
    assert load_policies([write(tmp_path, text)], CATALOG)[1] == []


def test_threshold_outside_the_signal_bounds(tmp_path):
    text = GOOD.replace("gt: 0.7", "gt: 1.5")
    assert "can never hold: drift.embedding.auc lies in [0.0, 1.0]" in one_error(tmp_path, text)


def test_negative_duration(tmp_path):
    message = one_error(tmp_path, GOOD.replace("cooldown: 6h", "cooldown: -6h"))
    assert message.startswith(f"{tmp_path}/p.yaml:7: policies.0.cooldown: ")
    assert "must not be negative" in message


def test_malformed_duration(tmp_path):
    message = one_error(tmp_path, GOOD.replace("cooldown: 6h", "cooldown: 6 hours"))
    assert "policies.0.cooldown: not a duration" in message


def test_unknown_action(tmp_path):
    message = one_error(tmp_path, GOOD.replace("type: retrain", "type: retrian"))
    assert message.startswith(f"{tmp_path}/p.yaml:10: policies.0.action")
    assert "'retrian'" in message
    assert "'alert', 'retrain', 'rollback'" in message


def test_unknown_retrain_override(tmp_path):
    message = one_error(tmp_path, GOOD.replace("replay_ratio", "replay_rattio"))
    assert message == (
        f"{tmp_path}/p.yaml:12: policies.0.action.overrides.replay_rattio: unknown key"
    )


@pytest.mark.parametrize(
    ("old", "new"), [("replay_fraction", "replay_ratio"), ("max_samples", "max_labels")]
)
def test_an_old_override_name_names_the_new_one(tmp_path, old, new):
    message = one_error(tmp_path, GOOD.replace("replay_ratio: 0.5", f"{old}: 5"))
    assert message == (
        f"{tmp_path}/p.yaml:12: policies.0.action.overrides.{old}: {old!r} is now called "
        f"{new!r} (one name with the setting retraining.{new}, which it overrides)"
    )


def test_the_old_names_are_not_in_the_schema():
    from adaptd.policy.schema import json_schema

    text = str(json_schema())
    assert "replay_fraction" not in text and "max_samples" not in text
    assert "replay_ratio" in text and "min_new_labels" in text and "retry_growth" in text


def test_retrain_waits_and_retries_are_validated(tmp_path):
    text = GOOD.replace(
        "      overrides:", "      min_new_labels: -1\n      retry_growth: 1\n      overrides:"
    )
    errors = load_policies([write(tmp_path, text)], CATALOG)[1]
    assert [(e.line, e.field) for e in errors] == [
        (11, "policies.0.action.min_new_labels"),
        (12, "policies.0.action.retry_growth"),
    ]
    assert "greater than 1" in errors[1].message


def test_a_bias_signal_of_an_unlisted_attribute_says_to_list_it(tmp_path):
    names = SignalNames(
        known={k: v for k, v in CATALOG.items() if not k.startswith("bias.gender.")},
        attributes=["region"],
        per_attribute=["bias.{attribute}.dp_diff", "bias.{attribute}.eo_diff"],
    )
    text = GOOD.replace("drift.embedding.auc", "bias.gender.dp_diff")
    (error,) = load_policies([write(tmp_path, text)], names)[1]
    assert str(error) == (
        f"{tmp_path}/p.yaml:4: policies.0.trip.signal: signal 'bias.gender.dp_diff' needs the "
        "request attribute 'gender' listed in the config key monitors.attributes "
        "(listed now: region)"
    )
    # a name that is no per-attribute signal keeps the plain message
    text = GOOD.replace("drift.embedding.auc", "bias.gender.dp_dif")
    (error,) = load_policies([write(tmp_path, text)], names)[1]
    assert "unknown signal 'bias.gender.dp_dif'" in error.message


def test_a_list_whose_items_all_failed_is_not_also_too_short(tmp_path):
    text = GOOD.replace(
        "      signal: drift.embedding.auc\n      gt: 0.7\n",
        "      any:\n        - signal: drift.embeding.auc\n          gt: 0.7\n",
    )
    errors = load_policies([write(tmp_path, text)], CATALOG)[1]
    assert [e.field for e in errors] == ["policies.0.trip.any.0.signal"]


def test_unknown_key_in_a_policy(tmp_path):
    message = one_error(tmp_path, GOOD.replace("for: 2", "fro: 2"))
    assert message == f"{tmp_path}/p.yaml:6: policies.0.fro: unknown key"


def test_yaml_syntax_error(tmp_path):
    message = one_error(tmp_path, GOOD.replace("gt: 0.7", "gt: [0.7"))
    assert message.startswith(f"{tmp_path}/p.yaml:")
    assert "YAML syntax error" in message


def test_empty_file(tmp_path):
    assert one_error(tmp_path, "") == f"{tmp_path}/p.yaml: file is empty"


def test_empty_policy_list(tmp_path):
    message = one_error(tmp_path, "policies: []\n")
    assert message.startswith(f"{tmp_path}/p.yaml:1: policies: ")


def test_top_level_must_be_a_mapping(tmp_path):
    assert "top level must be a mapping" in one_error(tmp_path, "- a\n- b\n")


def test_a_condition_without_a_kind(tmp_path):
    text = GOOD.replace("      signal: drift.embedding.auc\n      gt: 0.7\n", "      gt: 0.7\n")
    assert "policies.0.trip: a condition is a mapping with one of the keys all, any or signal" in (
        one_error(tmp_path, text)
    )


def test_a_comparison_that_compares_nothing(tmp_path):
    text = GOOD.replace("      gt: 0.7\n", "")
    assert "compares nothing" in one_error(tmp_path, text)


def test_for_and_n_of_m_exclude_each_other(tmp_path):
    text = GOOD.replace("for: 2", "for: 2\n    n_of_m: {n: 2, m: 3}")
    assert "give either 'for' or 'n_of_m'" in one_error(tmp_path, text)


def test_n_larger_than_m(tmp_path):
    text = GOOD.replace("for: 2", "n_of_m: {n: 4, m: 3}")
    assert "n (4) must not exceed m (3)" in one_error(tmp_path, text)


def test_duplicate_names_within_and_across_files(tmp_path):
    first = write(tmp_path, GOOD, "a.yaml")
    second = write(tmp_path, GOOD, "b.yaml")
    policies, errors = load_policies([first, second], CATALOG)
    assert [p.name for p in policies] == ["drift"]
    assert [str(e) for e in errors] == [
        f"{second}:2: policies.0.name: policy 'drift' is already defined in {first}"
    ]
    doubled = GOOD + GOOD.removeprefix("policies:\n")
    assert "duplicate policy name 'drift'" in one_error(tmp_path, doubled)


def test_missing_file(tmp_path):
    policies, errors = load_policies([tmp_path / "nope.yaml"], CATALOG)
    assert policies == []
    assert [str(e) for e in errors] == [f"{tmp_path}/nope.yaml: file not found"]


def test_every_error_of_a_file_is_reported(tmp_path):
    text = GOOD.replace("cooldown: 6h", "cooldown: -1h").replace("for: 2", "for: 0")
    _, errors = parse_policy_file(write(tmp_path, text), CATALOG)
    assert {e.field for e in errors} == {"policies.0.cooldown", "policies.0.for"}


def test_names_are_not_checked_without_a_catalog(tmp_path):
    text = GOOD.replace("drift.embedding.auc", "custom.signal")
    policies, errors = load_policies([write(tmp_path, text)], None)
    assert errors == []
    assert policies[0].signals == {"custom.signal"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("0", 0)],
)
def test_duration_forms(tmp_path, text, seconds):
    policies, errors = load_policies([write(tmp_path, GOOD.replace("6h", text))], CATALOG)
    assert errors == []
    assert policies[0].cooldown.total_seconds() == seconds


def test_a_clear_condition_overlapping_the_trip_is_refused(tmp_path):
    text = GOOD.replace(
        "    for: 2\n", "    clear:\n      signal: drift.embedding.auc\n      lt: 0.8\n"
    )
    message = one_error(tmp_path, text)
    assert message.startswith(f"{tmp_path}/p.yaml:2: policies.0: trip and clear overlap")


def test_a_clear_band_below_the_trip_is_hysteresis(tmp_path):
    text = GOOD.replace(
        "    for: 2\n", "    clear:\n      signal: drift.embedding.auc\n      lte: 0.7\n"
    )
    assert load_policies([write(tmp_path, text)], CATALOG)[1] == []
