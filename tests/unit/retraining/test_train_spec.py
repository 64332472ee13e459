"""The spec a run trains with carries every recipe setting, for the job and the benchmarks alike."""

from __future__ import annotations

from dataclasses import fields

from adaptd.config import Settings
from adaptd.retraining.job import train_spec
from adaptd.retraining.settings import RetrainingSettings
from adaptd.retraining.spec import TrainSpec

#: a value for each recipe setting that is neither its default nor TrainSpec's
CHANGED = {
    "dtype": "bfloat16",
    "autocast": "bfloat16",
    "mode": "finetune",
    "contrastive": "off",
    "contrastive_max_rows": 77,
    "contrastive_learning_rate": 3e-4,
    "contrastive_pairing": "setfit",
    "rank": 4,
    "alpha": 8,
    "dropout": 0.05,
    "epochs": 5,
    "min_steps": 40,
    "batch_size": 8,
    "learning_rate": 2e-4,
    "head_learning_rate": 5e-3,
    "probe_c": 0.5,
    "weight_decay": 0.01,
    "schedule": "linear",
    "warmup_ratio": 0.2,
    "early_stopping_patience": 3,
    "dev_fraction": 0.2,
    "dev_from": "all",
    "select_by": "loss",
    "seed": 7,
    "threads": 2,
    "interpolation": 0.6,
}
#: shared names whose setting is resolved, not copied (asserted below)
RESOLVED = {"device", "warm_start", "contrastive_iterations", "max_length", "target_modules"}


def _spec(settings: Settings, **given: object) -> TrainSpec:
    paths = {"train_file": "t.jsonl", "out_dir": "out", "progress_file": "p.jsonl"}
    return train_spec(settings, base="base-dir", **paths, **given)  # type: ignore[arg-type]


def test_every_recipe_setting_reaches_the_spec() -> None:
    shared = {f.name for f in fields(TrainSpec)} & set(RetrainingSettings.model_fields)
    # A setting added to both without a line here would go untested: name it in CHANGED.
    assert shared == set(CHANGED) | RESOLVED
    settings = Settings(
        retraining=RetrainingSettings(
            **CHANGED,
            device="cpu",
            contrastive_iterations=3,
            max_length=64,
            target_modules=["query", "value"],
        )
    )
    spec = _spec(settings, champion="champ", warm_start="champ")
    assert {name: getattr(spec, name) for name in CHANGED} == CHANGED
    assert (spec.device, spec.contrastive_iterations, spec.max_length) == ("cpu", 3, 64)
    assert spec.target_modules == ("query", "value")
    assert (spec.champion, spec.warm_start) == ("champ", "champ")
    assert spec.labels == tuple(settings.model.labels)


def test_resolved_settings_fall_back_to_the_model_and_the_champion() -> None:
    settings = Settings()
    first = _spec(settings)
    retrain = _spec(settings, champion="champ")
    # the stage's auto passes: a first adapter's 10, a retrain's 5 (trainer.stage_passes)
    assert (first.contrastive_iterations, retrain.contrastive_iterations) == (10, 5)
    # a benchmark without a champion to score can still ask for a retrain's recipe
    assert _spec(settings, replaces_champion=True).contrastive_iterations == 5
    assert first.max_length == settings.model.max_length
    assert first.device == settings.model.device
    assert first.warm_start is None and retrain.warm_start is None


def test_a_refinement_is_mixed_at_its_own_share() -> None:
    settings = Settings(
        retraining=RetrainingSettings(interpolation=0.75, refinement_interpolation=0.5)
    )
    assert _spec(settings, champion="champ").interpolation == 0.75
    assert _spec(settings, champion="champ", refinement=True).interpolation == 0.5
    # a first adapter has no champion to refine, whatever the caller says
    assert _spec(settings, refinement=True).interpolation == 0.75
    # empty: refinements take retraining.interpolation
    same = Settings(retraining=RetrainingSettings(interpolation=0.6, refinement_interpolation=None))
    assert _spec(same, champion="champ", refinement=True).interpolation == 0.6
