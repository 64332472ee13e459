"""Config of the retrain job (``retraining:``) and of the promotion gates (``validation:``).

Gates read like TFX's Evaluator thresholds and MLflow's ``MetricThreshold``: a metric on a slice
with absolute bounds (``min``/``max``) and bounds relative to the champion (``max_drop`` for
metrics where higher is better, ``max_rise`` for gaps and error rates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from adaptd.modeling.device import DEVICE_PATTERN, AutocastSetting, DtypeSetting
from adaptd.settings_base import Section


class ProbationSettings(Section):
    window_s: float = Field(
        default=3600.0, gt=0, description="How long a newly promoted adapter is on probation."
    )
    min_samples: int = Field(
        default=100,
        ge=1,
        description="Labels (for the labelled accuracy and the gaps) or served predictions (for "
        "the label-free estimate) the new adapter needs before probation can roll back.",
    )
    max_accuracy_drop: float = Field(
        default=0.02,
        ge=0,
        description="Rollback when labelled or estimated accuracy falls this far below the old "
        "adapter's.",
    )
    max_bias_rise: float = Field(
        default=0.05, ge=0, description="Rollback when a bias gap rises this much."
    )
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="A labelled accuracy drop rolls back only when the 1 - alpha interval of "
        "the difference lies below zero (estimates have no interval: their drop suffices).",
    )


class RetrainingSettings(Section):
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="Where the fine-tune runs: a local child process, or a Ray task.",
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster address for executor: ray (default: local Ray)."
    )
    device: str | None = Field(
        default=None,
        pattern=DEVICE_PATTERN,
        description="Where the fine-tune runs: auto, cpu, cuda or cuda:N; null: as model.device. "
        "With executor ray, a cuda device (or auto on a cluster with GPUs) makes the task ask "
        "Ray for one GPU.",
    )
    dtype: DtypeSetting = Field(
        default="float32",
        description="Precision of the frozen base weights while training. LoRA weights, the head "
        "and the optimizer state stay float32 whatever this says, so bfloat16 halves the base's "
        "memory without touching what is learned. float32 by default: exact, and the fastest "
        "on most CPUs.",
    )
    autocast: AutocastSetting = Field(
        default="none",
        description="Mixed precision of the fine-tune: none, bfloat16, or float16 (CUDA only; "
        "the loss is then scaled so small gradients do not underflow). Off by default: float32 "
        "is exact, and CPUs without AVX-512 BF16 or AMX have no fast bfloat16 matmul.",
    )
    mode: Literal["auto", "finetune", "features"] = Field(
        default="auto",
        description="features: fit the classifier head on frozen pooled features (a linear "
        "probe; seconds). finetune: that probe, then LoRA and head together (LP-FT). auto: "
        "finetune, but keep the probe when fine-tuning does not beat it on the dev split (on "
        "a warm start of a sentence-transformers base such as the shipped MiniLM, unless an "
        "epoch is significantly better: one-sided McNemar p < 0.05; "
        "after the demo's shift the epochs that won by a dev row or two gained nothing held "
        "out, bench/adaptation/retrain.py). Default chosen by bench/adaptation/recipe.py "
        "(RECIPE.md).",
    )
    warm_start: bool | Literal["auto"] = Field(
        default="auto",
        description="true: start a retrain from the active adapter's LoRA and head "
        "(incremental); false: a fresh LoRA every time, trained on the new labels and the "
        "replayed rows; auto: fresh where the contrastive stage shapes a fresh LoRA (a "
        "sentence-transformers base, contrastive not off, mode not features), else warm. "
        "After the demo's shift, on the same new labels and replayed tweets, a fresh LoRA "
        "with the stage scored 1.2 points above the warm start on 1,000 held-out movie "
        "snippets on 240 new labels (five draws) and 3.7 above on 450 "
        "(bench/adaptation/retrain.py), at 4 to 7 minutes a retrain at 2 threads where the "
        "warm start took 1 to 2. On SmolLM2, mixed with the champion at 0.75 as proposed, "
        "warm and fresh retrains scored within about a point of each other (two draws, "
        "RECIPE.md).",
    )
    interpolation: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="The candidate's share of the adapter a retrain proposes: its weights are "
        "(1 - x) * champion + x * as trained (WiSE-FT, Wortsman et al. 2022), exact as one "
        "LoRA of the two ranks stacked, refactored to at most twice rank by SVD; the gates "
        "judge that adapter. 1: the candidate as trained. The first adapter has no champion "
        "to mix with, and an adapter that is not plain LoRA (DoRA, rank patterns) or whose "
        "labels changed is kept as trained. After the demo's shift, over five retrains "
        "(three draws of 800 labels, bench/adaptation/retrain.py --interpolations; two of a "
        "kept daemon state, bench/adaptation/interpolation.py) against the adapter each "
        "replaced, on 1,000 held-out movies / 136 tweets: as trained +5.1 / -0.6 points, "
        "0.75 +6.0 / +1.0, 0.5 +4.6 / +2.5. 0.5 served 77.7% / 86.0% end to end and made the "
        "first swap movies -> tweets ever made, but its smaller gain left a make demo with "
        "no swap (RECIPE.md, RESULTS.md runs 21-24).",
    )
    # 0.5, chosen with `python -m bench.adaptation.interpolation STATE --alphas 0.3333,0.6667,1`
    # on the four refinements kept from earlier runs (run 21's as trained; run 24's and two make
    # demo runs' at 0.75): the table is RECIPE.md's "A refinement's share", its means below.
    refinement_interpolation: float | None = Field(
        default=0.5,
        gt=0,
        le=1,
        description="interpolation for a refinement (a policy's retrain after its promotion, "
        "on the champion's labels and more of the same shift); empty: interpolation. The "
        "champion already holds most of the shift's gain, so a refinement's share trades "
        "little target accuracy for the source it would forget: on four refinements of the "
        "demo's shift, against the adapter each refined, on 1,000 held-out movies / 136 "
        "tweets, 0.75 +3.0 / -1.3 points, 0.5 +2.9 / +0.6 (bench/adaptation/interpolation.py, "
        "RECIPE.md); end to end at 0.5, three make demo runs served +6.7 / +1.0 over the first "
        "adapter on average, against +5.7 / -1.5 with refinements at 0.75.",
    )
    contrastive: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="SetFit's contrastive stage (Tunstall et al. 2022) between the probe and the "
        "fine-tune: the LoRA weights learn to pull texts of one label together (cosine loss on "
        "same/different-label pairs of the training rows), then the probe is fitted again; "
        "kept unless the probe before it or a fine-tuned epoch after it is significantly more "
        "accurate on the dev split (one-sided McNemar p < 0.05). auto: on a fresh adapter of a "
        "sentence-transformers base (SetFit's body; modules.json with a pooling module, as the "
        "shipped MiniLM): a first adapter, and a retrain with warm_start: auto; on: whenever a "
        "probe is fitted; off: never. Over more than contrastive_max_rows training rows it runs "
        "on a sample of that many. Measured by bench/adaptation/contrastive.py (RECIPE.md) "
        "with the shipped in-batch pairs: the first adapter on 400 movie snippets +4.6 points over "
        "feature extraction in three draws (the recipe without the stage: -1.1), on the demo's "
        "326 tweets +0.7 (without: +0.2); the stage takes about 3 minutes at 2 threads. A "
        "warm-started retrain does not run it, and on other bases auto leaves it out: on the "
        "tiny random BERT of the tests a kept stage left the adapter at 75% where the "
        "fine-tune alone reached 89%.",
    )
    contrastive_max_rows: int = Field(
        default=500,
        ge=2,
        description="Most training rows the contrastive stage runs on: a larger training set "
        "is sampled to this many (each label keeping its share) for the stage, while the probe "
        "and the fine-tune use every row. Its cost grows with the rows (contrastive_iterations "
        "passes over them: 160 s on 234 rows, 370 s on 500 at 2 threads), and the policy's "
        "retries outgrow a few hundred rows. After the demo's shift a retrain with the stage "
        "on 500 of its 594 rows scored +7.2 points on the held-out movies, on 250 of them +3.5, "
        "no better than the warm start (bench/adaptation/retrain.py).",
    )
    contrastive_iterations: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default="auto",
        description="Passes of the contrastive stage over the training rows (in-batch: every "
        "row once per pass; setfit: each row paired with one row of its label and one of "
        "another). auto: 10 for a first adapter (nothing serves yet; 10 passes at lr 1e-3 "
        "scored +4.6 over feature extraction on 400 movie snippets where 5 at 5e-4 scored "
        "+2.8, bench/adaptation/contrastive.py), 5 for a retrain that replaces the adapter in "
        "service, where the minutes until the swap count: after the demo's shift, on the same "
        "three draws of 450 new labels, 5 passes scored +6.5 points on 1,000 held-out movie "
        "snippets and 10 passes +7.2, with the stage in half the time (150-165 s against "
        "310-370 s at 2 threads; bench/adaptation/retrain.py).",
    )
    contrastive_learning_rate: float = Field(
        default=1e-3,
        gt=0,
        description="Peak learning rate of the LoRA weights in the contrastive stage "
        "(bench/adaptation/contrastive.py, with contrastive_iterations).",
    )
    contrastive_pairing: Literal["setfit", "in-batch"] = Field(
        default="in-batch",
        description="in-batch: every pair among a batch of rows, a batch encoded once. setfit: "
        "SetFit's pairs, each row with a random row of its label and one of another, two texts "
        "encoded per pair (four times the forward passes at equal passes). On 400 movie "
        "snippets SetFit's pairs at 5 passes scored +3.3 over feature extraction in 5.8 "
        "minutes, in-batch pairs at 10 passes +4.6 in 3.2 (bench/adaptation/contrastive.py).",
    )
    rank: int = Field(default=8, ge=1, description="LoRA rank of a fresh adapter.")
    alpha: int = Field(default=16, ge=1, description="LoRA alpha of a fresh adapter.")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] | None = Field(
        default_factory=lambda: ["all-linear"],
        description="Modules a fresh LoRA adapts. all-linear: every linear layer of the encoder "
        "(on BERT query/key/value/dense: +1.3 points over query/value, "
        "bench/adaptation/recipe.py); null: peft's choice for the architecture.",
    )
    epochs: int = Field(
        default=2,
        ge=1,
        description="Fine-tune passes over the training set (bench/adaptation/recipe.py).",
    )
    min_steps: int = Field(
        default=0,
        ge=0,
        description="Fewest fine-tune optimizer steps: a training set smaller than "
        "min_steps * batch_size / epochs gets more epochs. 0 (epochs decide): with 150, the "
        "extra epochs on 200-1,200-row sets were never the checkpoint kept and cost more than "
        "half of each retrain's wall time (bench/adaptation run 2, RECIPE.md); LP-FT keeps "
        "the probe when a short fine-tune does not beat it, so a small set is never starved "
        "below feature extraction. bench/adaptation/steps.py: the same held-out accuracy "
        "within a point at a third (first adapter) and half (retrain) of the wall time.",
    )
    batch_size: int = Field(default=16, ge=1, description="Training batch size.")
    learning_rate: float = Field(
        default=1e-3,
        gt=0,
        description="Peak learning rate of the LoRA weights (bench/adaptation/recipe.py).",
    )
    head_learning_rate: float = Field(
        default=1e-3,
        gt=0,
        description="Peak learning rate of the classifier head while fine-tuning "
        "(bench/adaptation/recipe.py).",
    )
    probe_c: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(
        default="auto",
        description="Inverse L2 strength of the linear probe, as scikit-learn's C. auto: the C "
        "of 0.001-3 (half-decades) with the lowest 5-fold cross-validated loss on the probe's "
        "own rows, since the strength a probe wants depends on the scale of the base's "
        "features: after the demo's shift it picked 0.01 on SmolLM2-135M in every draw (the "
        "C that served 83.6-84.0% end to end) and 0.1-0.3 on MiniLM, 1.6 movie points above "
        "C=1 (python -m bench.adaptation.probe --after-shift; RECIPE.md).",
    )
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    schedule: Literal["linear", "cosine", "constant"] = Field(
        default="cosine", description="Learning-rate decay after warmup."
    )
    warmup_ratio: float = Field(
        default=0.1, ge=0, lt=1, description="Share of steps spent warming the learning rate up."
    )
    early_stopping_patience: int | None = Field(
        default=None,
        ge=1,
        description="Stop after this many epochs without a better dev score (null: run every "
        "epoch; the best one on dev is kept either way).",
    )
    dev_fraction: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Share of the training set held aside to pick the best checkpoint.",
    )
    dev_from: Literal["new", "all"] = Field(
        default="new",
        description="Where the dev rows come from when a retrain mixes replayed rows with new "
        "labels. new: from the new labels only, the data the gates judge the candidate on "
        "(replayed source rows are easy for every checkpoint and hid whether fine-tuning "
        "learnt the new domain; with new, bench/adaptation run 2 kept fine-tuned epochs and "
        "its retrain was promoted at +9.1 points: RESULTS.md). all: every row.",
    )
    select_by: Literal["accuracy", "loss"] = Field(
        default="accuracy",
        description="What picks the checkpoint on the dev rows: accuracy (loss breaks ties) "
        "or the weighted dev loss (bench/adaptation/recipe.py --shift compares them).",
    )
    max_length: int | None = Field(
        default=None, ge=8, description="Tokens per training text (default: model.max_length)."
    )
    seed: int = Field(default=0, description="Seed of shuffles, sampling and initialisation.")
    threads: int = Field(
        default=1,
        ge=1,
        description="torch threads of the training child. 1: measured by "
        "bench/adaptation/threads.py with the daemon serving 10 predictions/s beside it on "
        "the 2-core box under load (load average 8-10), 1 thread trained at 6.5 samples/s and "
        "2 threads at 1.6 (their OpenMP workers wait on each other when cores are taken), "
        "with a serving p99 no better; more threads pay only on cores nothing else uses.",
    )
    timeout_s: float = Field(default=3600.0, gt=0, description="A run longer than this is killed.")
    nice: int = Field(
        default=10, ge=0, le=19, description="Niceness of the training child, so serving wins."
    )
    late_labels: bool = Field(
        default=True,
        description="Judge a candidate also on the labels given while it trained (after the "
        "run's data snapshot; neither model trained on them; at most max_late_labels, the "
        "newest), so the recent gate sees more rows than the run's holdout. On: "
        "bench/adaptation run 2 rejected a +9.6-point gain on 83 held-out labels while about "
        "800 more arrived during the run, and confirmed it 10 minutes later (RESULTS.md).",
    )
    max_late_labels: int = Field(
        default=400,
        ge=0,
        description="Most late labels judged on (the newest): both models score each one, in "
        "a second child. 400: with a holdout of about 100 the recent slice holds about 500 "
        "rows, where the gates benchmark (GATES.md, 'how many late labels') promotes a better "
        "candidate as often as with 900 (0.65); on SmolLM2-135M, scoring 870 late labels was "
        "the longest phase of a retrain (6.4 minutes, bench/adaptation run 7).",
    )
    # --- data ----------------------------------------------------------------------------------
    min_labels: int = Field(
        default=50, ge=2, description="Fewest labelled examples a retrain accepts."
    )
    max_labels: int = Field(
        default=2000, ge=2, description="Newest labelled examples taken from the store."
    )
    holdout_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Share of the newest labelled data held out for validation.",
    )
    min_holdout: int = Field(default=20, ge=1, description="Fewest held-out examples.")
    # 1.0, chosen with `python -m bench.adaptation.steps --replay-ratios 0.5,1` (RECIPE.md): on
    # the demo's shift, over 4 seeds, as many replayed source rows as new labels kept 2.6 more
    # points of source accuracy than 0.5 and gained 1.2 more on the target; over 10 seeds the
    # retrain at 1.0 lost 0.5 source points on average.
    replay_ratio: float = Field(
        default=1.0,
        ge=0,
        description="Replayed earlier examples per new training example (anti-forgetting).",
    )
    reservoir_size: int = Field(
        default=5000, ge=0, description="Examples kept in the replay reservoir."
    )
    balance: Literal["none", "reweight", "oversample"] = Field(
        default="reweight", description="Class balancing of the training set."
    )
    group_attributes: list[str] = Field(
        default_factory=list,
        description="Attributes whose under-served groups are up-weighted (a bias policy may "
        "add to this per run).",
    )
    require_approval: bool = Field(
        default=False,
        description="A validated candidate waits for an operator's promote instead of going live.",
    )
    probation: ProbationSettings = Field(
        default_factory=ProbationSettings,
        description="After a promotion: when the new adapter is rolled back automatically.",
    )
    # 7 days: a run that failed on Friday can still be diagnosed on Monday, and the raw
    # training texts a run directory holds do not outlive a week.
    run_dir_max_age_s: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="Directories of failed or interrupted runs (their spec, progress, stderr and "
        "training texts) older than this are removed when the daemon starts.",
    )
    # 1 hour: copying an adapter into the registry takes seconds, so a temporary directory this
    # old is a crash's leftover, never an import still in progress in another process.
    tmp_max_age_s: float = Field(
        default=3600.0,
        gt=0,
        description="Temporary directories of interrupted adapter copies older than this are "
        "removed when the daemon starts.",
    )

    @model_validator(mode="after")
    def _labels_fit(self) -> RetrainingSettings:
        if self.max_labels < self.min_labels:
            raise ValueError(
                f"max_labels ({self.max_labels}) is below min_labels ({self.min_labels})"
            )
        return self


GateMetric = Literal["accuracy", "macro_f1", "error_rate", "dp_diff", "accuracy_gap"]
#: metrics where a lower value is better (gaps and error rates)
LOWER_IS_BETTER = frozenset({"error_rate", "dp_diff", "accuracy_gap"})
GROUP_METRICS = frozenset({"dp_diff", "accuracy_gap"})


class GateSettings(Section):
    metric: GateMetric = Field(
        description="accuracy, macro_f1, error_rate (on recent/golden); dp_diff (largest gap in "
        "positive rate between groups) or accuracy_gap (between groups) on an attribute slice."
    )
    slice: str = Field(
        description="recent (held-out newest labels), golden (the fixed golden set), or the "
        "name of a group attribute for dp_diff/accuracy_gap (measured on recent)."
    )
    min: float | None = Field(
        default=None, description="Absolute lower bound on the candidate's value (point)."
    )
    max: float | None = Field(
        default=None, description="Absolute upper bound on the candidate's value (point)."
    )
    min_gain: float | None = Field(
        default=None,
        description="The candidate must beat the champion by more than this, with confidence: "
        "the lower end of the interval of the improvement must be above it (0: significantly "
        "better). For error_rate and gaps an improvement is a decrease.",
    )
    max_drop: float | None = Field(
        default=None,
        ge=0,
        description="Most a higher-is-better metric may fall below the champion: fails when "
        "the drop is larger than this and significant (the interval of the difference lies "
        "below 0), so noise alone never fails it.",
    )
    max_rise: float | None = Field(
        default=None,
        ge=0,
        description="Most a lower-is-better metric (error_rate, gaps) may rise above the "
        "champion: fails when the rise is larger than this and significant.",
    )
    alpha: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="This gate's own validation.alpha (its intervals are two-sided at "
        "1 - alpha); unset: validation.alpha. A larger alpha makes max_drop/max_rise fail on "
        "weaker evidence of a loss and min_gain pass on weaker evidence of a gain.",
    )

    @property
    def name(self) -> str:
        return f"{self.metric}@{self.slice}"

    @model_validator(mode="after")
    def _has_bound(self) -> GateSettings:
        bounds = (self.min, self.max, self.min_gain, self.max_drop, self.max_rise)
        if all(v is None for v in bounds):
            raise ValueError(
                f"gate {self.name} has no bound (min, max, min_gain, max_drop or max_rise)"
            )
        group_metric = self.metric in GROUP_METRICS
        if group_metric == (self.slice in {"recent", "golden"}):
            raise ValueError(
                f"gate {self.name}: dp_diff/accuracy_gap take an attribute slice, "
                "the other metrics take recent or golden"
            )
        lower_better = self.metric in LOWER_IS_BETTER
        if lower_better and self.max_drop is not None:
            raise ValueError(
                f"gate {self.name}: {self.metric} is better when lower; bound its rise with "
                "max_rise, not max_drop"
            )
        if not lower_better and self.max_rise is not None:
            raise ValueError(
                f"gate {self.name}: {self.metric} is better when higher; bound its fall with "
                "max_drop, not max_rise"
            )
        return self


def _default_gates() -> list[GateSettings]:
    # Chosen with bench/adaptation/gates.py (numbers in bench/adaptation/GATES.md): no
    # shuffled-label or worse-on-target candidate was promoted in any run, a candidate that also
    # learned the target domain was promoted in 70-77 % of runs from 200-250 held-out labels,
    # and a clear loss on the golden set (the interval below zero) is never accepted. The golden
    # gate judges at alpha 0.3 (a one-sided 15 % test): on golden sets of 91-300 rows it halves
    # the promotions of a candidate that forgets 9 source points (0.27 -> 0.16, 0.21 -> 0.09)
    # for 0-0.11 fewer promotions of the good one ("golden alpha", GATES.md).
    return [
        GateSettings(metric="accuracy", slice="recent", min_gain=0.0),
        GateSettings(metric="accuracy", slice="golden", max_drop=0.02, alpha=0.3),
    ]


class ValidationSettings(Section):
    gates: list[GateSettings] = Field(
        default_factory=_default_gates,
        description="Every gate must pass for a candidate to be promoted. A first adapter (no "
        "champion) must also beat always answering the majority class on every judged slice.",
    )
    not_judged: Literal["block", "pass"] = Field(
        default="block",
        description="What a gate that cannot be judged (missing slice, too few rows, fewer than "
        "two groups of monitors.min_group_size) does to the verdict: block the promotion, or "
        "let the other gates decide.",
    )
    alpha: float = Field(
        default=0.10,
        gt=0,
        lt=1,
        description="Every interval in a verdict is two-sided at 1 - alpha, so each gate tests "
        "its own side at alpha/2 (0.10: one-sided 5 % tests). Chosen with "
        "bench/adaptation/gates.py: at 0.10 no shuffled-label or worse candidate was promoted "
        "in 600 runs, and better candidates were promoted more often than at 0.05.",
    )
    bootstrap_samples: int = Field(
        default=1000,
        ge=100,
        description="Resamples of the intervals without a closed form (macro_f1, group gaps).",
    )
    golden_file: Path | None = Field(
        default=None,
        description="Labelled CSV/JSONL golden set; default: a frozen sample of the first "
        "training data.",
    )
    golden_size: int = Field(
        default=500, ge=10, description="Size of the frozen golden sample when no file is given."
    )
    refinement_margin: float = Field(
        default=0.02,
        ge=0,
        le=0.5,
        description="A refinement (a policy's retrain after its promotion, on the champion's "
        "labels and more of the same shift) passes a min_gain gate when its measured gain is at "
        "least min_gain and the lower end of the gain's interval is above min_gain minus this "
        "margin: no worse, rather than surely better; its max_drop/max_rise gates then fail on "
        "the measured change beyond their bound, significant or not, measured on the golden "
        "slice against the adapter its episode started from. Chosen with "
        "bench/adaptation/gates.py --refinement and bench/adaptation/refinement.py (GATES.md).",
    )
    seed: int = Field(default=0, description="Seed of the bootstrap.")

    @model_validator(mode="after")
    def _unique_gates(self) -> ValidationSettings:
        names = [g.name for g in self.gates]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"gate {twice[0]} is declared twice; put all its bounds in one gate")
        return self
