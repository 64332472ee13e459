"""``python -m bench.adaptation.probe [--draws 20]``: can the linear probe's regularization or a
smaller carve-out lift a first adapter trained on a few hundred rows?

The first adapter of the demo's shift (``tweets-to-movies``) trains on the 326 source tweets
less its golden set, holdout and dev rows (about 211 fitted, 234 with dev). Its kept checkpoint
on such sets is the linear probe (RESULTS.md), i.e. a logistic regression on frozen mean-pooled
MiniLM features, the same model as the feature-extraction peer. Here that regression is fitted
on random subsets of the 326 rows of each size (``--draws`` draws each) with several C (the
probe's ``retraining.probe_c``) and scored on the shift's 136 held-out tweets; embeddings come
from the gates bench's cache (``bench/adaptation/embeddings.py``).

``--after-shift [--base PATH]``: the probe alone after the shift, on exactly the rows of the retrain
bench's draws (``bench/adaptation/retrain.py``: ``--new-labels`` movie labels of each of
``--draws`` draws, assembled by the job's own :func:`assemble` with the first adapter's rows
replayed, weighted as the trainer weights them), on the frozen features of the base as the
daemon pools them (last token for a decoder), scored on the 1,000 held-out movie snippets and
136 tweets: what feature extraction alone would serve after the shift, for each C, beside what
the retrain bench's fine-tunes scored on the same rows. The ``first`` row is the first adapter's
own rows (the source tweets less golden, holdout and dev). ``--c`` may list ``cv`` and
``cv-loss``: C chosen per draw by 5-fold cross-validation on the training rows
(:func:`adaptd.modeling.probe.cross_validate_c`, by accuracy or by loss), with the C chosen shown.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Literal

import numpy as np

from adaptd.datasets import demo
from bench.adaptation.embeddings import domain

if TYPE_CHECKING:
    from adaptd.retraining.dataset import TrainingSet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adaptation.probe", description=__doc__)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--sizes", default="211,234,290,326")
    parser.add_argument("--c", default="0.1,0.3,1,3")
    parser.add_argument(
        "--after-shift",
        action="store_true",
        help="the probe on the retrain bench's rows after the demo's shift (see above)",
    )
    parser.add_argument("--base", default=None, help="model.base for --after-shift")
    parser.add_argument("--new-labels", type=int, default=240, help="--after-shift: per draw")
    args = parser.parse_args(argv)
    if args.after_shift:
        return after_shift(args)
    from sklearn.linear_model import LogisticRegression

    x, y, examples = domain("tweets")
    index = {e.text: i for i, e in enumerate(examples)}
    train, _, holdout = demo.split(examples, (0.6, 0.15, 0.25), seed=11)
    rows = np.array([index[e.text] for e in train])
    held = np.array([index[e.text] for e in holdout])
    rng = np.random.default_rng(0)
    print(f"source tweets {len(rows)}, held out {len(held)}; mean held-out accuracy +- sd")  # noqa: T201
    print("| rows | " + " | ".join(f"C={c}" for c in args.c.split(",")) + " |")  # noqa: T201
    print("|---:|" + "---:|" * len(args.c.split(",")))  # noqa: T201
    for n in [int(v) for v in args.sizes.split(",")]:
        cells = []
        for c in [float(v) for v in args.c.split(",")]:
            draws = 1 if n >= len(rows) else args.draws
            scores = []
            for _ in range(draws):
                subset = rows if n >= len(rows) else rng.choice(rows, n, replace=False)
                clf = LogisticRegression(C=c, max_iter=3000).fit(x[subset], y[subset])
                scores.append(clf.score(x[held], y[held]))
            cells.append(f"{100 * np.mean(scores):.1f} +- {100 * np.std(scores):.1f}")
        print(f"| {n} | " + " | ".join(cells) + " |")  # noqa: T201
    return 0


def after_shift(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sklearn.linear_model import LogisticRegression

    from adaptd.demo.shifts import tweets_to_movies
    from adaptd.modeling.base import resolve_base
    from adaptd.modeling.probe import best_c
    from adaptd.retraining.dataset import AssemblySpec, assemble
    from bench.adaptation.embeddings import daemon_features

    base = resolve_base(args.base)
    shift = tweets_to_movies()
    # As bench/adaptation/retrain.py: 10 % golden (at least 30), the newest 20 % held out.
    golden = list(shift.source_train[: max(30, len(shift.source_train) // 10)])
    spec = AssemblySpec(labels=demo.LABELS, min_holdout=30, holdout_fraction=0.2)
    first = assemble(list(shift.source_train), [], spec, exclude=golden)
    tests = {"movies": shift.target_holdout, "tweets": shift.source_holdout}
    held = {
        k: (daemon_features(base, [e.text for e in v]), [e.label for e in v])
        for k, v in tests.items()
    }
    cs = args.c.split(",")
    print(f"{base}: held-out accuracy, movies / tweets")  # noqa: T201
    print("| draw | rows | " + " | ".join(f"C={c}" for c in cs) + " |")  # noqa: T201
    print("|---:|---:|" + "---:|" * len(cs))  # noqa: T201
    draws: list[tuple[str, TrainingSet]] = [("first", first)]
    for draw in range(args.draws):
        pool = shift.target_live[draw * args.new_labels : (draw + 1) * args.new_labels]
        data = assemble(list(pool), list(first.train), replace(spec, seed=draw), exclude=golden)
        draws.append((str(draw), data))
    for name, data in draws:
        x = daemon_features(base, [e.text for e in data.train])
        y = [e.label for e in data.train]
        weights = np.asarray(data.weights)
        # one cross-validation per draw, read by both criteria
        scores = cross_validated(x, y, weights) if any(c.startswith("cv") for c in cs) else {}
        cells = []
        for c in cs:
            by: Literal["accuracy", "loss"] = "loss" if c == "cv-loss" else "accuracy"
            chosen = best_c(scores, by=by) if c.startswith("cv") else float(c)
            clf = LogisticRegression(C=chosen, max_iter=5000).fit(x, y, sample_weight=weights)
            cell = " / ".join(f"{100 * clf.score(*held[k]):.1f}" for k in tests)
            cells.append(f"{cell} ({chosen:g})" if c.startswith("cv") else cell)
        print(f"| {name} | {len(y)} | " + " | ".join(cells) + " |")  # noqa: T201
    return 0


def cross_validated(
    x: np.ndarray, y: list[str | None], weights: np.ndarray
) -> dict[float, tuple[float, float]]:
    """The daemon's cross-validation of the probe's C on these rows: ``{c: (accuracy, loss)}``."""
    import torch

    from adaptd.modeling.probe import cross_validate_c

    index: dict[str | None, int] = {label: i for i, label in enumerate(demo.LABELS)}
    return cross_validate_c(
        torch.from_numpy(x),
        torch.tensor([index[v] for v in y]),
        torch.from_numpy(weights.astype(np.float32)),
        num_labels=len(demo.LABELS),
    )


if __name__ == "__main__":
    sys.exit(main())
