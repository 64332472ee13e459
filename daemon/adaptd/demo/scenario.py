"""``adaptd demo``: a sentiment adapter trained on movie-review snippets meets tweets.

1. Train the first adapter on Rotten Tomatoes snippets (LoRA on the shipped MiniLM).
2. Start the daemon (real HTTP on 127.0.0.1) with the demo policy.
3. Replay held-out movie snippets with feedback: the reference traffic. A check finds no shift.
4. Replay tweets (with a gender attribute) with feedback: accuracy falls, embeddings drift.
5. A check trips the policy: retrain on the feedback plus replay, validate against the champion,
   promote and hot-swap, all while the daemon keeps serving.
6. Replay held-out tweets and movie snippets on the new adapter: accuracy on both domains.
7. Write an Evidently drift report; print the events.

Sizes are chosen for two CPU cores (a few minutes); ``quick`` shrinks them for smoke runs.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from adaptd.config import Settings
from adaptd.datasets import demo as data
from adaptd.demo.traffic import replay
from adaptd.errors import AdaptdError
from adaptd.modeling.base import inspect_base, resolve_base
from adaptd.retraining.job import RetrainJob, RetrainRequest
from adaptd.retraining.registry_port import AdaptersRegistry
from adaptd.service import Service
from adaptd.storage import migrate
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    first_training: int
    movie_traffic: int
    tweet_traffic: int
    tweet_holdout: int
    movie_holdout: int
    epochs: int

    @classmethod
    def for_run(cls, quick: bool) -> Sizes:
        if quick:
            return cls(
                first_training=800,
                movie_traffic=250,
                tweet_traffic=250,
                tweet_holdout=120,
                movie_holdout=120,
                epochs=3,
            )
        return cls(
            first_training=1500,
            movie_traffic=600,
            tweet_traffic=380,
            tweet_holdout=163,
            movie_holdout=400,
            epochs=3,
        )


@dataclass(slots=True)
class DemoResult:
    first_adapter: str = ""
    final_adapter: str = ""
    movie_accuracy_first: float | None = None
    tweet_accuracy_first: float | None = None
    tweet_accuracy_final: float | None = None
    movie_accuracy_final: float | None = None
    tripped: bool = False
    retrain_status: str | None = None
    report: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def demo_settings(state_dir: Path, port: int, sizes: Sizes) -> Settings:
    policy = state_dir / "demo-policy.yaml"
    policy.write_text(resources.files("adaptd.demo").joinpath("policy.yaml").read_text())
    return Settings(
        state_dir=state_dir,
        server={"host": "127.0.0.1", "port": port, "max_inputs": 64},
        model={"max_length": 64},
        serving={"registry_poll_s": 1.0},
        scheduler={"check_interval_s": 3600.0},
        monitors={
            "min_samples": 100,
            "reference_window": sizes.movie_traffic // 2,
            "current_window": sizes.tweet_traffic,
            "attributes": ["gender"],
        },
        retraining={
            "epochs": sizes.epochs,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "max_length": 64,
            "min_labels": 50,
        },
        policies=[policy],
        # The demo narrates on stdout; the daemon's own log stays quiet unless it must speak.
        logging={"level": "WARNING"},
    )


def run_demo(
    state_dir: Path,
    *,
    port: int = 0,
    quick: bool = False,
    say: Callable[[str], None] = print,
    keep_serving: Callable[[Service], None] | None = None,
) -> DemoResult:
    sizes = Sizes.for_run(quick)
    if state_dir.exists():
        shutil.rmtree(state_dir)
    (state_dir / "adapters").mkdir(parents=True)
    settings = demo_settings(state_dir.resolve(), port, sizes)
    result = DemoResult()

    movies = data.rotten_tomatoes()
    tweets = data.tweets()
    first_train = list(movies[: sizes.first_training])
    movie_live = list(movies[sizes.first_training : sizes.first_training + sizes.movie_traffic])
    movie_holdout = list(movies[-sizes.movie_holdout :])
    tweet_live = list(tweets[: sizes.tweet_traffic])
    tweet_holdout = list(tweets[-sizes.tweet_holdout :])

    engine = make_engine(settings.store_url)
    migrate.upgrade(engine)

    say(f"1/6 training the first adapter on {len(first_train)} movie snippets (LoRA, MiniLM)")
    started = time.perf_counter()
    base = inspect_base(resolve_base(None), settings.model.labels, pooling=settings.model.pooling)
    registry = AdaptersRegistry(engine=engine, adapters_dir=settings.adapters_dir, base=base)
    first = RetrainJob(settings, engine, registry).run(
        RetrainRequest(reason="demo: first adapter from movie reviews", examples=first_train)
    )
    result.timings["first_training_s"] = time.perf_counter() - started
    if first.status != "promoted":
        raise AdaptdError(f"demo: the first adapter was not promoted: {first.reason}")
    result.first_adapter = first.candidate or ""
    say(f"    adapter {result.first_adapter[:12]} promoted ({first.reason})")
    engine.dispose()

    service = Service(settings=settings)
    service.startup()
    try:
        assert service.control is not None and service.engine is not None
        url = f"http://127.0.0.1:{service.http_port}"
        say(f"2/6 daemon serving on {url} (try {url}/v1/status or {url}/metrics)")

        say(f"3/6 replaying {len(movie_live)} movie snippets with feedback")
        stats = replay(url, movie_live, send_feedback=True, id_prefix="movies")
        result.movie_accuracy_first = stats.accuracy
        say(f"    accuracy on movies: {_pct(stats.accuracy)}")
        outcome = service.control.loop.run_check_once(datetime.now(UTC))
        say("    check: " + _signals_line(outcome.signals))

        say(f"4/6 replaying {len(tweet_live)} tweets with feedback (the world moves)")
        stats = replay(url, tweet_live, send_feedback=True, id_prefix="tweets")
        result.tweet_accuracy_first = stats.accuracy
        say(f"    accuracy on tweets: {_pct(stats.accuracy)}")

        say("5/6 monitoring check")
        outcome = service.control.loop.run_check_once(datetime.now(UTC))
        say("    check: " + _signals_line(outcome.signals))
        for decision in outcome.decisions:
            say(f"    policy {decision.policy}: {decision.kind.value}: {decision.message}")
        result.tripped = any(d.kind.value == "action" for d in outcome.decisions)
        started = time.perf_counter()
        while service.control.loop.retrain_running:
            progress = service.control.status().get("retrain_progress") or {}
            if progress:
                say(f"    retraining: {_progress_line(progress)}")
            time.sleep(5.0)
        result.timings["retrain_s"] = time.perf_counter() - started
        runs = repo.list_runs(service.engine, limit=1)
        if result.tripped and runs:
            result.retrain_status = runs[0].status
            why = runs[0].error or "all gates passed"
            say(f"    retrain run {runs[0].id}: {runs[0].status} ({why})")
        service.request_swap()

        say("6/6 held-out traffic on the adapter now serving")
        stats = replay(url, tweet_holdout, send_feedback=False, id_prefix="tweets-holdout")
        result.tweet_accuracy_final = stats.accuracy
        result.final_adapter = next(iter(stats.by_adapter), "")
        movie_stats = replay(url, movie_holdout, send_feedback=False, id_prefix="movies-holdout")
        result.movie_accuracy_final = movie_stats.accuracy
        say(
            f"    adapter {result.final_adapter[:12]}: tweets {_pct(stats.accuracy)}, "
            f"movies {_pct(movie_stats.accuracy)}"
        )
        result.report = _write_report(
            service, settings, result.first_adapter, state_dir / "drift-report.html", say
        )
        say("events:")
        for event in repo.list_events(service.engine, limit=30):
            say(f"    {event.ts:%H:%M:%S} {event.kind:<16} {event.source:<24} {event.message[:90]}")
        if keep_serving is not None:
            keep_serving(service)
    finally:
        service.handle_term()
        service.shutdown()
    return result


def _write_report(
    service: Service, settings: Settings, adapter: str, out: Path, say: Callable[[str], None]
) -> Path | None:
    """Movies (the first adapter's reference) vs tweets (what it served next), as Evidently sees
    them."""
    from adaptd.monitoring.edges import build_windows
    from adaptd.monitoring.evidently_report import window_report

    assert service.engine is not None
    reference, current = build_windows(
        service.engine,
        settings.monitors,
        adapter,
        (),
        datetime.now(UTC),
        labels=settings.model.labels,
    )
    try:
        summary = window_report(
            reference, current, out, components=settings.monitors.embedding_components
        )
    except Exception as e:  # a report is a nicety: never fail the demo for it
        say(f"    (no Evidently report: {e})")
        return None
    drifted = [c.column for c in summary.columns if c.drifted]
    say(f"    Evidently report: {out} ({len(drifted)}/{len(summary.columns)} columns drifted)")
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _signals_line(signals: Any) -> str:
    wanted = ("drift.embedding.auc", "performance.accuracy", "performance.estimated_accuracy")
    parts = []
    for s in signals:
        if s.name in wanted:
            value = "insufficient data" if s.value is None else f"{s.value:.3f}"
            parts.append(f"{s.name}={value} [{s.status.value}]")
    return ", ".join(parts) or "no signals"


def _progress_line(progress: dict[str, Any]) -> str:
    keys = ("phase", "epoch", "step", "steps", "loss", "samples_per_s")
    return " ".join(f"{k}={progress[k]}" for k in keys if progress.get(k) is not None)
