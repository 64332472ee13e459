from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from adaptd.evaluation.measures import ece, macro_f1
from adaptd.monitoring.detectors.performance import performance
from adaptd.signals import Status
from tests.unit.monitoring.factory import by_name, context, window


def test_matches_scikit_learn() -> None:
    cur = window(800, seed=2, error_rate=0.2)
    s = by_name(performance(context(), window(800, seed=1), cur))
    mask = cur.labelled
    y_true, y_pred = cur.y_true[mask], cur.predicted[mask]
    assert s["performance.accuracy"].value == pytest.approx(accuracy_score(y_true, y_pred))
    assert s["performance.macro_f1"].value == pytest.approx(
        f1_score(y_true, y_pred, average="macro")
    )
    rec = recall_score(y_true, y_pred, average=None)
    assert s["performance.recall.negative"].value == pytest.approx(rec[0])
    assert s["performance.recall.positive"].value == pytest.approx(rec[1])


def test_macro_f1_one_class_matches_scikit_learn() -> None:
    y_true = np.array([1, 1, 1, 1])
    y_pred = np.array([1, 0, 1, 1])
    assert macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_ece_golden() -> None:
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    y = np.array([1, 0, 0, 1])
    # bins (10): 0.9 -> correct; 0.8 -> wrong; 0.6 -> correct; 0.55 -> correct
    expected = 0.25 * (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.6) + abs(1 - 0.55))
    assert ece(probs, y, 10) == pytest.approx(expected)


def test_accuracy_drop_is_drift_with_reference_value() -> None:
    s = by_name(
        performance(
            context(), window(800, seed=1, error_rate=0.1), window(800, seed=2, error_rate=0.3)
        )
    )
    acc = s["performance.accuracy"]
    assert acc.status is Status.DRIFT
    assert acc.reference_value == pytest.approx(0.9, abs=0.03)
    same = by_name(performance(context(), window(800, seed=1), window(800, seed=2)))
    assert same["performance.accuracy"].status is Status.OK


def test_missing_class_recall_is_insufficient_not_zero() -> None:
    s = by_name(
        performance(
            context(), window(400, seed=1), window(400, seed=2, positive_share=1.0, error_rate=0.0)
        )
    )
    assert s["performance.recall.negative"].status is Status.INSUFFICIENT_DATA
    assert s["performance.recall.positive"].value == 1.0


def test_no_labels_no_verdict() -> None:
    signals = performance(context(), window(400, seed=1), window(400, seed=2, labelled=0.0))
    assert {x.status for x in signals} == {Status.INSUFFICIENT_DATA}
    assert all(x.n_current == 0 for x in signals)
