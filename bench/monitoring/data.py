"""Bench data: real texts from the demo datasets, a cheap real classifier, windows from arrays.

Embeddings are a deterministic stand-in for the pooled MiniLM embedding: hashed bag-of-words
vectors (384 dimensions, like MiniLM) — running MiniLM over 200k texts on 2 shared cores would take
tens of minutes. The classifier is a logistic regression on those vectors trained on movie
reviews, so probabilities, confidences and errors under the shift to tweets are real.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

from adaptd.datasets.demo import LABELS, rotten_tomatoes, split, tweets
from adaptd.datasets.records import Example
from adaptd.monitoring.windows import Window

DIM = 384


@dataclass(frozen=True)
class Scenario:
    vectorizer: HashingVectorizer
    model: LogisticRegression
    movies_train: list[Example]
    movies_test: list[Example]
    tweets: list[Example]


def scenario() -> Scenario:
    train, test = split(rotten_tomatoes(), (0.6, 0.4), seed=0)
    vectorizer = HashingVectorizer(n_features=DIM, alternate_sign=True, norm="l2")
    x = vectorizer.transform([e.text for e in train])
    y = np.array([LABELS.index(e.label or "negative") for e in train])
    model = LogisticRegression(max_iter=500).fit(x, y)
    return Scenario(vectorizer, model, train, test, list(tweets()))


def window_of(s: Scenario, examples: Sequence[Example], *, labelled: bool = True) -> Window:
    texts = [e.text for e in examples]
    x = s.vectorizer.transform(texts)
    probs = s.model.predict_proba(x)
    n = len(texts)
    y_true = np.array([LABELS.index(e.label) if labelled and e.label else -1 for e in examples])
    return Window(
        labels=LABELS,
        texts=tuple(texts),
        probabilities=probs,
        has_prediction=np.ones(n, dtype=bool),
        predicted=probs.argmax(axis=1).astype(np.int64),
        y_true=y_true.astype(np.int64),
        embeddings=np.asarray(x.toarray(), dtype=np.float32),
        attributes=tuple(dict(e.attributes) for e in examples),
        adapter="bench",
    )


def sample(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    rng = np.random.default_rng(seed)
    return [examples[i] for i in rng.integers(0, len(examples), n)]
