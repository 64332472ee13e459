"""The demo's domain shift through the real retrain job: a movies adapter meets tweets.

1. first adapter: ``RetrainJob`` on Rotten Tomatoes snippets (fresh LoRA, absolute gates);
2. incremental: ``RetrainJob`` on tweet labels, warm-started, with movie replay from the reservoir;
3. oracle: a fresh LoRA trained offline on all training tweets (no movies), same settings;
4. a deliberately bad candidate: tweet labels shuffled, must be rejected by the gates.
Accuracies are measured on fixed test splits of both domains that no run trained on.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tests.unit.retraining.store_registry import StoreRegistry

from adaptd.config import Settings
from adaptd.datasets import demo
from adaptd.datasets.records import Example
from adaptd.retraining.executors import LocalExecutor
from adaptd.retraining.job import RetrainJob, RetrainRequest
from adaptd.retraining.scoring import score_champion
from adaptd.retraining.settings import RetrainingSettings, ValidationSettings
from adaptd.retraining.spec import TrainSpec
from adaptd.retraining.trainer import train, write_train_file
from adaptd.serving.settings import ModelSettings
from adaptd.storage import migrate
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine

LABELS = ("negative", "positive")


def accuracy(base: str, adapter: str, examples: list[Example], max_length: int) -> float:
    preds = score_champion(
        base, LABELS, Path(adapter), {"x": [e.text for e in examples]}, max_length=max_length
    )["x"]
    return sum(LABELS[p] == e.label for p, e in zip(preds, examples, strict=True)) / len(examples)


def run(
    base: str,
    work: Path,
    *,
    movies_train: int,
    tweets_train: int,
    test: int,
    epochs: int,
    threads: int,
    max_length: int,
) -> dict[str, Any]:
    movies = list(demo.rotten_tomatoes())
    movie_test, movie_train = movies[:test], movies[test : test + movies_train]
    tweets = list(demo.tweets())
    tweet_test, tweet_train = tweets[:test], tweets[test : test + tweets_train]

    (work / "state").mkdir(parents=True)
    engine = make_engine(f"sqlite:///{work / 'state' / 'adaptd.db'}")
    migrate.upgrade(engine)
    registry = StoreRegistry(engine, work / "adapters")
    (work / "adapters").mkdir()
    retraining = RetrainingSettings(
        epochs=epochs,
        learning_rate=3e-3,
        threads=threads,
        max_length=max_length,
        min_labels=20,
        replay_ratio=0.5,
        early_stopping_patience=None,
    )
    settings = Settings(
        state_dir=work / "state",
        model=ModelSettings(base=base, max_length=max_length),
        retraining=retraining,
        validation=ValidationSettings(golden_size=100),
    )
    job = RetrainJob(settings, engine, registry, executor=LocalExecutor())
    first = job.run(RetrainRequest(reason="movies", examples=movie_train))
    out: dict[str, Any] = {"first": {"status": first.status, "reason": first.reason}}
    if first.candidate is None:
        return out
    first_dir = repo.get_adapter(engine, first.candidate).path
    out["movies_adapter"] = {
        "movies_acc": accuracy(base, first_dir, movie_test, max_length),
        "tweets_acc": accuracy(base, first_dir, tweet_test, max_length),
        "duration_s": first.duration_s,
    }

    incremental = job.run(RetrainRequest(reason="tweets", examples=tweet_train))
    out["incremental"] = {
        "status": incremental.status,
        "reason": incremental.reason,
        "duration_s": incremental.duration_s,
        "data": incremental.details.get("data"),
    }
    if incremental.candidate is not None:
        path = repo.get_adapter(engine, incremental.candidate).path
        out["incremental"]["movies_acc"] = accuracy(base, path, movie_test, max_length)
        out["incremental"]["tweets_acc"] = accuracy(base, path, tweet_test, max_length)

    write_train_file(
        work / "oracle" / "train.jsonl", [(e.text, e.label or "", 1.0) for e in tweet_train]
    )
    oracle = train(
        TrainSpec(
            base=base,
            contrastive="off",  # the fine-tune alone (stage: bench.adaptation.contrastive)
            labels=LABELS,
            train_file=str(work / "oracle" / "train.jsonl"),
            out_dir=str(work / "oracle" / "adapter"),
            progress_file=str(work / "oracle" / "progress.jsonl"),
            epochs=epochs,
            learning_rate=3e-3,
            max_length=max_length,
            threads=threads,
            early_stopping_patience=None,
        ),
        lambda p: None,
    )
    out["oracle"] = {
        "tweets_acc": accuracy(base, oracle.adapter_dir, tweet_test, max_length),
        "movies_acc": accuracy(base, oracle.adapter_dir, movie_test, max_length),
    }

    rng = random.Random(5)
    shuffled_labels = [e.label for e in tweet_train]
    rng.shuffle(shuffled_labels)
    shuffled = [
        Example(text=e.text + " .", label=lb, attributes=e.attributes)
        for e, lb in zip(tweet_train, shuffled_labels, strict=True)
    ]
    bad = job.run(RetrainRequest(reason="shuffled labels", examples=shuffled))
    out["shuffled"] = {"status": bad.status, "reason": bad.reason}
    engine.dispose()
    return out
