"""A real shift through the whole loop, over the real HTTP API: what ``adaptd demo`` and
``bench/adaptation`` run.

1. Train the first adapter on the source domain with the daemon's own retrain job (as
   ``adaptd retrain --from-file`` would) and promote it.
2. Start the daemon (real HTTP on 127.0.0.1, the real scheduler checking every few seconds).
3. Stream live source traffic with feedback, then live target traffic (the shift) at a steady rate,
   with feedback on a share of it, until the daemon has swapped to a new adapter (or gives up).
   The policies decide alone: nothing here calls a check or a retrain.
4. Score the held-out rows of both domains with the first adapter and with the one now serving.

Everything the daemon decided is read back from its store afterwards (events, checks, runs), so
the result tells what happened, not what was meant to happen.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from adaptd.config import Settings
from adaptd.datasets.records import Example
from adaptd.demo.shifts import Shift
from adaptd.demo.traffic import post_json, replay
from adaptd.errors import AdaptdError, NotFoundError
from adaptd.modeling.base import inspect_base, resolve_base
from adaptd.retraining.job import RetrainJob, RetrainRequest
from adaptd.retraining.registry_port import AdaptersRegistry
from adaptd.retraining.replay import ReplayStore
from adaptd.service import Service
from adaptd.storage import migrate
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine
from adaptd.storage.records import RetrainRun

logger = logging.getLogger(__name__)

#: signals the timeline plots
PLOTTED_SIGNALS = ("performance.accuracy", "performance.estimated_accuracy", "drift.embedding.auc")


@dataclass(frozen=True, slots=True, kw_only=True)
class Stream:
    """How live traffic is sent."""

    #: predictions per second (the daemon serves far more; this spreads labels over checks)
    rate_per_s: float = 20.0
    batch_size: int = 8
    #: share of live predictions that get their label back as feedback
    feedback_fraction: float = 0.5
    #: after the shift, the share of batches drawn from the labelled target pool; the others
    #: repeat pool rows without feedback. Below 1 the labels arrive slower than the traffic,
    #: as in a service whose labels trail its predictions: a small pool then still has labels
    #: left after the policy trips (movies-to-tweets has 380 live tweets; at 10/s and a share
    #: of 1 they are spent before the trip, and the policy waits for labels given after it).
    labelled_share: float = 1.0
    #: after the target pool is used up, keep sending unlabelled traffic this long at most
    max_wait_s: float = 900.0
    #: ... and stop sooner once no retrain has run for this long (and for three checks): a
    #: retry the labels allow starts at the next check, so an idle daemon is done with them
    idle_s: float = 60.0
    #: predictions served after the swap before the stream stops
    tail: int = 200
    seed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    """One request of the stream."""

    t: float
    domain: str
    adapter: str
    n: int
    labelled: int
    correct: int
    feedback: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    t: float
    kind: str
    message: str


@dataclass(slots=True)
class ScenarioResult:
    shift: str
    sizes: dict[str, int]
    first_adapter: str = ""
    final_adapter: str = ""
    #: held-out accuracy: {"first": {"source": .., "target": ..}, "final": {...}}
    accuracy: dict[str, dict[str, float | None]] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    #: (seconds since the stream started, signal, value, status)
    checks: list[tuple[float, str, float | None, str]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    #: the labelled examples the daemon received as feedback, in order
    fed: list[Example] = field(default_factory=list)
    #: the rows the first adapter trained on (its train and dev rows: no golden, no holdout)
    first_trained: list[Example] = field(default_factory=list)
    failed_requests: int = 0
    target_labels_sent: int = 0
    timings: dict[str, float | None] = field(default_factory=dict)

    @property
    def drift_seen(self) -> bool:
        return any(m.kind in {"trip", "action"} for m in self.marks)

    @property
    def promoted(self) -> bool:
        return any(r["status"] == "promoted" for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("fed")
        doc.pop("first_trained")
        doc["labels_received"] = len(self.fed)
        doc["drift_seen"] = self.drift_seen
        doc["promoted"] = self.promoted
        return doc


def scenario_settings(
    state_dir: Path,
    *,
    port: int,
    policies: Sequence[Path],
    check_interval_s: float,
    attributes: Sequence[str] = (),
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """The embedded defaults, with only what a replay on one machine must change: where state
    lives, the port, how often checks run (seconds instead of minutes: the replay compresses
    hours of traffic), and which policies are in force."""
    doc: dict[str, Any] = {
        "state_dir": state_dir,
        "server": {"host": "127.0.0.1", "port": port},
        "serving": {"registry_poll_s": 1.0},
        "scheduler": {"check_interval_s": check_interval_s},
        "monitors": {"attributes": list(attributes)},
        "policies": list(policies),
        # The demo narrates on stdout; the daemon's own log stays quiet unless it must speak.
        "logging": {"level": "WARNING"},
    }
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return Settings(**doc)


def train_first_adapter(settings: Settings, examples: Sequence[Example]) -> tuple[str, str]:
    """The daemon's own retrain job on the source data; the adapter is promoted. Returns the
    version and the reason the gates gave."""
    engine = make_engine(settings.store_url)
    try:
        migrate.upgrade(engine)
        base = inspect_base(
            resolve_base(settings.model.base),
            settings.model.labels,
            pooling=settings.model.pooling,
        )
        registry = AdaptersRegistry(engine=engine, adapters_dir=settings.adapters_dir, base=base)
        outcome = RetrainJob(settings, engine, registry).run(
            RetrainRequest(reason="first adapter from the source domain", examples=examples)
        )
    finally:
        engine.dispose()
    if outcome.status != "promoted" or outcome.candidate is None:
        raise AdaptdError(f"the first adapter was not promoted: {outcome.reason}")
    return outcome.candidate, outcome.reason


def first_reservoir(settings: Settings) -> list[Example]:
    """The replay reservoir as the store holds it (the rows a first adapter trained on)."""
    engine = make_engine(settings.store_url)
    try:
        capacity = settings.retraining.reservoir_size
        return ReplayStore(engine=engine, capacity=capacity).load()[0]
    finally:
        engine.dispose()


def score_offline(settings: Settings, adapter_dir: str, examples: Sequence[Example]) -> float:
    """Held-out accuracy of one adapter, built exactly as serving builds it."""
    right = correct_offline(settings, adapter_dir, examples)
    return sum(right) / len(right)


def correct_offline(
    settings: Settings, adapter_dir: str, examples: Sequence[Example]
) -> list[bool]:
    """Per held-out row: did the adapter, built exactly as serving builds it, get it right? Two
    adapters scored on the same rows give a paired comparison."""
    from adaptd.retraining.scoring import predict_indices
    from adaptd.serving.host import ModelHost

    host = ModelHost(
        base=resolve_base(settings.model.base),
        labels=settings.model.labels,
        max_length=settings.model.max_length,
        pooling=settings.model.pooling,
    )
    built = host.build("offline", Path(adapter_dir))
    predicted = predict_indices(
        built.model, host.tokenizer, [e.text for e in examples], max_length=host.max_length
    )
    labels = settings.model.labels
    return [labels[p] == e.label for p, e in zip(predicted, examples, strict=True)]


class _Streamer:
    """Sends examples at a steady rate and records every request as a :class:`Point`."""

    def __init__(self, url: str, stream: Stream, started: float) -> None:
        self.url = url
        self.stream = stream
        self.started = started
        self.points: list[Point] = []
        #: every example whose label was sent as feedback: what the daemon was given
        self.fed: list[Example] = []
        self.failed = 0
        self.rng = random.Random(stream.seed)
        self._next = time.perf_counter()
        self._count = 0

    def send(self, domain: str, batch: Sequence[Example], *, feedback: bool) -> str | None:
        """One predict (and feedback) request; returns the adapter that answered."""
        self._pace(len(batch))
        self._count += 1
        inputs = [
            {"text": e.text, "id": f"{domain}-{self._count}-{i}", "attributes": dict(e.attributes)}
            for i, e in enumerate(batch)
        ]
        body = self._post("/v1/predict", {"inputs": inputs})
        if body is None:
            return None
        predictions = body["predictions"]
        labelled = correct = 0
        to_send: list[dict[str, str]] = []
        fed: list[Example] = []
        for example, prediction in zip(batch, predictions, strict=True):
            if example.label is None:
                continue
            labelled += 1
            correct += int(prediction["label"] == example.label)
            if feedback and self.rng.random() < self.stream.feedback_fraction:
                to_send.append({"id": prediction["id"], "label": example.label})
                fed.append(example)
        if to_send and self._post("/v1/feedback", {"feedback": to_send}) is None:
            to_send, fed = [], []
        self.fed.extend(fed)
        adapter = str(predictions[0]["adapter"]) if predictions else ""
        self.points.append(
            Point(
                t=round(time.perf_counter() - self.started, 3),
                domain=domain,
                adapter=adapter,
                n=len(predictions),
                labelled=labelled,
                correct=correct,
                feedback=len(to_send),
            )
        )
        return adapter

    def _pace(self, n: int) -> None:
        self._next += n / self.stream.rate_per_s
        delay = self._next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            self._next = time.perf_counter()

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        for _ in range(20):
            try:
                status, body, headers = post_json(self.url + path, payload)
            except OSError as e:
                logger.warning("%s failed: %s", path, e)
                self.failed += 1
                return None
            if status == 200:
                return body
            if status == 503:  # queue full: the documented back-pressure, not a failure
                time.sleep(min(2.0, float(headers.get("Retry-After", "1") or 1)))
                continue
            logger.warning("%s answered %s: %s", path, status, body)
            self.failed += 1
            return None
        self.failed += 1
        return None


def target_traffic(
    pool: Sequence[Example], batch_size: int, labelled_share: float
) -> Iterator[tuple[Sequence[Example], bool]]:
    """The post-shift stream, endless: ``(batch, with_feedback)``. Batches from the labelled
    pool, in order, make ``labelled_share`` of the batches until the pool is spent; the others
    (and everything after) cycle through the pool again without feedback, so no label is sent
    twice and the traffic stays in the target domain."""
    if not pool:
        raise ValueError("the target pool is empty")
    if not 0.0 < labelled_share <= 1.0:
        raise ValueError(f"labelled_share must be in (0, 1], got {labelled_share}")
    labelled = filler = batches = 0
    while True:
        batches += 1
        if labelled < len(pool) and labelled < labelled_share * batches * batch_size:
            batch = pool[labelled : labelled + batch_size]
            labelled += len(batch)
            yield batch, True
        else:
            start = filler % len(pool)
            batch = pool[start : start + batch_size]
            filler += len(batch)
            yield batch, False


def labels_spent_stop(
    now: float, *, pool_done_at: float, busy_at: float, idle_limit_s: float, max_wait_s: float
) -> str | None:
    """Why the stream stops once the labelled pool is spent (None: it goes on). A retrain that
    runs is waited for, and so is the retry its outcome allows, until no retrain has run for
    ``idle_limit_s``; ``max_wait_s`` after the last label bounds the whole wait."""
    if now - pool_done_at > max_wait_s:
        return "time is up"
    idle = now - max(pool_done_at, busy_at)
    if idle > idle_limit_s:
        return f"no retrain for {idle:.0f} s"
    return None


def _batches(examples: Sequence[Example], size: int) -> list[Sequence[Example]]:
    return [examples[i : i + size] for i in range(0, len(examples), size)]


def run_scenario(
    shift: Shift,
    settings: Settings,
    *,
    stream: Stream = Stream(),
    say: Callable[[str], None] = print,
    on_serving: Callable[[Service], None] | None = None,
) -> ScenarioResult:
    state_dir = settings.state_dir
    if state_dir.exists():
        shutil.rmtree(state_dir)
    (state_dir / "adapters").mkdir(parents=True)
    result = ScenarioResult(shift=shift.name, sizes=shift.sizes())

    say(
        f"1/4 training the first adapter on {len(shift.source_train)} {shift.source} "
        "(the daemon's own retrain job)"
    )
    started = time.perf_counter()
    result.first_adapter, why = train_first_adapter(settings, shift.source_train)
    result.timings["first_training_s"] = round(time.perf_counter() - started, 1)
    # A promoted run adds exactly the new rows it trained on to the (still empty) reservoir.
    result.first_trained = first_reservoir(settings)
    say(f"    adapter {result.first_adapter[:12]} promoted: {why}")

    service = Service(settings=settings)
    service.startup()
    try:
        assert service.engine is not None
        url = f"http://127.0.0.1:{service.http_port}"
        say(f"2/4 daemon serving on {url} (try {url}/v1/status or {url}/metrics)")
        stream_started_at = datetime.now(UTC)
        streamer = _Streamer(url, stream, time.perf_counter())
        say(f"3/4 live traffic: {len(shift.source_live)} {shift.source} with feedback, then "
            f"{shift.target} at {stream.rate_per_s:.0f}/s, feedback on "
            f"{stream.feedback_fraction:.0%} of the {stream.labelled_share:.0%} drawn from "
            "the labelled pool")  # fmt: skip
        for batch in _batches(shift.source_live, stream.batch_size):
            streamer.send(shift.source, batch, feedback=True)
        shift_t = time.perf_counter() - streamer.started
        result.marks.append(Mark(t=round(shift_t, 3), kind="shift", message=f"{shift.target}"))
        say(f"    the world moves: {shift.target} from t={shift_t:.0f}s")
        swap_seen, tail = False, 0
        serving = result.first_adapter
        settled_since: float | None = None
        last_report = 0.0
        pool_done_at: float | None = None
        busy_at = 0.0
        idle_limit = max(stream.idle_s, 3 * settings.scheduler.check_interval_s)
        labelled_sent = 0
        for batch, feedback in target_traffic(
            shift.target_live, stream.batch_size, stream.labelled_share
        ):
            now = time.perf_counter() - streamer.started
            if feedback:
                labelled_sent += len(batch)
                if labelled_sent >= len(shift.target_live):
                    pool_done_at = now
            elif pool_done_at is not None:
                # The labelled pool is used up: traffic goes on, labels do not. A retrain that
                # runs is waited for (under a loaded CI box a retry outlasted a fixed wait).
                if _retrain_running(service):
                    busy_at = now
                stop = labels_spent_stop(
                    now,
                    pool_done_at=pool_done_at,
                    busy_at=busy_at,
                    idle_limit_s=idle_limit,
                    max_wait_s=stream.max_wait_s,
                )
                if stop is not None:
                    state = "while still adapting" if swap_seen else "with no swap"
                    say(f"    {stop} after the last label, {state}; stopping the stream")
                    break
            adapter = streamer.send(shift.target, batch, feedback=feedback)
            if adapter and adapter != serving:
                say(f"    t={now:.0f}s: now served by {adapter[:12]}")
                serving, swap_seen, tail = adapter, True, 0
            if swap_seen:
                tail += len(batch)
                # A refinement may follow the first promotion: the stream goes on until the
                # daemon has nothing left to do with the labels it has, for 2 s (a margin: a
                # run's outcome reaches its policy before the retrain slot frees).
                if _adapting(service, serving):
                    settled_since = None
                elif settled_since is None:
                    settled_since = now
                if tail >= stream.tail and settled_since is not None and now - settled_since >= 2:
                    break
            if now - last_report >= 30.0:
                last_report = now
                say("    " + _progress_line(now, streamer.points, service))
        result.points = streamer.points
        result.fed = streamer.fed
        result.failed_requests = streamer.failed
        result.target_labels_sent = sum(
            p.feedback for p in streamer.points if p.domain == shift.target
        )
        _read_back(result, service, stream_started_at, shift_t)

        say("4/4 held-out rows of both domains")
        final = replay(url, shift.target_holdout, send_feedback=False, id_prefix="holdout-target")
        final_source = replay(
            url, shift.source_holdout, send_feedback=False, id_prefix="holdout-source"
        )
        result.final_adapter = max(final.by_adapter, key=lambda k: final.by_adapter[k])
        result.accuracy["final"] = {"source": final_source.accuracy, "target": final.accuracy}
        if on_serving is not None:
            on_serving(service)
    finally:
        service.handle_term()
        service.shutdown()

    engine = make_engine(settings.store_url)
    try:
        first_path = repo.get_adapter(engine, result.first_adapter).path
    finally:
        engine.dispose()
    result.accuracy["first"] = {
        "source": score_offline(settings, first_path, shift.source_holdout),
        "target": score_offline(settings, first_path, shift.target_holdout),
    }
    return result


def _read_back(result: ScenarioResult, service: Service, since: datetime, shift_t: float) -> None:
    """Events, checks and runs from the daemon's store, on the stream's clock."""
    assert service.engine is not None
    origin = since.timestamp()
    swaps, serving = [], result.first_adapter
    for point in result.points:
        if point.adapter and point.adapter != serving:
            swaps.append(point)
            serving = point.adapter
    swap = swaps[0] if swaps else None
    for event in repo.list_events(service.engine, since=since, limit=500):
        t = round(event.ts.timestamp() - origin, 3)
        if event.kind in {"trip", "action"} or event.kind.startswith(("retrain_", "waiting")):
            result.marks.append(Mark(t=t, kind=event.kind, message=event.message))
        elif "rollback" in event.kind or "probation" in event.kind:
            result.marks.append(Mark(t=t, kind=event.kind, message=event.message))
    for point in swaps:
        result.marks.append(Mark(t=point.t, kind="swap", message=point.adapter))
    result.marks.sort(key=lambda m: m.t)
    for r in repo.monitor_results(service.engine, since=since, signals=PLOTTED_SIGNALS):
        result.checks.append((round(r.ts.timestamp() - origin, 3), r.signal, r.value, r.status))
    for run in reversed(repo.list_runs(service.engine, limit=20)):
        if run.started is not None and run.started >= since:
            result.runs.append(_run_summary(service.engine, run, origin, shift_t))
    first = {m.kind: m.t for m in reversed(result.marks)}
    trip = first.get("trip", first.get("action"))
    result.timings.update(
        shift_s=round(shift_t, 1),
        shift_to_trip_s=None if trip is None else round(trip - shift_t, 1),
        shift_to_swap_s=None if swap is None else round(swap.t - shift_t, 1),
        # the last swap: after the refinements, if any promoted
        shift_to_last_swap_s=None if not swaps else round(swaps[-1].t - shift_t, 1),
        swaps=len(swaps),
        retrain_started_s=None
        if "retrain_started" not in first
        else round(first["retrain_started"] - shift_t, 1),
    )


def _run_summary(engine: Engine, run: RetrainRun, origin: float, shift_t: float) -> dict[str, Any]:
    """One retrain as a benchmark reports it: what it trained on and what the gates measured
    (the verdict names every interval and how many holdout and late rows each slice had)."""
    verdict = None
    if run.candidate is not None:
        try:
            verdict = (repo.get_adapter(engine, run.candidate).verdict or {}).get("reason")
        except NotFoundError:
            pass  # the candidate never reached the registry

    def since_shift(ts: datetime | None) -> float | None:
        return None if ts is None else round(ts.timestamp() - origin - shift_t, 1)

    return {
        "id": run.id,
        "status": run.status,
        "samples": run.samples,
        "reason": run.error,
        "started_after_shift_s": since_shift(run.started),
        "finished_after_shift_s": since_shift(run.finished),
        "data": (run.details or {}).get("data"),
        "verdict": verdict,
    }


def _retrain_running(service: Service) -> bool:
    # The loop's own flag, not the whole /v1/status document: asked once per batch.
    return service.control is not None and service.control.loop.retrain_running


def _adapting(service: Service, serving: str) -> bool:
    """A retrain runs, a refinement has the labels it waits for, or the adapter in the store is
    not yet the one served: the served adapter may still change."""
    if _retrain_running(service):
        return True
    status = service.control.status() if service.control is not None else {}
    for policy in status.get("policies") or []:
        refine = policy.get("refine")
        if refine and (refine["needed"] is None or (refine["new"] or 0) >= refine["needed"]):
            return True
    assert service.engine is not None
    active = repo.active_adapter(service.engine)
    return active is not None and active.version != serving


def _progress_line(now: float, points: Sequence[Point], service: Service) -> str:
    recent = points[-25:]
    labelled = sum(p.labelled for p in recent)
    accuracy = sum(p.correct for p in recent) / labelled if labelled else None
    status = service.control.status() if service.control is not None else {}
    running = status.get("retrain_progress") or {}
    parts = [f"t={now:.0f}s", f"served={sum(p.n for p in points)}"]
    if accuracy is not None:
        parts.append(f"recent accuracy={accuracy:.1%}")
    if running:
        parts.append(
            "retraining " + " ".join(f"{k}={running[k]}" for k in ("phase", "epoch", "step",
                                                                    "steps") if k in running)
        )  # fmt: skip
    return ", ".join(parts)
