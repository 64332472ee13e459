"""The job spec a trainer receives and the progress and result it reports back.

All three travel as JSON (a spec file for the child process, a Ray task argument, a progress
JSONL file), so they are plain frozen dataclasses with ``to_dict``/``from_dict``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainSpec:
    base: str
    labels: tuple[str, ...]
    train_file: str
    out_dir: str
    progress_file: str
    #: which token states the head reads (``model.pooling``; the adapter records the result)
    pooling: Literal["auto", "cls", "mean", "last"] = "auto"
    #: refuse pickle-based base weights (``model.safetensors_only``)
    safetensors_only: bool = True
    #: where the fine-tune runs (auto, cpu, cuda, cuda:N), resolved where it runs
    device: str = "cpu"
    #: precision of the frozen base weights; LoRA, head and optimizer stay float32
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    #: mixed precision of forward and backward (none, bfloat16, float16)
    autocast: Literal["none", "bfloat16", "float16"] = "none"
    #: features: probe only (frozen encoder); finetune: probe, then LoRA + head; auto: the same,
    #: keeping the probe when fine-tuning does not beat it on the dev split
    mode: Literal["auto", "finetune", "features"] = "auto"
    #: False skips the probe (the head starts random): only for benchmarks of the old recipe
    linear_probe: bool = True
    #: adapter directory to warm-start from (its LoRA and head); None starts a fresh LoRA
    warm_start: str | None = None
    #: SetFit's contrastive stage between the probe and the fine-tune: auto runs it on a fresh
    #: LoRA of a sentence-transformers base; on: whenever a probe is fitted; off: never
    contrastive: Literal["auto", "on", "off"] = "auto"
    #: most rows the stage runs on: a larger training set is sampled (each label keeping its
    #: share)
    contrastive_max_rows: int = 500
    #: when the stage's rows are sampled: the share of them drawn from the replayed rows (as
    #: far as there are), the rest from the new ones, each part keeping its labels' shares;
    #: None (the daemon's): one sample of all rows, where the replayed ones keep their share.
    #: Only for benchmarks: 0.5 did not keep more of the source over five draws of the demo's
    #: shift (bench/adaptation/RECIPE.md, "The stage's sample on a refinement")
    contrastive_replay_share: float | None = None
    #: a fresh adapter whose probe nothing guards (no stage kept, not a warm start): the
    #: fine-tuned epochs compete among themselves, and the probe takes the best one's place only
    #: when significantly more accurate on dev (STAGE_OVERRIDE_P), the guard the stage has.
    #: False (the daemon's): the probe is checkpoint 0 and an epoch must beat it on dev. Only
    #: for benchmarks until measured end to end: on SmolLM2 epoch 2 beat the probe held out in
    #: all 11 draws and folds where 40-44 dev rows kept the probe in 4 (RECIPE.md, "SmolLM2-135M's
    #: first adapter")
    epochs_over_probe: bool = False
    #: passes over the training rows (setfit: each pairing every row with one same- and one
    #: different-label row)
    contrastive_iterations: int = 10
    #: peak learning rate of the LoRA weights in the contrastive stage
    contrastive_learning_rate: float = 1e-3
    #: setfit: SetFit's sampled pairs; in-batch: every pair among a batch of rows
    contrastive_pairing: Literal["setfit", "in-batch"] = "in-batch"
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: tuple[str, ...] | None = None
    epochs: int = 2
    #: the fewest optimizer steps of a fine-tune: small datasets get more epochs instead
    min_steps: int = 0
    batch_size: int = 16
    #: peak learning rate of the LoRA weights
    learning_rate: float = 1e-3
    #: peak learning rate of the classifier head
    head_learning_rate: float = 1e-3
    #: inverse L2 strength of the linear probe (scikit-learn's C); auto: cross-validated,
    #: :func:`~adaptd.retraining.trainer.probe_strength`
    probe_c: float | Literal["auto"] = "auto"
    weight_decay: float = 0.0
    schedule: Literal["linear", "cosine", "constant"] = "cosine"
    warmup_ratio: float = 0.1
    early_stopping_patience: int | None = None
    #: share of the training set kept aside to pick the best checkpoint (and stop early)
    dev_fraction: float = 0.1
    #: new: the dev rows come from the new labels only when replayed rows are mixed in (what
    #: the gates judge on); all: from every row
    dev_from: Literal["new", "all"] = "new"
    #: what picks the checkpoint on the dev rows: accuracy (loss breaks ties) or loss
    select_by: Literal["accuracy", "loss"] = "accuracy"
    max_length: int = 128
    seed: int = 0
    threads: int = 1
    #: steps between progress reports
    report_every: int = 10
    #: JSONL of {"slice", "text"} the child scores with the candidate and the champion
    eval_file: str | None = None
    #: adapter directory of the champion (None: the first adapter, nothing to compare with)
    champion: str | None = None
    #: a refinement's baseline, the adapter its episode started from: scored on the golden
    #: slice only, where its gate measures forgetting against it (retraining.validation)
    baseline: str | None = None
    #: the candidate's share when it is saved as ``(1 - x) * champion + x * candidate``
    #: (WiSE-FT, :mod:`adaptd.modeling.interpolation`); 1: saved as trained
    interpolation: float = 1.0
    #: a scoring-only run: score the eval file with this trained adapter (as the candidate) and
    #: the champion, train nothing (the gate's late labels, scored after training ended)
    rescore: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["labels"] = tuple(values["labels"])
        if values.get("target_modules") is not None:
            values["target_modules"] = tuple(values["target_modules"])
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    samples_per_s: float
    phase: str = "train"

    @property
    def fraction(self) -> float:
        return self.step / self.steps if self.steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": round(self.fraction, 4)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainResult:
    adapter_dir: str
    epochs_run: int
    steps: int
    samples: int
    train_seconds: float
    samples_per_s: float
    best_dev_loss: float | None
    stopped_early: bool
    trainable_params: int
    #: the device it trained on (cuda on a Ray GPU worker)
    device: str = "cpu"
    #: which checkpoint was kept: "probe", "contrastive" or "epoch N"
    kept: str = "probe"
    probe_dev_accuracy: float | None = None
    best_dev_accuracy: float | None = None
    #: rows of the dev split the checkpoint was picked on
    dev_rows: int = 0
    #: the contrastive stage when it ran: pairs, steps, loss_first, loss_last, seconds
    contrastive: dict[str, Any] | None = None
    #: the rank of the adapter saved when it is the candidate interpolated with the champion
    #: (``TrainSpec.interpolation``); None: saved as trained
    interpolated_rank: int | None = None
    #: the linear probe's C (``probe_c``, resolved), of its last fit; None: no probe was fitted
    probe_c: float | None = None
    #: every checkpoint in order, {"checkpoint", "dev_accuracy", "dev_loss"}
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    #: {"candidate"|"champion"|"baseline": {slice: [class index per text]}}
    predictions: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    #: the candidate's {slice: {"probabilities": [[p per label]], "embeddings": [base64 float16]
    #: or None}}, its monitoring reference once promoted
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
