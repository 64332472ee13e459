"""The contrastive stage: SetFit's answer to a first adapter on a few hundred rows.

On a few hundred rows a fine-tune rarely beats the linear probe on the dev split, so the first
adapter used to *be* feature extraction. SetFit (Tunstall et al. 2022, "Efficient Few-Shot
Learning Without Prompts") first fine-tunes the encoder so that texts with one label lie close
together: pairs of training rows, their cosine similarity regressed onto 1 for the same label and
0 for different ones. The probe is then fitted again on the new features. Here only the LoRA
weights move (the head is refitted afterwards), so the adapter format does not change.

``python -m bench.adaptation.contrastive`` measures it against feature extraction on the same rows
(bench/adaptation/RECIPE.md): with in-batch pairs, 10 passes at lr 1e-3 (the shipped defaults),
+4.6 points on 400 movie snippets and +0.7 on the demo's 326 tweets, in about 3 minutes at 2
threads; SetFit's own pairs scored +3.3 and +0.5 in 6-8 minutes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adaptd.retraining.trainer import lr_factor

#: a pair of row indices and the cosine similarity their features are pulled towards
Pair = tuple[int, int, float]


def pairs(labels: Sequence[int], iterations: int, rng: random.Random) -> list[Pair]:
    """SetFit's pair generation: per iteration, every row once with a random other row of its
    label (target 1) and once with a random row of another label (target 0), shuffled.

    A label with one row pairs that row with itself (still a valid "same" target); a training set
    with one label has no "different" pairs, and the stage should not run on it at all.
    """
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(y, []).append(i)
    others = {y: [j for k, rows in by_label.items() if k != y for j in rows] for y in by_label}
    out: list[Pair] = []
    for _ in range(iterations):
        for i, y in enumerate(labels):
            same = [j for j in by_label[y] if j != i] or [i]
            out.append((i, rng.choice(same), 1.0))
            if others[y]:
                out.append((i, rng.choice(others[y]), 0.0))
    rng.shuffle(out)
    return out


def stratified_sample(labels: Sequence[int], k: int, rng: random.Random) -> list[int]:
    """Indices of at most ``k`` rows, each label keeping its share (largest remainders), in
    their original order: the stage's cost grows with its rows, and past a few hundred the
    pairs it sees are the same kind again (``contrastive_max_rows``)."""
    if len(labels) <= k:
        return list(range(len(labels)))
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(y, []).append(i)
    quota = {y: len(rows) * k / len(labels) for y, rows in by_label.items()}
    take = {y: int(q) for y, q in quota.items()}
    for y in sorted(quota, key=lambda y: (take[y] - quota[y], y))[: k - sum(take.values())]:
        take[y] += 1
    chosen = [i for y, rows in by_label.items() for i in rng.sample(rows, take[y])]
    return sorted(chosen)


def mixed_sample(
    labels: Sequence[int], replayed: Sequence[bool], k: int, share: float, rng: random.Random
) -> list[int]:
    """Indices of at most ``k`` rows, ``share`` of them replayed rows (all there are, when
    fewer) and the rest new ones, each part a :func:`stratified_sample`, in their original
    order. A refinement replays the few hundred rows its first adapter learnt from beside a
    thousand or more new labels: sampled as one, the stage would see a tenth of them."""
    if len(labels) <= k:
        return list(range(len(labels)))
    old = [i for i, r in enumerate(replayed) if r]
    new = [i for i, r in enumerate(replayed) if not r]
    k_old = min(len(old), round(share * k))
    k_new = min(len(new), k - k_old)
    k_old = min(len(old), k - k_new)
    chosen = [
        part[j]
        for part, n in ((old, k_old), (new, k_new))
        for j in stratified_sample([labels[i] for i in part], n, rng)
    ]
    return sorted(chosen)


def row_batches(n: int, batch_size: int, iterations: int, rng: random.Random) -> list[list[int]]:
    """``iterations`` shuffled passes over ``n`` rows cut into batches; a last batch of one row
    (no pair in it) joins the batch before it."""
    out: list[list[int]] = []
    for _ in range(iterations):
        order = list(range(n))
        rng.shuffle(order)
        cut = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        if len(cut) > 1 and len(cut[-1]) < 2:
            cut[-2].extend(cut.pop())
        out.extend(cut)
    return out


def in_batch_loss(features: Any, labels: Any) -> tuple[Any, int]:
    """(loss, pairs): the squared error of every pair's cosine similarity against 1 (same label)
    or 0, the mean over same-label pairs and the mean over different-label pairs weighted
    equally, so a batch of one dominant label does not teach only "alike"."""
    import torch

    unit = torch.nn.functional.normalize(features, dim=-1)
    similarity = unit @ unit.T
    same = labels[:, None] == labels[None, :]
    upper = torch.triu(torch.ones_like(same), diagonal=1)
    errors = (similarity - same.float()) ** 2
    parts = [errors[upper & same], errors[upper & ~same]]
    present = [p.mean() for p in parts if p.numel()]
    loss = torch.stack(present).mean() if present else similarity.sum() * 0.0
    return loss, int(upper.sum())


@dataclass(frozen=True, slots=True)
class ContrastiveStats:
    pairs: int
    steps: int
    #: mean loss of the first and last ten steps: whether the pairs were learnt at all
    loss_first: float
    loss_last: float


def fit_contrastive(
    classifier: Any,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int],
    pad_id: int,
    params: Sequence[Any],
    *,
    iterations: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    pairing: str = "setfit",
    on_step: Callable[[int, int, float], None] | None = None,
) -> ContrastiveStats:
    """Train ``params`` (the LoRA weights) so that ``classifier.features`` of same-label pairs
    have cosine similarity 1 and of different-label pairs 0 (mean squared error, AdamW, linear
    warmup over a tenth of the steps then linear decay as the fine-tune's ``lr_factor``, SetFit's
    defaults).

    ``pairing``: ``setfit`` draws SetFit's pairs (:func:`pairs`, two texts encoded per pair);
    ``in-batch`` encodes ``batch_size`` rows once and uses every pair among them (a batch of 16
    gives 120 pairs for 16 forward passes where SetFit's gives 16 pairs for 32), same- and
    different-label pairs weighted equally; ``iterations`` are then passes over the rows.
    ``on_step(step, steps, loss)`` reports progress. Leaves the classifier in eval mode.
    """
    import torch

    from adaptd.modeling.probe import pad_batch

    device = next(classifier.parameters()).device
    generator = random.Random(seed)
    if pairing == "setfit":
        todo = pairs(labels, iterations, generator)
        steps = (len(todo) + batch_size - 1) // batch_size
    elif pairing == "in-batch":
        groups = row_batches(len(labels), batch_size, iterations, generator)
        steps = len(groups)
    else:
        raise ValueError(f"pairing must be setfit or in-batch, not {pairing!r}")
    warmup = max(1, steps // 10)
    optimizer = torch.optim.AdamW(list(params), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps, warmup, "linear")
    )
    classifier.train()
    losses: list[float] = []
    n_pairs = 0
    for step in range(1, steps + 1):
        if pairing == "setfit":
            batch = todo[(step - 1) * batch_size : step * batch_size]
            a_ids, a_mask = pad_batch([token_ids[i] for i, _, _ in batch], pad_id)
            b_ids, b_mask = pad_batch([token_ids[j] for _, j, _ in batch], pad_id)
            a, _ = classifier.features(a_ids.to(device), a_mask.to(device))
            b, _ = classifier.features(b_ids.to(device), b_mask.to(device))
            target = torch.tensor([t for _, _, t in batch], device=device)
            similarity = torch.cosine_similarity(a.float(), b.float())
            loss = torch.nn.functional.mse_loss(similarity, target)
            n_pairs += len(batch)
        else:
            rows = groups[step - 1]
            ids, mask = pad_batch([token_ids[i] for i in rows], pad_id)
            features, _ = classifier.features(ids.to(device), mask.to(device))
            y = torch.tensor([labels[i] for i in rows], device=device)
            loss, counted = in_batch_loss(features.float(), y)
            n_pairs += counted
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, steps, losses[-1])
    classifier.eval()
    return ContrastiveStats(
        pairs=n_pairs,
        steps=steps,
        loss_first=round(sum(losses[:10]) / max(1, len(losses[:10])), 5),
        loss_last=round(sum(losses[-10:]) / max(1, len(losses[-10:])), 5),
    )
