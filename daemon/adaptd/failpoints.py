"""Named crash points for the fault-injection suite (``tests/faults``, ``bench/faults``).

``ADAPTD_FAILPOINT=<name>`` in a process's environment makes it SIGKILL itself when it reaches
that point, as a power cut or the OOM killer would at the worst moment: between the steps of
retrain -> import -> promote -> swap -> probation, where a half-done change is most likely to
be left behind. Without the variable a point costs one environment lookup. A name must be one of
:data:`POINTS`, so a test cannot aim at a point that no longer exists.
"""

from __future__ import annotations

import os
import signal

ENV = "ADAPTD_FAILPOINT"
POINTS = frozenset(
    {
        # the training child finished; nothing registered yet
        "retrain.trained",
        # the candidate's files and row are in the registry; no verdict yet
        "retrain.imported",
        # the candidate is promoted (and on probation); the run row still says running
        "retrain.promoted",
        # a daemon serving one version built the newly active one; it does not serve it yet
        "swap.built",
        # probation rolled back in the registry; its own row still says running
        "probation.rolled_back",
    }
)


def reached(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; one of {sorted(POINTS)}")
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
