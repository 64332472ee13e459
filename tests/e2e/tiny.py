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

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from adaptd.config import Settings
from adaptd.modeling.base import inspect_base
from adaptd.retraining.executors import LocalExecutor
from adaptd.retraining.job import RetrainJob, RetrainRequest
from adaptd.retraining.registry_port import AdaptersRegistry
from adaptd.service import RunState, Service
from tests.unit.retraining.synthetic import keyword_examples
from tests.unit.serving.helpers import settings_for, store_for

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


def promote_first_adapter(settings: Settings, engine: Engine, base: Path) -> None:
    """Train the first adapter on ``base`` from 500 labelled rows of domain a, as an operator's
    ``adaptd retrain --from-file`` would, and check it was promoted."""
    info = inspect_base(str(base), settings.model.labels, pooling=settings.model.pooling)
    first = RetrainJob(
        settings,
        engine,
        AdaptersRegistry(engine=engine, adapters_dir=settings.adapters_dir, base=info),
        executor=LocalExecutor(poll_s=0.05),
    ).run(RetrainRequest(reason="initial", examples=keyword_examples(500)))
    assert first.status == "promoted", first.reason


@contextmanager
def running_daemon(base: Path, tmp_path: Path, policies: str, **sections: Any) -> Iterator[Service]:
    """A daemon on ``base`` with ``policies`` (a policy file's text), its first adapter trained
    and promoted from 500 labelled rows of domain a, started; stopped on leaving.

    ``sections`` replace whole sections of the settings below (``retraining``, ``monitors``...).
    Checks run when a test calls them (``control.loop.run_check_once``), not on a timer.
    """
    policy = tmp_path / "policy.yaml"
    policy.write_text(policies)
    defaults: dict[str, Any] = {
        "model": MODEL,
        "server": {"max_inputs": 64},
        "policies": [policy],
        "scheduler": {"check_interval_s": 3600.0, "check_on_start": False},
        "monitors": {"min_samples": 50, "current_window": 300, "reference_window": 200},
        "retraining": RETRAINING,
        "validation": {"golden_size": 100, "gates": GATES},
    }
    settings = settings_for(tmp_path / "state", base, **{**defaults, **sections})
    engine = store_for(settings)
    promote_first_adapter(settings, engine, base)
    engine.dispose()
    service = Service(settings=settings)
    service.startup()
    try:
        yield service
    finally:
        if service.state not in (RunState.STOPPED, RunState.CREATED):
            service.handle_term()
            service.shutdown()
