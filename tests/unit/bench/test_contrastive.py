"""bench.adaptation.contrastive: its defaults are the shipped stage, its folds a partition."""

from __future__ import annotations

from bench.adaptation import contrastive

from adaptd.retraining.settings import RetrainingSettings
from adaptd.retraining.trainer import FIRST_ADAPTER_PASSES
from tests.unit.retraining.synthetic import keyword_examples


def test_the_defaults_are_the_shipped_first_adapter_stage() -> None:
    # bench.adaptation.setfit --with-recipe runs "the shipped recipe" from these defaults
    args = contrastive.build_parser().parse_args([])
    shipped = RetrainingSettings()
    assert args.iterations == FIRST_ADAPTER_PASSES
    assert args.lr == shipped.contrastive_learning_rate
    assert args.pairing == shipped.contrastive_pairing
    assert (args.rank, 2 * args.rank) == (shipped.rank, shipped.alpha)


def test_every_row_is_held_out_once_and_never_trained_on_in_its_fold() -> None:
    pool = keyword_examples(23)
    held_out: list[int] = []
    for k in range(5):
        held, rows = contrastive.fold_split(pool, k, 5)
        held_out += held
        assert len(rows) + len(held) == len(pool)
        assert not {id(pool[i]) for i in held} & {id(e) for e in rows}
    assert sorted(held_out) == list(range(len(pool)))
