"""Do the promotion gates promote what they should? ``python -m bench.adaptation.gates [--quick]``

Real data (the demo's shift: Rotten Tomatoes snippets -> tweets) and real predictions, fed to
the pure :func:`adaptd.retraining.validation.judge` exactly as a retrain feeds it. Candidates
are simulated cheaply with logistic regressions on frozen mean-pooled all-MiniLM-L6-v2
embeddings (computed once, cached under /tmp), each trained on different data:

- champion: 1,500 movie snippets (the adapter in service before the shift);
- better: the same movies plus the training tweets (learned the new domain, kept the old);
- same: 1,500 *other* movie snippets (no real improvement: must not be promoted);
- worse: the movies plus the training tweets with their labels flipped (worse on the target);
- shuffled: movies and tweets with shuffled labels (noise: must always be rejected);
- forgets: the training tweets only (better on tweets, loses the movies: the golden gate's job).

The recent slice is held-out tweets (never trained on), the golden slice 300 or 500 held-out
movie snippets. Each seed re-draws every split. A first-adapter block judges the champion and the
shuffled model without a champion (recent = held-out movie snippets), against the majority class.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from adaptd.retraining.settings import ValidationSettings
from adaptd.retraining.validation import SliceData, Verdict, judge
from bench.adaptation.embeddings import domain

#: monitors.min_group_size's default: the one minimum of every slice and group
MIN_GROUP_SIZE = 30
CANDIDATES = ("better", "same", "worse", "shuffled", "forgets")


@dataclass(frozen=True, slots=True)
class Setup:
    """Which domain the champion was trained on and how the slices are cut."""

    source: str
    target: str
    #: rows the champion trains on (the "same" candidate trains on as many other ones)
    source_train: int
    golden_sizes: tuple[int, ...]
    #: held-out target rows judged (the recent slice)
    recent_sizes: tuple[int, ...]
    #: target rows a candidate trains on (None: every target row not held out)
    target_train: int | None
    alphas: tuple[float, ...]
    #: the golden gate's own alpha (None: validation.alpha)
    golden_alphas: tuple[float | None, ...] = (None,)
    #: refinements (--refinement): the champion already learned half the target rows, and the
    #: candidates are judged as refinements at each validation.refinement_margin (None: as a
    #: plain retrain, surely better)
    margins: tuple[float | None, ...] = (None,)

    @property
    def rules(self) -> tuple[tuple[float | None, bool], ...]:
        """(refinement margin, golden gate against the baseline) judged: each margin both ways,
        against the champion alone (the rule until 2026-12-05) and against the baseline, the
        adapter the episode started from (the daemon's since; here the source-only model)."""
        both = ((False,), (False, True))
        return tuple((mg, against) for mg in self.margins for against in both[mg is not None])


SETUPS = {
    # 543 tweets in all: the recent slice and the training tweets share them
    "movies-to-tweets": Setup(
        "movies", "tweets", 1500, (300, 500), (100, 200, 250), None, (0.05, 0.10)
    ),
    # the demo's direction: a champion from 180 tweets (what the first adapter of
    # bench.adaptation trains on), golden 100 held-out tweets, candidates add 420 movie labels
    # (the first retrain of bench.adaptation), recent = held-out movie snippets
    "tweets-to-movies": Setup(
        "tweets", "movies", 180, (100,), (100, 150, 200, 300, 400), 420, (0.05, 0.10, 0.20)
    ),
}


def fit(x: np.ndarray, y: np.ndarray, seed: int) -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(x, y)


def predict(model: object, x: np.ndarray) -> list[int]:
    return [int(v) for v in model.predict(x)]  # type: ignore[attr-defined]


#: verdicts with a clear regression (the whole interval of the difference below zero on recent,
#: or below -max_drop on golden, both against the champion), by the golden gate's rule and
#: whether they were promoted: every promoted count must be 0
CLEAR_REGRESSIONS: dict[tuple[str, bool], int] = defaultdict(int)


def rule_name(margin: float | None, against: bool) -> str:
    """How a verdict was judged: as a plain retrain, or as a refinement whose golden gate
    measures against the champion alone or against the baseline."""
    return "plain" if margin is None else ("vs baseline" if against else "vs champion")


def _clear_regression(verdict: Verdict) -> int:
    gates = {g.name: g for g in verdict.gates}
    recent, golden = gates["accuracy@recent"], gates["accuracy@golden"]
    margin = golden.threshold.get("max_drop", 0.0)
    return int(
        (recent.difference_interval is not None and recent.difference_interval.high < 0)
        or (golden.difference_interval is not None and golden.difference_interval.high < -margin)
    )


# golden size, alpha, golden alpha, refinement margin, golden against the baseline, candidate
Key = tuple[int, float, float | None, float | None, bool, str]


def settings_for(alpha: float, golden_alpha: float | None) -> ValidationSettings:
    """The default gates, with the golden gate's alpha replaced where one is given."""
    defaults = ValidationSettings(alpha=alpha)
    if golden_alpha is None:
        return defaults
    gates = [
        g.model_copy(update={"alpha": golden_alpha}) if g.slice == "golden" else g
        for g in defaults.gates
    ]
    return ValidationSettings(alpha=alpha, gates=gates)


def one_seed(
    seed: int,
    source: tuple[np.ndarray, np.ndarray],
    target: tuple[np.ndarray, np.ndarray],
    n_recent: int,
    setup: Setup,
) -> tuple[dict[Key, bool], dict[str, tuple[float, ...]], dict[str, bool]]:
    rng = np.random.default_rng(seed)
    mx, my = source
    tx, ty = target
    mp = rng.permutation(len(my))
    g, n_src = max(setup.golden_sizes), setup.source_train
    champ_ix, golden_ix = mp[:n_src], mp[n_src : n_src + g]
    # the "same" candidate and the first adapter's recent slice take what the source has left
    other_ix = mp[n_src + g : 2 * n_src + g]
    first_recent_ix = mp[2 * n_src + g : 2 * n_src + g + n_recent]
    tp = rng.permutation(len(ty))
    recent_ix = tp[:n_recent]
    target_ix = tp[n_recent:] if setup.target_train is None else tp[n_recent:][: setup.target_train]

    src_x, src_y = mx[champ_ix], my[champ_ix]
    tgt_x, tgt_y = tx[target_ix], ty[target_ix]
    both_x = np.vstack([src_x, tgt_x])
    both_y = np.concatenate([src_y, tgt_y])
    if setup.margins != (None,):
        # A refinement: the champion learned the first half of the target rows (the first
        # retrain) from the baseline, the source-only model the shift found serving; "better"
        # learned all of them, "same" the other half only, "worse" the second half with
        # flipped labels; the others as below.
        half = len(tgt_y) // 2
        first_x, first_y = np.vstack([src_x, tgt_x[:half]]), np.concatenate([src_y, tgt_y[:half]])
        models = {
            "baseline": fit(src_x, src_y, seed),
            "champion": fit(first_x, first_y, seed),
            "better": fit(both_x, both_y, seed),
            "same": fit(
                np.vstack([src_x, tgt_x[half:]]), np.concatenate([src_y, tgt_y[half:]]), seed
            ),
            "worse": fit(both_x, np.concatenate([first_y, 1 - tgt_y[half:]]), seed),
            "shuffled": fit(both_x, rng.permutation(both_y), seed),
            "forgets": fit(tgt_x, tgt_y, seed),
        }
    else:
        models = {
            "champion": fit(src_x, src_y, seed),
            "better": fit(both_x, both_y, seed),
            "same": fit(mx[other_ix], my[other_ix], seed),
            "worse": fit(both_x, np.concatenate([src_y, 1 - tgt_y]), seed),
            "shuffled": fit(both_x, rng.permutation(both_y), seed),
            "forgets": fit(tgt_x, tgt_y, seed),
        }
    slices = {
        "recent": SliceData(name="recent", y_true=tuple(int(v) for v in ty[recent_ix])),
        "golden": SliceData(name="golden", y_true=tuple(int(v) for v in my[golden_ix])),
    }
    xs = {"recent": tx[recent_ix], "golden": mx[golden_ix]}
    preds = {name: {s: predict(model, xs[s]) for s in slices} for name, model in models.items()}
    accuracies = {
        name: tuple(  # (recent, golden)
            float(np.mean(np.asarray(preds[name][s]) == np.asarray(slices[s].y_true)))
            for s in ("recent", "golden")
        )
        for name in models
    }
    promoted: dict[Key, bool] = {}
    for size in setup.golden_sizes:
        sized = {
            **slices,
            "golden": SliceData(name="golden", y_true=slices["golden"].y_true[:size]),
        }
        for alpha in setup.alphas:
            for golden_alpha, (margin, against) in itertools.product(
                setup.golden_alphas, setup.rules
            ):
                settings = settings_for(alpha, golden_alpha)
                if margin is not None:
                    settings = settings.model_copy(update={"refinement_margin": margin})
                start = {"golden": preds["baseline"]["golden"][:size]} if against else None
                for name in CANDIDATES:
                    cut = {**preds[name], "golden": preds[name]["golden"][:size]}
                    champ = {**preds["champion"], "golden": preds["champion"]["golden"][:size]}
                    verdict = judge(
                        settings,
                        sized,
                        cut,
                        champ,
                        min_group_size=MIN_GROUP_SIZE,
                        positive=1,
                        refinement=margin is not None,
                        baseline=start,
                        baseline_version="baseline" if against else None,
                    )
                    promoted[(size, alpha, golden_alpha, margin, against, name)] = verdict.passed
                    rule = rule_name(margin, against)
                    CLEAR_REGRESSIONS[(rule, verdict.passed)] += _clear_regression(verdict)
    # first adapter: no champion; both slices come from the source domain, as in a first run
    first_slices = {
        "recent": SliceData(name="recent", y_true=tuple(int(v) for v in my[first_recent_ix])),
        "golden": SliceData(name="golden", y_true=slices["golden"].y_true[: setup.golden_sizes[0]]),
    }
    first_xs = {"recent": mx[first_recent_ix], "golden": mx[golden_ix[: setup.golden_sizes[0]]]}
    first: dict[str, bool] = {}
    for name in ("champion", "shuffled"):
        first_p = {s: predict(models[name], first_xs[s]) for s in first_slices}
        first[name] = judge(
            ValidationSettings(), first_slices, first_p, None,
            min_group_size=MIN_GROUP_SIZE, positive=1,
        ).passed  # fmt: skip
    return promoted, accuracies, first


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 seeds instead of 100")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--shift", choices=sorted(SETUPS), default="movies-to-tweets")
    parser.add_argument("--golden-sizes", help="comma-separated golden slice sizes to compare")
    parser.add_argument("--recent-sizes", help="comma-separated recent slice sizes to compare")
    parser.add_argument("--alphas", help="comma-separated validation.alpha values to compare")
    parser.add_argument(
        "--golden-alphas",
        help="comma-separated alphas of the golden gate to compare ('-': validation.alpha)",
    )
    parser.add_argument(
        "--refinement",
        help="comma-separated validation.refinement_margin values ('-': judged as a plain "
        "retrain): the champion already learned half the target rows, the candidates refine it",
    )
    args = parser.parse_args(argv)
    seeds = args.seeds or (20 if args.quick else 100)
    setup = SETUPS[args.shift]
    if args.golden_sizes:
        setup = replace(setup, golden_sizes=tuple(int(v) for v in args.golden_sizes.split(",")))
    if args.recent_sizes:
        setup = replace(setup, recent_sizes=tuple(int(v) for v in args.recent_sizes.split(",")))
    if args.alphas:
        setup = replace(setup, alphas=tuple(float(v) for v in args.alphas.split(",")))
    if args.golden_alphas:
        golden_alphas = tuple(None if v == "-" else float(v) for v in args.golden_alphas.split(","))
        setup = replace(setup, golden_alphas=golden_alphas)
    if args.refinement:
        margins = tuple(None if v == "-" else float(v) for v in args.refinement.split(","))
        setup = replace(setup, margins=margins)
    sizes = setup.recent_sizes
    started = time.perf_counter()
    source = domain(setup.source)[:2]
    target = domain(setup.target)[:2]
    print(
        f"{args.shift}: {len(source[1])} {setup.source}, {len(target[1])} {setup.target}; "
        f"champion on {setup.source_train} {setup.source}; golden {setup.golden_sizes} "
        f"{setup.source}; {seeds} seeds; min_group_size {MIN_GROUP_SIZE}"
    )
    rates: dict[tuple[int, Key], list[bool]] = defaultdict(list)
    accs: dict[tuple[int, str], list[tuple[float, ...]]] = defaultdict(list)
    firsts: dict[str, list[bool]] = defaultdict(list)
    for n_recent in sizes:
        for seed in range(seeds):
            promoted, accuracies, first = one_seed(seed, source, target, n_recent, setup)
            for key, ok in promoted.items():
                rates[(n_recent, key)].append(ok)
            for name, pair in accuracies.items():
                accs[(n_recent, name)].append(pair)
            for name, ok in first.items():
                firsts[name].append(ok)

    print(f"\nmean held-out accuracy (recent = held-out {setup.target}, golden = {setup.source}):")
    print(f"{'model':<10} {'recent':>7} {'golden':>7}  (n recent {sizes[-1]})")
    for name in [n for n in ("baseline", "champion", *CANDIDATES) if (sizes[-1], n) in accs]:
        pairs = np.asarray(accs[(sizes[-1], name)])
        print(f"{name:<10} {pairs[:, 0].mean():7.3f} {pairs[:, 1].mean():7.3f}")

    print(
        "\npromotion rate over seeds (default gates: accuracy@recent min_gain 0, "
        "accuracy@golden max_drop 0.02):"
    )
    header = (
        f"{'n recent':>8} {'golden':>6} {'alpha':>5} {'g.alpha':>7} {'margin':>6} "
        f"{'rule':>11} " + " ".join(f"{c:>9}" for c in CANDIDATES)
    )
    print(header)
    for n_recent in sizes:
        for golden in setup.golden_sizes:
            for alpha in setup.alphas:
                for ga, (mg, against) in itertools.product(setup.golden_alphas, setup.rules):
                    cells = " ".join(
                        f"{np.mean(rates[(n_recent, (golden, alpha, ga, mg, against, c))]):9.2f}"
                        for c in CANDIDATES
                    )
                    shown = "-" if ga is None else f"{ga:.2f}"
                    margin = "-" if mg is None else f"{mg:.2f}"
                    rule = rule_name(mg, against)
                    print(
                        f"{n_recent:>8} {golden:>6} {alpha:>5.2f} {shown:>7} {margin:>6} "
                        f"{rule:>11} {cells}"
                    )
    print(
        f"\nfirst adapter (no champion, must beat the majority class on recent and golden, "
        f"alpha {ValidationSettings().alpha}): source-only model promoted "
        f"{np.mean(firsts['champion']):.2f}, "
        f"shuffled-label model promoted {np.mean(firsts['shuffled']):.2f} "
        f"({len(firsts['champion'])} runs)"
    )
    rules = dict.fromkeys(rule for rule, _ in CLEAR_REGRESSIONS)
    print(
        "candidates with a clear regression (interval wholly below 0 on recent or below "
        "-max_drop on golden, against the champion): "
        + "; ".join(
            f"{rule}: {CLEAR_REGRESSIONS[(rule, True)]} promoted, "
            f"{CLEAR_REGRESSIONS[(rule, False)]} rejected"
            for rule in rules
        )
    )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
