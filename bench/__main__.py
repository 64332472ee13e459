"""``python -m bench``: the list of benchmarks; each runs as ``python -m bench.<name>``."""

from __future__ import annotations

print("benchmarks: python -m bench.monitoring [--quick]")
