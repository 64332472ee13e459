"""A full disk under the store (:mod:`bench.faults.diskfull`): a real daemon whose state_dir is
on a 16 MB tmpfs that is filled up under load, then freed."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.faults import diskfull

from tests.unit.serving.helpers import build_adapter, build_base

pytestmark = pytest.mark.slow


def test_a_full_disk_keeps_serving_counts_what_it_drops_and_resumes_when_freed(
    tmp_path: Path,
) -> None:
    base = build_base(tmp_path / "base")
    adapter = build_adapter(base, tmp_path / "adapter")
    other = build_adapter(base, tmp_path / "other", seed=1)
    try:
        r = diskfull.run(base, adapter, other, tmp_path / "work")
    except RuntimeError as e:  # a container that may not mount: say so, do not pass
        pytest.skip(str(e))
    # Serving needs no disk.
    assert r.predictions_ok > 30, "there was load"
    assert r.predictions_failed == {}
    # The writer said why, bounded its buffer, counted its drops, and did not spin.
    assert r.status_error is not None and r.status_error.startswith("store full"), r
    assert r.log_line is not None, "the daemon's log says the store is full"
    assert r.max_queued_rows <= r.buffer_rows
    assert r.dropped.get("store_full", 0) > 0, r.dropped
    assert set(r.dropped) == {"store_full"}
    assert r.lost <= sum(r.dropped.values()), "every row not stored was counted"
    assert r.write_errors_per_s < 2.0
    # Feedback: a 503 naming the full store, stored when sent again after space was freed.
    assert r.feedback_503 > 0
    assert r.feedback_503_naming_full == r.feedback_503, r.detail_503
    assert r.feedback_other == {}
    assert r.retried_failed == 0
    assert r.feedback_lost == 0
    # An import on the full disk fails cleanly and leaves nothing behind; it works once freed.
    assert r.import_full_rc != 0, r.import_full_message
    assert "No space left on device" in r.import_full_message
    assert "internal error" not in r.import_full_message
    assert r.import_full_registered == 0
    assert r.import_full_leftovers == 0
    assert r.import_freed_rc == 0
    assert r.serving_unchanged
    # Writing resumed once space was freed.
    assert r.resumed_s is not None
    assert not r.unclean_exit
