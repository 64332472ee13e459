"""Dependency weight: installed bytes of a distribution and every dependency it pulls in that
adaptd does not already need."""

from __future__ import annotations

import re
from importlib import metadata


def _requires(name: str) -> list[str]:
    out = []
    for req in metadata.requires(name) or []:
        if "extra ==" in req:
            continue
        match = re.match(r"[A-Za-z0-9_.\-]+", req)
        if match:
            out.append(match.group())
    return out


def closure(name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        n = todo.pop().lower().replace("_", "-")
        if n in seen:
            continue
        try:
            metadata.distribution(n)
        except metadata.PackageNotFoundError:
            continue
        seen.add(n)
        todo.extend(_requires(n))
    return seen


def installed_bytes(name: str) -> int:
    dist = metadata.distribution(name)
    total = 0
    for f in dist.files or []:
        try:
            total += f.locate().stat().st_size  # type: ignore[union-attr]
        except OSError:
            pass
    return total


def extra_weight(name: str, already: str = "adaptd") -> tuple[list[str], int]:
    """Packages ``name`` adds on top of ``already``'s closure, and their installed bytes."""
    extra = sorted(closure(name) - closure(already))
    return extra, sum(installed_bytes(n) for n in extra)
