"""``python -m bench.adaptation.probe [--draws 20]``: can the linear probe's regularization or a
smaller carve-out lift a first adapter trained on a few hundred rows?

The first adapter of the demo's shift (``tweets-to-movies``) trains on the 326 source tweets
less its golden set, holdout and dev rows (about 211 fitted, 234 with dev). Its kept checkpoint
on such sets is the linear probe (RESULTS.md), i.e. a logistic regression on frozen mean-pooled
MiniLM features, the same model as the feature-extraction peer. Here that regression is fitted
on random subsets of the 326 rows of each size (``--draws`` draws each) with several C (the
probe's ``retraining.probe_c``) and scored on the shift's 136 held-out tweets; embeddings come
from the gates bench's cache (``bench/adaptation/embeddings.py``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from adaptd.datasets import demo
from bench.adaptation.embeddings import domain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adaptation.probe", description=__doc__)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--sizes", default="211,234,290,326")
    parser.add_argument("--c", default="0.1,0.3,1,3")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
