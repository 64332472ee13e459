"""The linear probe: the classifier head fitted on frozen pooled features.

This is "feature extraction", the transfer baseline every fine-tune must beat, and the first half
of LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution"): fitting the head first means the fine-tune starts from a head that already
fits the features, so early gradients do not tear the pretrained features apart to suit a random
head. It costs one forward pass over the data; the fit itself is an L2-regularised multinomial
logistic regression solved by L-BFGS on the cached features (a fraction of a second).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal


def extract_features(
    classifier: Any,
    token_ids: Sequence[Sequence[int]],
    pad_id: int,
    *,
    batch_size: int = 64,
) -> Any:
    """Pooled features ``(n, hidden)`` of every text under the classifier's current encoder (with
    whatever LoRA is attached), in input order, as float32 on CPU (where the probe is fitted);
    dropout off, no gradients."""
    import torch

    device = next(classifier.parameters()).device

    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    chunks: list[Any] = []
    was_training = classifier.training
    classifier.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_batch([token_ids[i] for i in idx], pad_id)
            pooled, _ = classifier.features(ids.to(device), mask.to(device))
            chunks.append(pooled.float().cpu())
    classifier.train(was_training)
    features = torch.cat(chunks)
    out = torch.empty_like(features)
    out[torch.tensor(order)] = features
    return out


def pad_batch(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-padded ``input_ids`` and ``attention_mask`` for a list of token id lists."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        mask[row, : len(ids)] = 1
    return input_ids, mask


def fit_linear_probe(
    features: Any,
    labels: Any,
    weights: Any,
    *,
    num_labels: int,
    c: float = 1.0,
    bias: bool = True,
    max_iter: int = 200,
) -> tuple[Any, Any]:
    """``(weight (k, d), bias (k,) or None)`` minimising weighted cross-entropy plus an L2 penalty.

    ``c`` is scikit-learn's ``C`` (inverse regularisation strength: the objective is
    ``C * sum(w_i * loss_i) + |W|^2 / 2``, here divided by the total weight), so ``c=1`` is the
    same probe as ``LogisticRegression(C=1)``, the baseline of PERFORMANCE.md section 11.
    """
    import torch

    x = features.detach().float()
    y = labels.long()
    w = weights.detach().float()
    total = float(w.sum())
    weight = torch.zeros((num_labels, x.shape[1]), requires_grad=True)
    b = torch.zeros(num_labels, requires_grad=True) if bias else None
    params = [weight] + ([b] if b is not None else [])
    optimizer = torch.optim.LBFGS(
        params, lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> Any:
        optimizer.zero_grad()
        logits = x @ weight.T + (b if b is not None else 0.0)
        loss = (torch.nn.functional.cross_entropy(logits, y, reduction="none") * w).sum()
        objective = (c * loss + 0.5 * (weight * weight).sum()) / total
        objective.backward()
        return objective

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return weight.detach(), (b.detach() if b is not None else None)


#: the probe's C tried by :func:`cross_validate_c`: half-decades around scikit-learn's default 1
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: folds of :func:`cross_validate_c`
CV_FOLDS = 5


def cross_validate_c(
    features: Any,
    labels: Any,
    weights: Any,
    *,
    num_labels: int,
    grid: Sequence[float] = C_GRID,
    folds: int = CV_FOLDS,
    seed: int = 0,
    bias: bool = True,
) -> dict[float, tuple[float, float]]:
    """``{c: (accuracy, loss)}``: each C's weighted held-out accuracy and cross-entropy over
    ``folds`` stratified folds of the rows (every row held out once, with its training weight).
    A probe fit is a fraction of a second on cached features, so the grid costs seconds."""
    import torch

    x = features.detach().float()
    y = labels.long()
    w = weights.detach().float()
    generator = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(y), dtype=torch.long)
    for label in range(num_labels):
        rows = torch.nonzero(y == label).flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        fold[rows] = torch.arange(len(rows)) % folds
    right = dict.fromkeys(grid, 0.0)
    loss = dict.fromkeys(grid, 0.0)
    for k in range(folds):
        held, kept = fold == k, fold != k
        if not bool(held.any()):
            continue
        for c in grid:
            weight, b = fit_linear_probe(
                x[kept], y[kept], w[kept], num_labels=num_labels, c=c, bias=bias
            )
            logits = x[held] @ weight.T + (b if b is not None else 0.0)
            wh = w[held]
            right[c] += float(((logits.argmax(dim=-1) == y[held]).float() * wh).sum())
            per_row = torch.nn.functional.cross_entropy(logits, y[held], reduction="none")
            loss[c] += float((per_row * wh).sum())
    total = float(w.sum())
    return {c: (right[c] / total, loss[c] / total) for c in grid}


def best_c(scores: dict[float, tuple[float, float]], *, by: Literal["accuracy", "loss"]) -> float:
    """The C of :func:`cross_validate_c` with the lowest held-out loss (``by="loss"``, what
    ``probe_c: auto`` uses) or the best held-out accuracy (ties: the lower loss)."""
    if by == "loss":
        return min(scores, key=lambda c: scores[c][1])
    return max(scores, key=lambda c: (scores[c][0], -scores[c][1]))
