"""``python -m bench.adaptation.interpolation STATE``: does weight interpolation keep the source?

WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models") takes the weights
``(1 - a) * before + a * after`` of a model before and after fine-tuning, and finds that for a
range of ``a`` the mixture keeps most of the gain on the new distribution and much of what the
fine-tune cost on the old one. Here "before" is the champion a retrain was judged against
(its run's ``parent``) and "after" its candidate, mixed as the daemon's
``retraining.interpolation`` mixes them (:mod:`adaptd.modeling.interpolation`: exact at the
two ranks stacked, refactored by SVD above ``--max-rank``). On a state kept by a daemon that
already interpolated, "after" is the saved mixture, so this measures a second mixing.

Takes a kept daemon state (as ``bench.adaptation.candidates`` does) and, for every run whose
parent and candidate are both on disk, scores the mixture at each ``--alphas`` on the demo
shift's held-out rows (1,000 movie snippets, 136 tweets), paired against the parent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from adaptd.demo.shifts import tweets_to_movies
from adaptd.evaluation import measures as m
from adaptd.modeling.base import resolve_base
from adaptd.modeling.interpolation import interpolate
from adaptd.modeling.lora import PlainLora, read_plain_lora
from adaptd.modeling.sharing import attach_plain, tree_copy
from adaptd.retraining.scoring import predict_indices
from adaptd.serving.host import ModelHost
from bench.adaptation.candidates import kept_state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_dir", nargs="?", default="demo-state", type=Path)
    parser.add_argument("--alphas", default="0,0.25,0.5,0.75,1")
    parser.add_argument(
        "--max-rank",
        type=int,
        default=None,
        help="refactor the mixture to at most this rank (default: the daemon's, twice rank)",
    )
    args = parser.parse_args(argv)
    alphas = [float(a) for a in args.alphas.split(",")]
    _, settings, runs, paths = kept_state(parser, args.state_dir)
    max_rank = args.max_rank or 2 * settings.retraining.rank
    shift = tweets_to_movies()  # only its held-out rows are read
    held_out = {"target": shift.target_holdout, "source": shift.source_holdout}
    host = ModelHost(
        base=resolve_base(settings.model.base),
        labels=settings.model.labels,
        max_length=settings.model.max_length,
        pooling=settings.model.pooling,
    )
    base = host._base_model
    labels = settings.model.labels

    def right(lora: PlainLora) -> dict[str, np.ndarray]:
        model = attach_plain(tree_copy(base), lora, source="mix").eval()
        out = {}
        for k, rows in held_out.items():
            got = predict_indices(
                model, host.tokenizer, [e.text for e in rows], max_length=host.max_length
            )
            out[k] = np.asarray(
                [labels[p] == e.label for p, e in zip(got, rows, strict=True)], dtype=bool
            )
        return out

    print("| run | gate | alpha | movies | vs parent | tweets | vs parent |")  # noqa: T201
    print("|---:|---|---:|---:|---|---:|---|")  # noqa: T201
    for run in runs:
        if run.candidate not in paths or run.parent not in paths:
            continue
        before = read_plain_lora(Path(paths[run.parent]), head=base.head_name)
        after = read_plain_lora(Path(paths[run.candidate]), head=base.head_name)
        if before is None or after is None:
            continue
        first = right(before)
        for alpha in alphas:
            mixed = interpolate(before, after, alpha, max_rank=max_rank)
            if mixed is None:
                break
            got = right(mixed)
            cells = []
            for k in held_out:
                d = m.paired_difference(got[k], first[k], level=0.95)
                cells += [
                    f"{100 * got[k].mean():.1f}%",
                    f"{100 * d.difference:+.1f} [{100 * d.interval.low:+.1f}, "
                    f"{100 * d.interval.high:+.1f}]",
                ]
            print(f"| {run.id} | {run.status} | {alpha:.2f} | " + " | ".join(cells), flush=True)  # noqa: T201
            record = {"run": run.id, "alpha": alpha} | {k: float(v.mean()) for k, v in got.items()}
            print(json.dumps(record), file=sys.stderr)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
