"""The fine-tune itself: a plain torch loop over a peft LoRA model, run inside a child process.

The recipe is linear-probe-then-fine-tune (LP-FT, Kumar et al. 2022), chosen by
``bench/adaptation/recipe.py`` (numbers in bench/adaptation/RECIPE.md):

1. **probe**: one frozen forward pass over the data, then the head is fitted on the pooled
   features by L2 logistic regression (:mod:`adaptd.modeling.probe`). Mode ``features`` stops
   here: a frozen encoder and a fitted head, i.e. feature extraction.
2. **contrastive** (a fresh LoRA of a sentence encoder, ``auto``; a first adapter, and a
   retrain under ``warm_start: auto``): SetFit's stage (:mod:`adaptd.retraining.contrastive`)
   pulls same-label texts together in the LoRA weights, on at most ``contrastive_max_rows``
   rows (a sample of a larger set), then the probe is fitted again on the new features. The
   probe before it, or an epoch after it, replaces it only when significantly better on dev
   (:data:`STAGE_OVERRIDE_P`); ``bench/adaptation/contrastive.py`` measured it.
3. **fine-tune**: LoRA weights and head together, each with its own learning rate (the head
   starts fitted, the LoRA matrices at zero, so they want different step sizes), warmup then
   decay, for ``epochs`` but at least ``min_steps`` optimizer steps (600 rows would otherwise get
   70 steps and barely move).
4. **select**: every epoch is scored on a dev split carved from the training data (accuracy,
   then loss); the best state is restored. In mode ``auto`` the probe is checkpoint 0, so a
   fine-tune that does not beat feature extraction on dev falls back to it. On a warm start
   of a sentence-transformers base the probe (the champion's features, the head refitted on the
   new rows) gives way to an epoch only when that one is significantly better on dev, as the
   contrastive stage does (:data:`STAGE_OVERRIDE_P`; ``bench/adaptation/retrain.py``).

No Hugging Face ``Trainer``: on 2 CPU cores its per-step overhead (callbacks, accelerate, logging)
is measurable, and we need little of it. Texts are tokenized once and batched from length-sorted
chunks padded to their own longest text; the loss is cross-entropy weighted per example (class
and group weights from dataset assembly). The adapter is saved into ``out_dir`` only at the very
end: a run that dies leaves no adapter.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from adaptd.retraining.spec import Progress, TrainResult, TrainSpec

logger = logging.getLogger(__name__)

#: batches are drawn from chunks of this many batches sorted by length
_BUCKET_BATCHES = 50


def write_train_file(
    path: Path,
    rows: Sequence[tuple[str, str, float]],
    *,
    replayed: Sequence[bool] | None = None,
) -> None:
    """(text, label, weight) rows as JSONL, the trainer's input format; ``replayed`` marks the
    rows replayed from earlier data (the others are the new labels the run was started for)."""
    flags = [False] * len(rows) if replayed is None else list(replayed)
    if len(flags) != len(rows):
        raise ValueError(f"{len(flags)} replayed flags for {len(rows)} training rows")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for (text, label, weight), old in zip(rows, flags, strict=True):
            row: dict[str, Any] = {"text": text, "label": label, "weight": weight}
            if old:
                row["replayed"] = True
            f.write(json.dumps(row) + "\n")


def read_train_file(path: Path) -> list[TrainRow]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                rows.append(
                    TrainRow(
                        text=str(d["text"]),
                        label=str(d["label"]),
                        weight=float(d.get("weight", 1.0)),
                        replayed=bool(d.get("replayed", False)),
                    )
                )
    return rows


@dataclass(frozen=True, slots=True)
class TrainRow:
    text: str
    label: str
    weight: float
    #: replayed from earlier data, not one of the new labels the run was started for
    replayed: bool = False


def split_dev(
    rows: Sequence[TrainRow], fraction: float, dev_from: str
) -> tuple[list[TrainRow], list[TrainRow]]:
    """(dev, train) from already shuffled rows.

    ``dev_from: new`` draws the dev rows from the new labels only when the run mixes them with
    replayed ones: a retrain is judged by the gates on held-out *new* labels, and replayed
    source rows in the dev split (easy for every checkpoint, the probe included) hide whether
    fine-tuning learnt the new domain. ``all`` draws from every row. Either way a split that
    would leave fewer than two rows on a side is not made (no dev split, the last epoch is kept).
    """
    pool = [r for r in rows if not r.replayed] if dev_from == "new" else list(rows)
    if not pool:  # a file without new rows (replay only): judge on what there is
        pool = list(rows)
    n_dev = round(fraction * len(pool))
    if n_dev < 2 or len(rows) - n_dev < 2:
        return [], list(rows)
    dev_ids = {id(r) for r in pool[:n_dev]}
    return pool[:n_dev], [r for r in rows if id(r) not in dev_ids]


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based) of ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(0.0, 1.0 - progress)


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort chunks by length, cut into batches, shuffle the batches: little padding,
    still a different order every epoch."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * _BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def build_model(spec: TrainSpec, device: str = "cpu") -> tuple[Any, Any]:
    """Tokenizer and the peft model to train, warm-started from an adapter or a fresh LoRA, on
    ``device``. The base weights are in ``spec.dtype``; peft keeps LoRA weights float32 (its
    ``autocast_adapter_dtype``) and the head is float32, so what is trained is never half."""
    from adaptd.modeling.base import load_classifier, load_tokenizer
    from adaptd.modeling.lora import LoraSpec, load_adapter, new_adapter

    tokenizer = load_tokenizer(spec.base)
    model = load_classifier(
        spec.base,
        spec.labels,
        tokenizer=tokenizer,
        pooling=spec.pooling,
        safetensors_only=spec.safetensors_only,
        dtype=spec.dtype,
    )
    if spec.warm_start:
        model = load_adapter(model, Path(spec.warm_start), trainable=True)
    else:
        lora = LoraSpec(
            rank=spec.rank,
            alpha=spec.alpha,
            dropout=spec.dropout,
            target_modules=spec.target_modules,
        )
        model = new_adapter(model, lora)
    if spec.mode == "features":
        for name, param in model.named_parameters():
            param.requires_grad = "modules_to_save" in name
    return tokenizer, model.to(device)


def runs_contrastive(spec: TrainSpec, *, is_decoder: bool, sentence_encoder: bool) -> bool:
    """Whether the contrastive stage runs (on at most ``contrastive_max_rows`` rows, a sample of
    a larger set). ``auto``: on a fresh LoRA (a warm start already has learnt features to keep)
    of a sentence-transformers encoder (SetFit's setting: a body trained for embeddings. On the
    tiny random BERT of the tests a kept stage cost 14 points the fine-tune alone learnt; a
    decoder's last-token features were not measured, and its forward passes cost ten times
    MiniLM's)."""
    if spec.mode == "features" or spec.contrastive == "off":
        return False
    if spec.contrastive == "on":
        return True
    return spec.warm_start is None and sentence_encoder and not is_decoder


def starts_warm(
    warm_start: bool | Literal["auto"], *, sentence_encoder: bool, contrastive: str, mode: str
) -> bool:
    """Whether a retrain with a champion starts from the champion's LoRA and head. ``auto``: a
    fresh LoRA where the contrastive stage would shape it (a sentence-transformers base, the
    stage not off, not ``mode: features``), else warm. After the demo's shift a fresh LoRA with
    the stage beat the warm start by 1.2 points on 240 new labels and 3.7 on 450
    (bench/adaptation/retrain.py); on other bases a warm start is what was measured (SmolLM2,
    the tests' tiny BERT). On SmolLM2 a fresh LoRA was ahead on both domains as trained, but
    mixed with the champion, as it is proposed, 1.2 points behind on the target and 1.1 ahead
    on the source (+10.7 / +6.2 against warm's +11.9 / +5.1, two draws; RECIPE.md, "SmolLM2's
    retrains: warm or fresh"): no reason to change."""
    if warm_start != "auto":
        return bool(warm_start)
    return not (sentence_encoder and contrastive != "off" and mode != "features")


def probe_strength(
    probe_c: float | Literal["auto"],
    features: Any,
    labels: Any,
    weights: Any,
    *,
    num_labels: int,
    bias: bool = True,
) -> float:
    """The linear probe's C (scikit-learn's inverse L2 strength). ``auto``: the C of
    :data:`~adaptd.modeling.probe.C_GRID` with the lowest 5-fold cross-validated loss on the rows
    the probe is fitted on (seconds on the cached features). The strength a probe wants depends
    on the scale of the features, which differs between bases (a decoder's last hidden state
    has a few dimensions far larger than the rest): after the demo's shift the loss picked 0.01
    on SmolLM2-135M in every draw, the C chosen by hand from a grid that served 83.6-84.0% end
    to end, and 0.1-0.3 on MiniLM, where it scored 1.6 movie and 1.5 tweet points above C=1
    (``python -m bench.adaptation.probe --after-shift``, RECIPE.md); cross-validated accuracy,
    coarser on a few hundred rows, scored less on both."""
    if probe_c != "auto":
        return float(probe_c)
    from adaptd.modeling.probe import CV_FOLDS, best_c, cross_validate_c

    if len(labels) < 2 * CV_FOLDS:
        return 1.0  # too few rows to hold any out: scikit-learn's default
    scores = cross_validate_c(features, labels, weights, num_labels=num_labels, bias=bias)
    return best_c(scores, by="loss")


#: passes of the contrastive stage under ``contrastive_iterations: auto``: first adapter, retrain
FIRST_ADAPTER_PASSES, RETRAIN_PASSES = 10, 5


def stage_passes(iterations: int | Literal["auto"], *, replaces_champion: bool) -> int:
    """Passes of the contrastive stage. ``auto``: 10 for a first adapter, 5 for a retrain that
    replaces a serving adapter. A first adapter is trained before traffic depends on it; a
    retrain runs while the stale adapter serves the shifted traffic, so its minutes count:
    after the demo's shift 5 passes scored +6.5 points on held-out movies against 10 passes'
    +7.2 on the same three draws, with the stage in half the time (bench/adaptation/retrain.py,
    variants fresh-stage and fresh-stage-10)."""
    if iterations != "auto":
        return iterations
    return RETRAIN_PASSES if replaces_champion else FIRST_ADAPTER_PASSES


def is_sentence_encoder(base: str) -> bool:
    """Whether ``base`` is a sentence-transformers directory (``modules.json`` with a pooling
    module), as the shipped all-MiniLM-L6-v2 is."""
    from adaptd.modeling.pooling import sentence_transformers_pooling

    path = Path(base)
    return path.is_dir() and sentence_transformers_pooling(path) is not None


def trainable_head(model: Any) -> Any:
    """The head copy peft trains and saves (inside ``modules_to_save``), not the frozen original."""
    import torch

    from adaptd.modeling.lora import classifier_of

    name = classifier_of(model).head_name
    for module_name, module in model.named_modules():
        if (
            isinstance(module, torch.nn.Linear)
            and "modules_to_save" in module_name
            and module_name.split(".")[-3] == name
        ):
            return module
    raise RuntimeError(f"no trainable {name} head in modules_to_save")


@dataclass(slots=True)
class _Encoded:
    ids: list[list[int]]
    y: Any
    w: Any


#: the contrastive stage gives way to the probe, or to a fine-tuned epoch, only when that one is
#: right on significantly more dev rows (one-sided exact McNemar test, :func:`mcnemar_p`). On
#: the few dozen dev rows of a small first adapter, "more accurate on dev" is mostly noise: on
#: 400 movie snippets an epoch 10 points ahead of the stage on 40 dev rows was 8 points behind
#: it on 1,000 held-out ones, and the probe 2.5 points ahead was 5.6 behind; the stage beat the
#: probe on held-out rows in all six draws (bench/adaptation/contrastive.py, RECIPE.md).
#: The same test guards a warm start's probe (the champion's features, the head refitted on
#: the new and replayed rows) against its fine-tuned epochs: after the demo's shift, over 12
#: retrains on 240-540 new labels (bench/adaptation/retrain.py), the epochs scored 1.7 points
#: below that probe on 1,000 held-out movie snippets on average, two of them 12-13 below, and
#: the four that won on 19-43 dev rows (by 1-3 rows) gained nothing on average (+0.1). In the
#: demo, one such epoch, ahead of the probe by one dev row, was 10 points behind the champion.
STAGE_OVERRIDE_P = 0.05


@dataclass(frozen=True, slots=True)
class _Score:
    accuracy: float
    loss: float
    #: per dev row, whether the checkpoint got it right (paired tests between checkpoints)
    correct: Any = None

    def beats(self, other: _Score | None, select_by: str) -> bool:
        # accuracy: what the gates judge, loss breaking the ties small dev sets produce often.
        # loss: smoother on a few dozen dev rows, where one example is 2 points of accuracy.
        if other is None:
            return True
        if select_by == "loss":
            return (-self.loss, self.accuracy) > (-other.loss, other.accuracy)
        return (self.accuracy, -self.loss) > (other.accuracy, -other.loss)


def _clearly_beats(other: _Score, guarded: _Score | None) -> bool:
    """Whether the probe or an epoch may replace a guarded checkpoint (the contrastive stage, a
    warm start's probe, or under ``TrainSpec.epochs_over_probe`` the best epoch; see
    :data:`STAGE_OVERRIDE_P`); True when none is guarded."""
    if guarded is None:
        return True
    from adaptd.evaluation.measures import mcnemar_p

    p = mcnemar_p(other.correct, guarded.correct)
    logger.info("against the guarded checkpoint on dev: one-sided McNemar p = %.3f", p)
    return p < STAGE_OVERRIDE_P


def _snapshot(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _restore(model: Any, state: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in state:
                param.copy_(state[name])


def train(
    spec: TrainSpec,
    report: Callable[[Progress], None],
    *,
    on_checkpoint: Callable[[str, Any], None] | None = None,
) -> TrainResult:
    """Run the recipe described by ``spec``; saves the adapter to ``spec.out_dir``.

    ``on_checkpoint(name, model)`` is called at the probe and after every epoch, before the
    selection (benchmarks score every checkpoint on held-out rows with it).
    """
    import torch
    import torch.nn.functional as F  # noqa: N812 - the usual torch spelling

    from adaptd.modeling.device import (
        autocast_context,
        check_autocast,
        check_dtype,
        needs_grad_scaler,
        resolve_device,
    )
    from adaptd.modeling.interpolation import interpolate_adapters
    from adaptd.modeling.lora import classifier_of, save_adapter
    from adaptd.modeling.probe import extract_features, fit_linear_probe, pad_batch
    from adaptd.retraining.contrastive import fit_contrastive, mixed_sample, stratified_sample

    device = resolve_device(spec.device, key="retraining.device")
    check_dtype(spec.dtype, device, key="retraining.dtype")
    check_autocast(spec.autocast, device)
    torch.set_num_threads(spec.threads)
    if spec.rescore is not None:
        return _rescore(spec, spec.rescore, device)
    random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)

    rows = read_train_file(Path(spec.train_file))
    label_index = {label: i for i, label in enumerate(spec.labels)}
    rng.shuffle(rows)
    dev_rows, train_rows = split_dev(rows, spec.dev_fraction, spec.dev_from)

    tokenizer, model = build_model(spec, device)
    classifier = classifier_of(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(items: list[TrainRow]) -> _Encoded:
        ids = tokenizer([r.text for r in items], truncation=True, max_length=spec.max_length)[
            "input_ids"
        ]
        labels = torch.tensor([label_index[r.label] for r in items], dtype=torch.long)
        weights = torch.tensor([r.weight for r in items], dtype=torch.float32)
        return _Encoded(ids, labels.to(device), weights.to(device))

    data = encode(train_rows)
    dev = encode(dev_rows) if dev_rows else None
    started = time.perf_counter()
    probe_cs: list[float] = []

    def fit_head() -> None:
        head = trainable_head(model)
        features = extract_features(classifier, data.ids, pad_id).cpu()
        y, w, has_bias = data.y.cpu(), data.w.cpu(), head.bias is not None
        c = probe_strength(spec.probe_c, features, y, w, num_labels=len(spec.labels), bias=has_bias)
        probe_cs.append(c)
        logger.info("linear probe at C=%g (probe_c: %s)", c, spec.probe_c)
        weight, bias = fit_linear_probe(
            features, y, w, num_labels=len(spec.labels), c=c, bias=has_bias
        )
        with torch.no_grad():
            head.weight.copy_(weight)
            if bias is not None:
                head.bias.copy_(bias)

    # 1. linear probe on frozen features (checkpoint 0)
    probing = spec.linear_probe or spec.mode == "features"
    if probing:
        report(_progress(0, 0, 0, 0, 0.0, 0, started, phase="probe"))
        fit_head()

    def dev_score() -> _Score | None:
        if dev is None:
            return None
        model.eval()
        rights: list[Any] = []
        total_loss, total_weight = 0.0, 0.0
        step = spec.batch_size * 2
        with torch.inference_mode():
            for start in range(0, len(dev.ids), step):
                ids, mask = pad_batch(dev.ids[start : start + step], pad_id)
                with autocast_context(spec.autocast, device):
                    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                logits = logits.float()
                y, w = dev.y[start : start + step], dev.w[start : start + step]
                total_loss += float((F.cross_entropy(logits, y, reduction="none") * w).sum())
                total_weight += float(w.sum())
                rights.append((logits.argmax(dim=-1) == y).cpu())
        model.train()
        correct = torch.cat(rights).numpy()
        return _Score(
            accuracy=float(correct.mean()), loss=total_loss / total_weight, correct=correct
        )

    history: list[dict[str, Any]] = []

    def checkpoint(name: str, score: _Score | None) -> None:
        history.append(
            {
                "checkpoint": name,
                "dev_accuracy": None if score is None else round(score.accuracy, 6),
                "dev_loss": None if score is None else round(score.loss, 6),
            }
        )
        if on_checkpoint is not None:
            model.eval()
            on_checkpoint(name, model)
            model.train()

    probe_score = dev_score() if probing else None
    if probing:
        checkpoint("probe", probe_score)
    best: _Score | None = None
    best_state: dict[str, Any] | None = None
    chosen = "probe" if probing else "initial head"
    if probing and spec.mode in {"auto", "features"}:
        best, best_state = probe_score, _snapshot(model)
    if probe_score is not None:
        logger.info("probe: dev accuracy %.4f, loss %.4f", probe_score.accuracy, probe_score.loss)

    # The checkpoint an epoch must beat significantly (_clearly_beats), not by a dev row or
    # two: a warm start's probe, then the contrastive stage while it is the one kept.
    # Only on a sentence-transformers base, the body the benchmark measured, as the stage's
    # auto: on the tiny random BERT of the tests the champion's features do not hold a new
    # domain, and only epochs (ahead by a few of 32 dev rows) learnt it.
    guarded: _Score | None = None
    sentence_encoder = is_sentence_encoder(spec.base)
    if spec.warm_start and spec.mode == "auto" and sentence_encoder:
        guarded = probe_score

    # 2. contrastive stage, then the probe again on its features
    contrastive: dict[str, Any] | None = None
    if probing and runs_contrastive(
        spec,
        is_decoder=classifier.is_decoder,
        sentence_encoder=sentence_encoder,
    ):
        stage_started = time.perf_counter()

        def on_step(done: int, steps: int, loss: float) -> None:
            if done % spec.report_every == 0 or done == steps:
                report(_progress(0, 0, done, steps, loss, 0, started, phase="contrastive"))

        # A larger training set is sampled, not skipped: a retrain's rows grow with every
        # retry, and the stage's minutes count against shift -> swap.
        labels = [int(y) for y in data.y.cpu()]
        sample = (
            stratified_sample(labels, spec.contrastive_max_rows, random.Random(spec.seed))
            if spec.contrastive_replay_share is None
            else mixed_sample(
                labels,
                [r.replayed for r in train_rows],
                spec.contrastive_max_rows,
                spec.contrastive_replay_share,
                random.Random(spec.seed),
            )
        )
        stats = fit_contrastive(
            classifier,
            [data.ids[i] for i in sample],
            [labels[i] for i in sample],
            pad_id,
            [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n],
            iterations=spec.contrastive_iterations,
            learning_rate=spec.contrastive_learning_rate,
            batch_size=spec.batch_size,
            seed=spec.seed,
            pairing=spec.contrastive_pairing,
            on_step=on_step,
        )
        fit_head()
        score = dev_score()
        checkpoint("contrastive", score)
        contrastive = {
            **asdict(stats),
            "rows": len(sample),
            "replayed": sum(train_rows[i].replayed for i in sample),
            "seconds": round(time.perf_counter() - stage_started, 1),
            "dev_accuracy": None if score is None else round(score.accuracy, 6),
        }
        logger.info("contrastive stage: %s", contrastive)
        # Kept unless the probe is significantly more accurate on dev. Not `beats`: on a dev
        # split of a few dozen rows one row is 3 points, the size of the gain measured on
        # held-out rows, and the loss compares calibration, not accuracy, between two feature
        # spaces.
        if spec.mode != "auto" or score is None or best is None:
            chosen = "contrastive"
        elif not _clearly_beats(best, score):
            best, best_state, chosen, guarded = score, _snapshot(model), "contrastive", score
        elif best_state is not None:
            _restore(model, best_state)  # the fine-tune starts from the probe that won

    # The probe steps aside for the epochs, and comes back only if clearly better (after them).
    probe_in_reserve: tuple[_Score, dict[str, Any]] | None = None
    if (
        spec.epochs_over_probe
        and spec.mode == "auto"
        and guarded is None
        and chosen == "probe"
        and best is not None
        and best_state is not None
    ):
        probe_in_reserve, best, best_state = (best, best_state), None, None

    # 3. fine-tune LoRA and head
    steps_per_epoch = math.ceil(len(data.ids) / spec.batch_size)
    epochs = 0 if spec.mode == "features" else spec.epochs
    if epochs:
        epochs = max(epochs, math.ceil(spec.min_steps / steps_per_epoch))
    total = steps_per_epoch * epochs
    head_params = [
        p for n, p in model.named_parameters() if p.requires_grad and "modules_to_save" in n
    ]
    lora_params = [
        p for n, p in model.named_parameters() if p.requires_grad and "modules_to_save" not in n
    ]
    trainable = sum(p.numel() for p in head_params + lora_params)
    step = seen = epochs_run = 0
    running = 0.0
    stale = 0
    stopped_early = False
    if total:
        optimizer = torch.optim.AdamW(
            [
                {"params": lora_params, "lr": spec.learning_rate},
                {"params": head_params, "lr": spec.head_learning_rate},
            ],
            weight_decay=spec.weight_decay,
        )
        warmup = round(spec.warmup_ratio * total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, total, warmup, spec.schedule)
        )
        lengths = [len(ids) for ids in data.ids]
        scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(spec.autocast) else None
        model.train()
        for epoch in range(1, epochs + 1):
            epochs_run = epoch
            for batch in length_batches(lengths, spec.batch_size, rng):
                ids, mask = pad_batch([data.ids[i] for i in batch], pad_id)
                with autocast_context(spec.autocast, device):
                    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                # The loss in float32 whatever autocast computed the logits in.
                per_example = F.cross_entropy(logits.float(), data.y[batch], reduction="none")
                loss = (per_example * data.w[batch]).mean()
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                seen += len(batch)
                value = float(loss.detach())
                running = 0.9 * running + 0.1 * value if step > 1 else value
                if step % spec.report_every == 0 or step == total:
                    report(_progress(epoch, epochs, step, total, running, seen, started))
            current = dev_score()
            checkpoint(f"epoch {epoch}", current)
            if current is None:
                chosen = f"epoch {epoch}"
                continue
            logger.info(
                "epoch %d: dev accuracy %.4f, loss %.4f", epoch, current.accuracy, current.loss
            )
            if current.beats(best, spec.select_by) and _clearly_beats(current, guarded):
                best, best_state, stale, chosen = current, _snapshot(model), 0, f"epoch {epoch}"
            else:
                stale += 1
                if spec.early_stopping_patience and stale >= spec.early_stopping_patience:
                    stopped_early = True
                    break
    train_seconds = time.perf_counter() - started
    if probe_in_reserve is not None and (best is None or _clearly_beats(probe_in_reserve[0], best)):
        (best, best_state), chosen = probe_in_reserve, "probe"
    if best_state is not None:
        _restore(model, best_state)
    logger.info("kept %s (dev %s)", chosen, best)
    out_dir = Path(spec.out_dir)
    model.eval().to("cpu")  # the saved tensors are CPU tensors wherever training ran
    save_adapter(
        model,
        out_dir,
        spec.labels,
        {
            "trained_on": len(train_rows),
            "warm_start": spec.warm_start,
            "mode": spec.mode,
            "kept": chosen,
            "seed": spec.seed,
        },
    )
    interpolated = None
    if spec.champion and spec.interpolation < 1:
        interpolated = interpolate_adapters(
            Path(spec.champion), out_dir, spec.interpolation, max_rank=2 * spec.rank
        )
        if interpolated is not None:
            logger.info(
                "interpolated with the champion: %.2f of the candidate, rank %d",
                spec.interpolation,
                interpolated,
            )
            # Scored as it will be served: read back from the files just written.
            _, model = build_model(replace(spec, warm_start=spec.out_dir, mode="finetune"))
            model.eval()
    model.to(device)
    predictions: dict[str, dict[str, list[int]]] = {}
    scores: dict[str, dict[str, Any]] = {}
    if spec.eval_file:
        from adaptd.retraining.scoring import read_eval_file, score_candidate, score_champion

        report(_progress(epochs_run, epochs, step, total, running, seen, started, phase="validate"))
        slices = read_eval_file(Path(spec.eval_file))
        predictions["candidate"], scores = score_candidate(
            model, tokenizer, slices, max_length=spec.max_length
        )
        options = _scoring_options(spec, device)
        if spec.champion:
            predictions["champion"] = score_champion(
                spec.base, spec.labels, Path(spec.champion), slices, **options
            )
        if spec.baseline and slices.get("golden"):
            predictions["baseline"] = score_champion(
                spec.base, spec.labels, Path(spec.baseline), {"golden": slices["golden"]}, **options
            )
    return TrainResult(
        adapter_dir=spec.out_dir,
        epochs_run=epochs_run,
        steps=step,
        samples=seen,
        train_seconds=round(train_seconds, 3),
        samples_per_s=round(seen / train_seconds, 2) if train_seconds else 0.0,
        best_dev_loss=None if best is None else round(best.loss, 6),
        stopped_early=stopped_early,
        trainable_params=trainable,
        device=device,
        kept=chosen,
        probe_dev_accuracy=None if probe_score is None else round(probe_score.accuracy, 6),
        best_dev_accuracy=None if best is None else round(best.accuracy, 6),
        dev_rows=len(dev_rows),
        contrastive=contrastive,
        interpolated_rank=interpolated,
        probe_c=probe_cs[-1] if probe_cs else None,
        checkpoints=history,
        predictions=predictions,
        scores=scores,
    )


def _scoring_options(spec: TrainSpec, device: str) -> dict[str, Any]:
    """How :func:`score_champion` loads an adapter beside the candidate: as the candidate was
    scored, on the same device and in the same precision."""
    return {
        "max_length": spec.max_length,
        "pooling": spec.pooling,
        "safetensors_only": spec.safetensors_only,
        "device": device,
        "dtype": spec.dtype,
    }


def _rescore(spec: TrainSpec, adapter_dir: str, device: str) -> TrainResult:
    """Score the eval file with a trained adapter and the champion, each loaded as serving
    loads it; nothing is trained or saved."""
    from adaptd.retraining.scoring import read_eval_file, score_champion

    if spec.eval_file is None:
        raise ValueError("a rescore run needs an eval_file")
    slices = read_eval_file(Path(spec.eval_file))
    options = _scoring_options(spec, device)
    predictions = {
        "candidate": score_champion(spec.base, spec.labels, Path(adapter_dir), slices, **options)
    }
    if spec.champion:
        predictions["champion"] = score_champion(
            spec.base, spec.labels, Path(spec.champion), slices, **options
        )
    return TrainResult(
        adapter_dir=adapter_dir,
        epochs_run=0,
        steps=0,
        samples=0,
        train_seconds=0.0,
        samples_per_s=0.0,
        best_dev_loss=None,
        stopped_early=False,
        trainable_params=0,
        device=device,
        kept="rescored",
        predictions=predictions,
    )


def _progress(
    epoch: int,
    epochs: int,
    step: int,
    steps: int,
    loss: float,
    seen: int,
    started: float,
    *,
    phase: str = "train",
) -> Progress:
    elapsed = time.perf_counter() - started
    return Progress(
        epoch=epoch,
        epochs=epochs,
        step=step,
        steps=steps,
        loss=round(loss, 5),
        samples_per_s=round(seen / elapsed, 2) if elapsed else 0.0,
        phase=phase,
    )
