"""``adaptd demo --quick``: the whole loop on the shipped MiniLM and real data, as CI runs it.

The command itself asserts that the loop closed (drift seen, a retrain, a promotion, held-out
target accuracy up, no failed request) and exits 1 otherwise; this test runs it as a user would,
in a subprocess, and checks what it leaves behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_quick_demo_closes_the_loop(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    done = subprocess.run(
        [sys.executable, "-m", "adaptd", "demo", "--quick", "--port", "0", "--state-dir",
         str(state)],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "the loop closed" in done.stdout
    summary = json.loads((state / "summary.json").read_text())
    assert summary["drift_seen"] and summary["promoted"]
    assert summary["failed_requests"] == 0
    first, final = summary["accuracy"]["first"], summary["accuracy"]["final"]
    assert final["target"] > first["target"]
    # The summary says what the promoted retrain trained on and what its gates measured.
    promoted = [r for r in summary["runs"] if r["status"] == "promoted"]
    assert promoted and promoted[0]["data"]["holdout"] > 0
    assert promoted[0]["verdict"].startswith("passed: ") and "recent" in promoted[0]["verdict"]
    assert promoted[0]["started_after_shift_s"] > 0
    assert (state / "timeline.png").read_bytes()[:4] == b"\x89PNG"
