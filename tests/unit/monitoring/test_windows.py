from __future__ import annotations

import numpy as np

from adaptd.datasets.records import Example
from adaptd.monitoring.windows import attach_labels, build_window, decode_embedding
from adaptd.storage.records import LabelledPrediction, PredictionRecord
from tests.unit.monitoring.factory import LABELS, NOW, records


def _prediction(i: int, **kw: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "id": f"p{i}",
        "ts": NOW,
        "adapter": "v1",
        "text": f"text {i}",
        "text_hash": "h",
        "label": "positive",
        "score": 0.9,
        "probabilities": {"negative": 0.1, "positive": 0.9},
    }
    fields.update(kw)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


def test_float16_embedding_round_trips_as_serving_stores_it() -> None:
    vec = np.array([0.5, -1.25, 3.0])
    decoded = decode_embedding(np.asarray(vec, dtype=np.float16).tobytes())
    assert decoded is not None
    np.testing.assert_allclose(decoded, vec)
    assert decode_embedding(None) is None
    assert decode_embedding(b"\x00\x01\x02") is None  # odd length: not float16


def test_window_masks_rows_by_what_they_carry() -> None:
    rows = [
        _prediction(0),
        LabelledPrediction(
            prediction=_prediction(1, label="negative"), true_label="positive", feedback_ts=NOW
        ),
        Example(text="validation text", label="negative"),
    ]
    w = build_window(rows, LABELS)
    assert w.n == 3 and w.n_predictions == 2 and w.n_labelled == 1
    assert list(w.predicted) == [1, 0, -1]
    assert list(w.y_true) == [-1, 1, 0]
    assert np.isnan(w.probabilities[2]).all()
    assert w.embeddings is None


def test_unknown_labels_are_counted_not_guessed() -> None:
    w = build_window([_prediction(0, label="neutral")], LABELS)
    assert w.unknown_labels == {"neutral": 1}
    assert w.predicted[0] == -1


def test_embeddings_of_another_width_become_missing_rows() -> None:
    rows = [
        _prediction(0, embedding=np.zeros(4, dtype=np.float16).tobytes()),
        _prediction(1, embedding=np.zeros(4, dtype=np.float16).tobytes()),
        _prediction(2, embedding=np.zeros(3, dtype=np.float16).tobytes()),
    ]
    w = build_window(rows, LABELS)
    assert w.embeddings is not None and w.embeddings.shape == (3, 4)
    assert len(w.embedding_rows()) == 2


def test_attach_labels_joins_feedback_by_id_in_prediction_order() -> None:
    rows = records(10, seed=3, labelled=1.0)
    labelled = [r for r in rows if isinstance(r, LabelledPrediction)][::2]
    plain = [r.prediction if isinstance(r, LabelledPrediction) else r for r in rows]
    joined = attach_labels(plain, labelled)
    assert [r.prediction.id if isinstance(r, LabelledPrediction) else r.id for r in joined] == [
        p.id for p in plain
    ]
    assert sum(isinstance(r, LabelledPrediction) for r in joined) == len(labelled)


def test_cut_texts_cuts_every_text_before_any_monitor_tokenizes_it() -> None:
    from adaptd.monitoring.windows import cut_texts

    rows = [_prediction(0, text="x" * 50), _prediction(1, text=None), _prediction(2, text="short")]
    window = build_window(rows, LABELS)
    cut = cut_texts(window, 10)
    assert cut.texts == ("x" * 10, None, "short")
    np.testing.assert_array_equal(cut.probabilities, window.probabilities)
    assert cut_texts(window, 50) is window  # nothing to cut: no copy
