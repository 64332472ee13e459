from __future__ import annotations

import time
import warnings
from pathlib import Path

import typer

from adaptd.demo.scenario import run_demo
from adaptd.logsetup import configure_logging
from adaptd.service import Service


def demo(
    state_dir: Path = typer.Option(
        Path("demo-state"), help="Where the demo keeps its store and adapters (wiped first)."
    ),
    port: int = typer.Option(8080, help="HTTP port on 127.0.0.1 (0: any free port)."),
    quick: bool = typer.Option(False, help="Smaller data: a smoke run of about two minutes."),
    serve: bool = typer.Option(
        False, help="Keep serving after the demo until Ctrl-C (look at /metrics, Grafana)."
    ),
) -> None:
    """The whole loop on the embedded defaults: shipped MiniLM, movie reviews, then tweets."""
    configure_logging("WARNING")
    # transformers' own deprecation chatter (called by peft) is noise in a narrated demo.
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")

    def keep(service: Service) -> None:
        print(f"serving on http://127.0.0.1:{service.http_port} until Ctrl-C")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass

    result = run_demo(state_dir, port=port, quick=quick, keep_serving=keep if serve else None)
    print(
        f"\ntweets: {_pct(result.tweet_accuracy_first)} -> {_pct(result.tweet_accuracy_final)}, "
        f"movies: {_pct(result.movie_accuracy_first)} -> {_pct(result.movie_accuracy_final)}; "
        f"retrain: {result.retrain_status or 'not triggered'}"
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
