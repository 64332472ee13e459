"""Padding-aware micro-batches: split a batch into forwards of texts of similar length.

A forward pads every text to the longest of its batch, and its cost grows with the padded
size (rows x longest). Review snippets, tweets and support messages run from a few tokens to a
hundred, so one padded batch of 32 computes mostly padding. Sorted by length and cut into a few
runs, the same texts cost far fewer padded tokens, at the price of one more forward per run
(the per-forward overhead: dispatch through every layer, smaller matrix products).

:func:`plan` picks the cut that minimises ``sum(rows x longest) + overhead x forwards`` over
the sorted lengths (an exact dynamic programme; batches are at most a few hundred texts).
Pure: lengths in, groups of indices out.
"""

from __future__ import annotations

from collections.abc import Sequence

#: the fixed cost of one forward, in padded tokens. Measured on all-MiniLM-L6-v2 with batches of
#: 32 Rotten Tomatoes snippets (12-55 tokens; bench/serving/README.md, "padding-aware
#: micro-batches"), forward time per batch against one padded forward, 2 threads on a quiet
#: box: overhead 64 0.80, 128 0.83, 256 0.81, 512 0.95 (plan cuts those batches into 3-4, 3, 2
#: and 1-2 runs); 1 thread beside a training run: 0.68, 0.69, 0.71, 0.92. 128: as fast as the
#: best within the noise, with fewer and larger forwards for a base whose per-forward cost is
#: higher.
FORWARD_OVERHEAD_TOKENS = 128


def plan(lengths: Sequence[int], overhead: int = FORWARD_OVERHEAD_TOKENS) -> list[list[int]]:
    """Groups of indices into ``lengths``, each one forward, shortest texts first.

    Every index appears exactly once; a group is a run of the texts sorted by length, so its
    padded size is ``len(group) * max(lengths of the group)``."""
    if overhead < 0:
        raise ValueError(f"overhead must be >= 0, got {overhead}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    if n == 0:
        return []
    # best[j]: the least cost of the first j sorted texts; cut[j]: where its last run starts.
    best = [0] + [0] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]  # the longest of any run ending at j (sorted)
        best[j], cut[j] = min((best[i] + (j - i) * longest + overhead, i) for i in range(j))
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    groups.reverse()
    return groups
