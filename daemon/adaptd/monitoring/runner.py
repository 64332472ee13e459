"""One monitoring pass: every detector over a reference and a current window. Pure: the caller
passes the windows, the settings, ``now`` and (optionally) the model's tokenizer and predict."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from adaptd.datasets.descriptors import Tokenizer
from adaptd.monitoring.catalog import known_signals
from adaptd.monitoring.detectors import (
    bias,
    cbpe,
    concept,
    counterfactual,
    embedding,
    performance,
    prediction,
    text,
)
from adaptd.monitoring.detectors.base import CheckContext, error
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal

logger = logging.getLogger(__name__)


def run_checks(
    reference: Window,
    current: Window,
    settings: MonitorsSettings,
    *,
    now: datetime,
    tokenizer: Tokenizer | None = None,
    predict: counterfactual.Predict | None = None,
) -> list[Signal]:
    """Every signal of the catalog that applies, each with its own status and sample sizes.

    A detector that fails unexpectedly yields ERROR signals for its names (with the exception in
    details) instead of stopping the pass: one broken monitor must not silence the others.
    """
    ctx = CheckContext(now=now, settings=settings, adapter=current.adapter or reference.adapter)
    catalog = known_signals(settings.attributes, current.labels)
    steps: list[tuple[str, Callable[[], list[Signal]]]] = [
        ("drift.text.", lambda: text.text_drift(ctx, reference, current, tokenizer)),
        ("drift.embedding.", lambda: embedding.embedding_drift(ctx, reference, current)),
        (
            "drift.prediction.|drift.confidence.|drift.entropy.",
            lambda: prediction.prediction_drift(ctx, reference, current),
        ),
        (
            "performance.estimated_accuracy",
            lambda: cbpe.estimated_accuracy(ctx, reference, current),
        ),
        ("performance.", lambda: performance.performance(ctx, reference, current)),
        ("concept.", lambda: concept.concept_drift(ctx, reference, current)),
        ("bias.", lambda: bias.bias(ctx, current)),
        ("bias.counterfactual.", lambda: counterfactual.flip_rate(ctx, current.texts, predict)),
    ]
    signals: list[Signal] = []
    for prefixes, step in steps:
        try:
            signals += step()
        except Exception as e:  # a detector bug must become a signal, not a dead control loop
            logger.exception("monitor %s failed", prefixes)
            names = _names_for(prefixes.split("|"), catalog, signals)
            reason = f"monitor failed: {type(e).__name__}: {e}"
            signals += [
                error(ctx, n, reason, n_reference=reference.n, n_current=current.n) for n in names
            ]
    if reference.origin is not None:
        # Which data the reference is (validation rows or first live predictions) decides how
        # to read every relative signal, so each one says it.
        signals = [
            replace(s, details={**s.details, "reference": reference.origin}) for s in signals
        ]
    return signals


def _names_for(
    prefixes: Sequence[str], catalog: Mapping[str, object], done: Sequence[Signal]
) -> list[str]:
    seen = {s.name for s in done}
    return [n for n in catalog if any(n.startswith(p) for p in prefixes) and n not in seen]
