"""ADWIN (Bifet & Gavalda 2007), the ADWIN2 variant with exponential-histogram buckets.

Our own code, written to reproduce River's ``drift.ADWIN`` detections exactly (golden-tested
against it) so operators can trust the published behaviour: the window keeps rows of buckets of
sizes 1, 2, 4, ...; every ``clock`` updates it looks for a cut whose two sides' means differ by
more than the Hoeffding-style bound and drops the older side. After a detection the detector
starts afresh on the next update, as River's does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class _Row:
    """Buckets of one size (2**level elements each), oldest first."""

    __slots__ = ("totals", "variances")

    def __init__(self) -> None:
        self.totals: list[float] = []
        self.variances: list[float] = []


class Adwin:
    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"ADWIN delta must be in (0, 1), got {delta!r}")
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self.drift_detected = False
        self.n_detections = 0
        self._start()

    def _start(self) -> None:
        self._rows: list[_Row] = [_Row()]
        self.width = 0.0
        self.total = 0.0
        self._variance = 0.0
        self._tick = 0

    @property
    def estimation(self) -> float:
        return self.total / self.width if self.width else 0.0

    def update(self, x: float) -> bool:
        """Add one value; True when this update detected a change."""
        if self.drift_detected:
            self._start()
        self._insert(float(x))
        self.drift_detected = self._detect()
        if self.drift_detected:
            self.n_detections += 1
        return self.drift_detected

    def _insert(self, x: float) -> None:
        row = self._rows[0]
        row.totals.append(x)
        row.variances.append(0.0)
        self.width += 1
        if self.width > 1:
            mean_before = self.total / (self.width - 1)
            self._variance += (self.width - 1) * (x - mean_before) ** 2 / self.width
        self.total += x
        self._compress()

    def _compress(self) -> None:
        level = 0
        while level < len(self._rows):
            row = self._rows[level]
            if len(row.totals) != self.max_buckets + 1:
                return
            if level + 1 == len(self._rows):
                self._rows.append(_Row())
            size = 2.0**level
            t0, t1 = row.totals[0], row.totals[1]
            v = (
                row.variances[0]
                + row.variances[1]
                + size * size * (t0 / size - t1 / size) ** 2 / (2 * size)
            )
            nxt = self._rows[level + 1]
            nxt.totals.append(t0 + t1)
            nxt.variances.append(v)
            del row.totals[:2], row.variances[:2]
            if len(nxt.totals) <= self.max_buckets:
                return
            level += 1

    def _drop_oldest(self) -> float:
        level = len(self._rows) - 1
        row = self._rows[level]
        n = 2.0**level
        u, v = row.totals.pop(0), row.variances.pop(0)
        self.width -= n
        self.total -= u
        mean_bucket, mean_window = u / n, self.total / self.width
        self._variance -= v + n * self.width * (mean_bucket - mean_window) ** 2 / (n + self.width)
        if not row.totals:
            self._rows.pop()
        return n

    def _detect(self) -> bool:
        self._tick += 1
        if self._tick % self.clock or self.width <= self.grace_period:
            return False
        detected = False
        shrink = True
        while shrink:
            shrink = False
            n0, n1 = 0.0, self.width
            u0, u1 = 0.0, self.total
            done = False
            for level in range(len(self._rows) - 1, -1, -1):
                if done:
                    break
                row = self._rows[level]
                size = 2.0**level
                for k in range(len(row.totals)):
                    n0 += size
                    n1 -= size
                    u0 += row.totals[k]
                    u1 -= row.totals[k]
                    if level == 0 and k == len(row.totals) - 1:
                        done = True  # the cut after the newest element leaves W1 empty
                        break
                    if (
                        n1 >= self.min_window_length
                        and n0 >= self.min_window_length
                        and self._cut(n0, n1, u0 / n0 - u1 / n1)
                    ):
                        shrink = detected = True
                        if self.width > 0:
                            self._drop_oldest()
                            done = True
                            break
        return detected

    def _cut(self, n0: float, n1: float, delta_mean: float) -> bool:
        delta_prime = math.log(2 * math.log(self.width) / self.delta)
        m_recip = 1.0 / (n0 - self.min_window_length + 1) + 1.0 / (n1 - self.min_window_length + 1)
        variance = self._variance / self.width
        epsilon = math.sqrt(2 * m_recip * variance * delta_prime) + 2 / 3 * delta_prime * m_recip
        return abs(delta_mean) > epsilon


def detections(stream: Iterable[float], **params: float) -> list[int]:
    """Indices at which a fresh ADWIN with ``params`` detects a change."""
    detector = Adwin(**params)  # type: ignore[arg-type]
    return [i for i, x in enumerate(stream) if detector.update(x)]
