"""Every signal name a monitor can emit. Policies validate their conditions against this catalog,
so names are dotted, stable and documented here rather than scattered through the detectors."""

from __future__ import annotations

from collections.abc import Sequence

from adaptd.datasets.descriptors import TEXT_DESCRIPTORS
from adaptd.signals import SignalSpec

_UNIT = (0.0, 1.0)


def _spec(
    name: str, description: str, *, worse_up: bool = True, bounds: tuple[float, float] | None = None
) -> SignalSpec:
    return SignalSpec(name=name, description=description, higher_is_worse=worse_up, bounds=bounds)


def known_signals(attributes: Sequence[str], labels: Sequence[str]) -> dict[str, SignalSpec]:
    """The catalog for a deployment with these bias ``attributes`` and model ``labels``."""
    specs = [
        _spec(
            "drift.text.share", "share of text descriptors whose distribution drifted", bounds=_UNIT
        ),
        *(
            _spec(
                f"drift.text.{name}",
                f"drift statistic of the {what} distribution (Evidently's per-column rule)",
            )
            for name, what in TEXT_DESCRIPTORS.items()
        ),
        _spec(
            "drift.embedding.share",
            "share of reference-PCA dimensions of the pooled embedding whose KS test rejects "
            "after multiple-testing correction",
            bounds=_UNIT,
        ),
        _spec(
            "drift.embedding.auc",
            "ROC-AUC of a classifier telling reference from current embeddings (0.5 = no drift)",
            bounds=_UNIT,
        ),
        _spec(
            "drift.prediction.jsd",
            "Jensen-Shannon distance of predicted-label shares",
            bounds=_UNIT,
        ),
        _spec("drift.prediction.psi", "population stability index of predicted-label shares"),
        _spec(
            "drift.prediction.chi2_p",
            "chi-square p-value of predicted-label counts against reference shares",
            worse_up=False,
            bounds=_UNIT,
        ),
        _spec(
            "drift.confidence.wasserstein",
            "normalized Wasserstein distance of top-class confidence",
        ),
        _spec("drift.entropy.wasserstein", "normalized Wasserstein distance of predictive entropy"),
        _spec(
            "performance.accuracy", "accuracy on labelled feedback", worse_up=False, bounds=_UNIT
        ),
        _spec(
            "performance.macro_f1",
            "macro-averaged F1 on labelled feedback",
            worse_up=False,
            bounds=_UNIT,
        ),
        _spec("performance.ece", "expected calibration error on labelled feedback", bounds=_UNIT),
        *(
            _spec(
                f"performance.recall.{label}",
                f"recall of class {label!r} on labelled feedback",
                worse_up=False,
                bounds=_UNIT,
            )
            for label in labels
        ),
        _spec(
            "performance.estimated_accuracy",
            "accuracy estimated without labels from confidence calibrated on reference labels "
            "(as NannyML's CBPE)",
            worse_up=False,
            bounds=_UNIT,
        ),
        _spec(
            "concept.error_rate",
            "error rate of the labelled stream in the current window",
            bounds=_UNIT,
        ),
        _spec(
            "concept.drift",
            "1.0 when ADWIN found a change in the labelled error stream in the window, else 0.0",
            bounds=_UNIT,
        ),
        _spec(
            "bias.counterfactual.flip_rate",
            "share of probed texts whose prediction flips when a term of a configured pair is "
            "swapped",
            bounds=_UNIT,
        ),
    ]
    for attr in attributes:
        specs += [
            _spec(
                f"bias.{attr}.dp_diff",
                f"demographic parity difference across {attr!r} groups (Fairlearn's definition)",
                bounds=_UNIT,
            ),
            _spec(
                f"bias.{attr}.eo_diff",
                f"equalized odds difference across {attr!r} groups (Fairlearn's definition)",
                bounds=_UNIT,
            ),
            _spec(
                f"bias.{attr}.accuracy_diff",
                f"largest accuracy gap between {attr!r} groups",
                bounds=_UNIT,
            ),
        ]
    return {s.name: s for s in specs}
