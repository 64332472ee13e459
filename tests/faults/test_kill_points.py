"""``kill -9`` at each step of retrain -> import -> promote -> swap -> probation, then a restart
(the steps are driven by :mod:`bench.faults.killpoints`, which prints the same as a table).

After each restart the daemon serves the store's active version (the last one promoted, or the
one probation restored), no run is left ``running``, a candidate nobody judged is rejected and a
probation cut short ends without a second rollback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.faults import killpoints
from bench.faults.killpoints import World

from adaptd.storage import probations
from adaptd.storage import repository as repo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return killpoints.make_world(tmp_path_factory.mktemp("faults"))


@pytest.fixture
def work(world: World, tmp_path: Path) -> Path:
    return killpoints.copy_work(world, tmp_path / "work")


@pytest.mark.parametrize("point", killpoints.RETRAIN_POINTS)
def test_kill_during_a_retrain_then_restart(world: World, work: Path, point: str) -> None:
    result, run = killpoints.retrain_point(world, work, point)
    assert result.killed and run > 0, "the CLI died at the point, its run still running"
    assert result.serving == result.active
    assert result.running_runs == 0 and result.run_status == "interrupted"
    engine = killpoints.store(work)
    try:
        assert "kill -9" in (repo.get_run(engine, run).error or "")
        candidates = [r for r in repo.list_adapters(engine) if r.version != world.v1]
        if point == "retrain.trained":
            assert candidates == [], "nothing was registered before the kill"
            assert result.active == world.v1
        elif point == "retrain.imported":
            (candidate,) = candidates
            assert candidate.status == "rejected" and candidate.verdict is not None
            assert candidate.verdict["interrupted"] is True
            assert result.active == world.v1
        else:
            (candidate,) = candidates
            assert result.active == candidate.version, "the last promoted adapter"
            running = probations.running(engine)
            assert running is not None and running.version == candidate.version
        assert not list((work / "state" / "adapters").glob(".tmp-*"))
    finally:
        engine.dispose()


def test_kill_between_build_and_swap_then_during_probation(world: World, work: Path) -> None:
    swapped, v2 = killpoints.swap_point(world, work)
    assert swapped.killed
    assert swapped.active == swapped.serving == v2, "the restart serves the promoted version"

    rolled = killpoints.probation_point(world, work, v2)
    assert rolled.killed
    assert rolled.active == rolled.serving == world.v1, "probation's rollback stands"
    engine = killpoints.store(work)
    try:
        assert probations.running(engine) is None
        last = probations.history(engine)[0]
        assert last.version == v2 and last.status == "superseded"
        rollbacks = [e for e in repo.list_events(engine) if e.kind == "rolled_back"]
        assert len(rollbacks) == 1, "the restart did not roll back a second time"
    finally:
        engine.dispose()
