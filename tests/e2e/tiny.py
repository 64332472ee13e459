"""What the e2e tests that run the whole loop on a tiny model share: its settings and gates.

The base is a 2-layer random BERT with each domain's sentiment words planted on an axis of
their own (:func:`tests.unit.retraining.synthetic.cued_tiny_model`, the ``tiny_base`` fixture of
tests/e2e/conftest.py). On a wholly random BERT these tests needed a recipe of their own (CLS
pooler, q/v LoRA at 2e-2, 20 epochs) and still went red on a new CI machine's CPU, because
whether a few epochs learnt domain b's keywords was up to float rounding. On the cued base the
shipped recipe learns them, so the loop is tested with the defaults a user gets: only the
sizes below are the test's.
"""

from __future__ import annotations

from typing import Any

#: 32 tokens hold a keyword sentence; the pooling is the shipped ``auto`` (mean, for a BERT
#: without a pooling config).
MODEL: dict[str, Any] = {"max_length": 32}

#: The shipped recipe; a retrain may start from 20 labels, and judges on 20 held-out rows.
RETRAINING: dict[str, Any] = {"min_labels": 20, "min_holdout": 20, "threads": 1}

#: A retrain after the shift scores 0.9-1.0 on the shifted rows against the champion's ~0.6 (by
#: construction of the base: the first adapter reads domain b's words at chance); noise scores
#: ~0.5 and ``min_gain`` 0 keeps out whatever is not surely better.
GATES: list[dict[str, Any]] = [
    {"metric": "accuracy", "slice": "recent", "min": 0.6, "min_gain": 0.0},
    {"metric": "accuracy", "slice": "golden", "max_drop": 0.05},
]
