"""``adaptd retrain``: a manual retrain from the store's feedback, or the first adapter from a
labelled file. Shows the child's progress as a bar on stderr (stdout stays clean for --json)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import Engine

from adaptd.cli.common import ConfigOption, JsonOption, emit_json, load, open_store
from adaptd.config import Settings
from adaptd.datasets.files import read_examples
from adaptd.errors import DatasetError, UsageError
from adaptd.metrics import new_metrics
from adaptd.modeling.base import BaseModelInfo, inspect_base, resolve_base
from adaptd.retraining.job import RetrainJob, RetrainRequest, RunOutcome
from adaptd.retraining.registry_port import AdaptersRegistry, RegistryPort
from adaptd.retraining.spec import Progress


def base_info(settings: Settings) -> BaseModelInfo:
    """What the registry checks adapters against, from the base's config alone (the CLI loads no
    weights; the training child does)."""
    return inspect_base(
        resolve_base(settings.model.base), settings.model.labels, pooling=settings.model.pooling
    )


def make_registry(settings: Settings, engine: Engine) -> RegistryPort:
    settings.adapters_dir.mkdir(parents=True, exist_ok=True)
    return AdaptersRegistry(
        engine=engine,
        adapters_dir=settings.adapters_dir,
        base=base_info(settings),
        max_store_bytes=settings.store.adapter_max_bytes,
    )


class ProgressBar:
    """A rich progress bar fed by the child's reports; silent when stderr is not a terminal."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[speed]:.1f} samples/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self.task: Any = None

    def __enter__(self) -> ProgressBar:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, p: Progress) -> None:
        description = f"{p.phase} epoch {p.epoch}/{p.epochs}"
        if self.task is None:
            self.task = self.bar.add_task(description, total=p.steps, loss=p.loss, speed=0.0)
        self.bar.update(
            self.task, completed=p.step, description=description, loss=p.loss, speed=p.samples_per_s
        )


def _summary(outcome: RunOutcome) -> dict[str, Any]:
    return {
        "run": outcome.run_id,
        "status": outcome.status,
        "reason": outcome.reason,
        "candidate": outcome.candidate,
        "samples": outcome.samples,
        "duration_s": outcome.duration_s,
        "verdict": outcome.verdict,
    }


def retrain(
    from_file: Path | None = typer.Option(
        None,
        "--from-file",
        help="Labelled CSV/JSONL/Parquet to train on (how the first adapter is made); "
        "default: the feedback in the store.",
    ),
    reason: str = typer.Option("manual retrain", "--reason", help="Recorded with the run."),
    text_column: str = typer.Option("text", help="Text column of --from-file."),
    label_column: str = typer.Option("label", help="Label column of --from-file."),
    attribute: list[str] = typer.Option(
        [], "--attribute", "-a", help="Attribute column of --from-file (repeatable)."
    ),
    timestamp_column: str | None = typer.Option(
        None, help="Timestamp column of --from-file (the newest rows are held out)."
    ),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retrain now: assemble data, fine-tune in a child process, validate, promote or reject."""
    settings = load(config)
    examples = None
    if from_file is not None:
        try:
            examples = read_examples(
                from_file,
                text_column=text_column,
                label_column=label_column,
                attribute_columns=attribute,
                timestamp_column=timestamp_column,
                labels=settings.model.labels,
                require_labels=True,
            )
        except DatasetError as e:
            # The file is the argument the user gave: a bad one is a usage error (exit 2).
            raise UsageError(str(e)) from e
        present = sorted({e.label or "" for e in examples})
        if len(present) < 2:
            # Nothing a run could learn: say so before a store is opened or a child started.
            raise UsageError(
                f"{from_file}: every row is labelled {present[0]!r} ({len(examples)} rows); a "
                f"classifier needs at least two of {list(settings.model.labels)}"
                if present
                else f"{from_file}: no labelled rows"
            )
    engine = open_store(settings)
    try:
        with ProgressBar(enabled=sys.stderr.isatty() and not as_json) as bar:
            job = RetrainJob(
                settings,
                engine,
                make_registry(settings, engine),
                metrics=new_metrics(),
                on_progress=bar.update,
            )
            source = f"file {from_file}" if from_file is not None else "store feedback"
            outcome = job.run(RetrainRequest(reason=f"{reason} ({source})", examples=examples))
    finally:
        engine.dispose()
    if as_json:
        emit_json(_summary(outcome))
    else:
        version = f" {outcome.candidate[:12]}" if outcome.candidate else ""
        print(f"run {outcome.run_id}: {outcome.status}{version}: {outcome.reason}")
        marks = {"passed": "ok  ", "failed": "FAIL", "not_judged": "n/j ", "skipped": "skip"}
        for gate in (outcome.verdict or {}).get("gates", []):
            mark = marks.get(gate.get("outcome", ""), "ok  " if gate["passed"] else "FAIL")
            value = "n/a" if gate["value"] is None else f"{gate['value']:.4f}{_ci(gate['ci'])}"
            champion = (
                ""
                if gate["champion"] is None
                else f" (champion {gate['champion']:.4f}{_ci(gate['champion_ci'])}, "
                f"difference {gate['difference']:+.4f}{_ci(gate['difference_ci'])})"
            )
            note = f" [{gate['note']}]" if gate.get("note") else ""
            print(f"  {mark} {gate['name']}: {value}{champion}{note}")
    if outcome.status not in {"promoted", "awaiting_approval"}:
        raise typer.Exit(1)


def _ci(interval: list[float] | None) -> str:
    return "" if not interval else f" [{interval[0]:.3f}, {interval[1]:.3f}]"
