"""Failpoints: a no-op unless named in ADAPTD_FAILPOINT, and a typo in a name fails loudly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adaptd import failpoints


def test_a_point_not_named_in_the_environment_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(failpoints.ENV, "swap.built")
    for point in failpoints.POINTS - {"swap.built"}:
        failpoints.reached(point)


def test_an_unknown_point_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown failpoint 'swap.bulit'.*swap.built"):
        failpoints.reached("swap.bulit")


def test_the_named_point_kills_the_process_with_sigkill() -> None:
    code = "from adaptd import failpoints; failpoints.reached('retrain.trained'); print('alive')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, failpoints.ENV: "retrain.trained"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9 and "alive" not in done.stdout
