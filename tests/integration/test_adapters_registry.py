"""The registry over a real store (SQLite and PostgreSQL) with real adapter files."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptd.adapters import registry
from adaptd.adapters.layout import content_hash
from adaptd.errors import AdapterRefusedError, IncompatibleAdapterError, NotFoundError
from adaptd.modeling.base import BaseModelInfo, base_module_shapes, inspect_base
from adaptd.storage import adapter_files, migrate
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine
from tests.unit.adapters.builders import LABELS, build_adapter, build_base, variant

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("base") / "bert")


@pytest.fixture(scope="module")
def base(tiny_base: Path) -> BaseModelInfo:
    return inspect_base(str(tiny_base), LABELS)


@pytest.fixture(scope="module")
def modules(tiny_base: Path) -> dict[str, tuple[int, ...]]:
    return base_module_shapes(str(tiny_base), LABELS)


@pytest.fixture(scope="module")
def sources(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four distinct versions: one trained adapter and three cheap variants of it."""
    root = tmp_path_factory.mktemp("sources")
    first = build_adapter(tiny_base, root / "v0")
    return [first] + [variant(first, root / f"v{i}", f"v{i}") for i in (1, 2, 3)]


@pytest.fixture
def adapters_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "adapters"


def imported(engine, adapters_dir, sources, base, n: int = 4) -> list[str]:
    return [
        registry.import_adapter(
            engine, adapters_dir, src, base=base, labels=LABELS, now=at(i), reason=f"v{i}"
        ).version
        for i, src in enumerate(sources[:n])
    ]


def test_import_records_version_files_summary_and_event(
    engine, adapters_dir, sources, base, modules
):
    record = registry.import_adapter(
        engine,
        adapters_dir,
        sources[0],
        base=base,
        labels=LABELS,
        now=T0,
        reason="first",
        data_window={"since": "2026-02-01"},
        metrics={"accuracy": 0.9},
        config={"epochs": 3},
        base_module_names=modules,
    )
    assert record.version == content_hash(sources[0])
    assert record.status == "candidate"
    assert Path(record.path) == adapters_dir / record.version
    assert content_hash(Path(record.path)) == record.version
    assert record.config is not None
    assert record.config["epochs"] == 3
    assert record.config["adapter"]["head_shape"] == [2, 32]
    assert record.config["imported_from"] == str(sources[0].resolve())
    assert registry.show(engine, record.version[:10]) == record
    events = repo.list_events(engine, kinds=["adapter_imported"])
    assert [e.details["version"] for e in events if e.details] == [record.version]
    assert registry.recorded_summary(record) is not None


def test_import_is_idempotent(engine, adapters_dir, sources, base, tmp_path):
    first = registry.import_adapter(
        engine, adapters_dir, sources[0], base=base, labels=LABELS, now=T0, reason="a"
    )
    copy = shutil.copytree(sources[0], tmp_path / "same-content")
    (copy / "README.md").write_text("another card, same adapter")
    again = registry.import_adapter(
        engine, adapters_dir, copy, base=base, labels=LABELS, now=at(5), reason="b"
    )
    assert again == first
    assert len(registry.list_adapters(engine)) == 1
    assert len(repo.list_events(engine, kinds=["adapter_imported"])) == 1


def test_import_restores_lost_files_of_a_known_version(engine, adapters_dir, sources, base):
    record = registry.import_adapter(
        engine, adapters_dir, sources[0], base=base, labels=LABELS, now=T0
    )
    shutil.rmtree(record.path)
    registry.import_adapter(engine, adapters_dir, sources[0], base=base, labels=LABELS, now=at(1))
    assert content_hash(Path(record.path)) == record.version
    restored = repo.list_events(engine, kinds=["adapter_imported"])[-1]
    assert restored.details is not None and restored.details.get("restored") is True


def test_an_incompatible_adapter_is_not_registered(engine, adapters_dir, sources, tiny_base):
    three = ("a", "b", "c")
    with pytest.raises(IncompatibleAdapterError, match="records labels"):
        registry.import_adapter(
            engine,
            adapters_dir,
            sources[0],
            base=inspect_base(str(tiny_base), three),
            labels=three,
            now=T0,
        )
    assert registry.list_adapters(engine) == []
    assert not adapters_dir.exists() or list(adapters_dir.iterdir()) == []


def test_lineage_follows_parents(engine, adapters_dir, sources, base):
    root = registry.import_adapter(
        engine, adapters_dir, sources[0], base=base, labels=LABELS, now=T0, reason="initial"
    )
    child = registry.import_adapter(
        engine,
        adapters_dir,
        sources[1],
        base=base,
        labels=LABELS,
        now=at(1),
        parent=root.version[:8],
        reason="drift on tweets",
        data_window={"since": "2026-02-01T00:00:00+00:00", "until": "2026-03-01T00:00:00+00:00"},
    )
    assert child.parent == root.version
    chain = registry.lineage(engine, child.version)
    assert [r.version for r in chain] == [child.version, root.version]
    with pytest.raises(NotFoundError, match="'feedface' not found"):
        registry.import_adapter(
            engine, adapters_dir, sources[2], base=base, labels=LABELS, now=at(2), parent="feedface"
        )


def test_promote_and_rollback_sequence(engine, adapters_dir, sources, base):
    v0, v1, v2, _ = imported(engine, adapters_dir, sources, base)
    assert registry.promote(engine, v0, at(10), reason="first").status == "active"
    registry.promote(engine, v1[:9], at(11), reason="better")
    registry.promote(engine, v2, at(12), reason="better still")
    statuses = {r.version: r.status for r in registry.list_adapters(engine)}
    assert statuses[v2] == "active"
    assert statuses[v1] == statuses[v0] == "retired"

    back = registry.rollback(engine, at(13), reason="probation failed")
    assert back.version == v1
    assert back.status == "active"
    assert registry.show(engine, v2).status == "rolled_back"
    # A second rollback goes further back instead of undoing the first.
    assert registry.rollback(engine, at(14), reason="still bad").version == v0
    with pytest.raises(AdapterRefusedError, match="nothing to roll back to"):
        registry.rollback(engine, at(15), reason="again")
    # An operator can still return to a rolled-back version explicitly.
    assert registry.rollback(engine, at(16), reason="it was fine", to=v2[:7]).version == v2

    kinds = [(e.kind, e.details["version"]) for e in repo.list_events(engine) if e.details]
    assert ("promoted", v2) in kinds
    assert kinds[-1] == ("rolled_back", v2)
    assert sum(1 for r in registry.list_adapters(engine) if r.status == "active") == 1


def test_promote_of_the_active_version_changes_nothing(engine, adapters_dir, sources, base):
    (v0,) = imported(engine, adapters_dir, sources, base, n=1)
    first = registry.promote(engine, v0, at(10), reason="go")
    again = registry.promote(engine, v0, at(20), reason="again")
    assert again.promoted == first.promoted
    assert len(repo.list_events(engine, kinds=["promoted"])) == 1


def test_rollback_refusals_name_the_problem(engine, adapters_dir, sources, base):
    v0, v1, v2, _ = imported(engine, adapters_dir, sources, base)
    with pytest.raises(
        AdapterRefusedError, match="nothing to roll back to: no version was active$"
    ):
        registry.rollback(engine, at(5), reason="x")
    registry.promote(engine, v0, at(10), reason="go")
    with pytest.raises(AdapterRefusedError, match=f"no version was active before {v0[:12]}"):
        registry.rollback(engine, at(11), reason="x")
    with pytest.raises(AdapterRefusedError, match="already active"):
        registry.rollback(engine, at(11), reason="x", to=v0)
    with pytest.raises(AdapterRefusedError, match="never active; use promote"):
        registry.rollback(engine, at(11), reason="x", to=v1)
    with pytest.raises(NotFoundError, match="'0badc0de' not found"):
        registry.rollback(engine, at(11), reason="x", to="0badc0de")


def test_rejected_versions_need_force(engine, adapters_dir, sources, base):
    v0, v1, _, _ = imported(engine, adapters_dir, sources, base)
    registry.promote(engine, v0, at(10), reason="go")
    verdict = {"passed": False, "gates": [{"name": "accuracy", "value": 0.61, "threshold": 0.8}]}
    registry.reject(engine, v1, at(11), verdict=verdict, reason="accuracy gate")
    rejected = registry.show(engine, v1)
    assert rejected.status == "rejected"
    assert rejected.verdict == verdict
    with pytest.raises(AdapterRefusedError, match="is rejected; refusing to promote"):
        registry.promote(engine, v1, at(12), reason="try")
    forced = registry.promote(engine, v1, at(13), reason="operator override", force=True)
    assert forced.status == "active"
    event = repo.list_events(engine, kinds=["promoted"])[-1]
    assert event.details is not None and event.details["forced"] is True
    with pytest.raises(AdapterRefusedError, match="is active; roll back"):
        registry.reject(engine, v1, at(14), verdict={}, reason="x")


def test_promote_stores_the_verdict_and_record_verdict_keeps_status(
    engine, adapters_dir, sources, base
):
    v0, v1, _, _ = imported(engine, adapters_dir, sources, base)
    waiting = registry.record_verdict(engine, v1, at(5), verdict={"passed": True})
    assert (waiting.status, waiting.verdict) == ("candidate", {"passed": True})
    promoted = registry.promote(
        engine, v0, at(10), reason="go", verdict={"passed": True, "p": 0.01}
    )
    assert promoted.verdict == {"passed": True, "p": 0.01}


def test_damaged_files_are_never_promoted(engine, adapters_dir, sources, base):
    v0, v1, _, _ = imported(engine, adapters_dir, sources, base)
    registry.promote(engine, v0, at(10), reason="go")
    # Without the store's copy (an adapter over store.adapter_max_bytes): only the local files
    # count (with it, damaged local files are fetched again: test_adapter_blobs.py).
    adapter_files.delete_files(engine, v1)
    weights = Path(registry.show(engine, v1).path) / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IncompatibleAdapterError, match="are corrupted"):
        registry.promote(engine, v1, at(11), reason="try", force=True)
    shutil.rmtree(weights.parent)
    with pytest.raises(IncompatibleAdapterError, match="files missing"):
        registry.promote(engine, v1, at(11), reason="try")
    assert registry.active(engine).version == v0  # type: ignore[union-attr]


def test_promote_rechecks_compatibility_with_the_current_labels(
    engine, adapters_dir, sources, base, tiny_base
):
    (v0,) = imported(engine, adapters_dir, sources, base, n=1)
    relabelled = inspect_base(str(tiny_base), ("neg", "pos"))
    with pytest.raises(IncompatibleAdapterError, match="configured labels are \\['neg', 'pos'\\]"):
        registry.promote(engine, v0, at(10), reason="go", base=relabelled)
    assert registry.active(engine) is None


def test_history_lists_the_events_of_one_version(engine, adapters_dir, sources, base):
    v0, v1, _, _ = imported(engine, adapters_dir, sources, base)
    registry.promote(engine, v0, at(10), reason="go")
    registry.promote(engine, v1, at(11), reason="next")
    kinds = [e.kind for e in registry.history(engine, v0)]
    assert kinds == ["adapter_imported", "promoted", "promoted"]


def test_concurrent_promotions_leave_exactly_one_active(engine, adapters_dir, sources, base):
    """The control loop and an operator promoting at the same moment, on both backends."""
    versions = imported(engine, adapters_dir, sources, base)
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def promote(version: str) -> None:
        barrier.wait()
        try:
            registry.promote(engine, version, at(30), reason="race")
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    statuses = [r.status for r in registry.list_adapters(engine)]
    assert statuses.count("active") == 1
    assert statuses.count("retired") == len(versions) - 1


operations = st.lists(
    st.one_of(st.tuples(st.just("promote"), st.integers(0, 3)), st.just(("rollback", 0))),
    max_size=12,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations, last=st.integers(0, 3))
def test_promote_then_rollback_restores_the_version_active_before(
    tmp_path_factory, sources, base, ops, last
):
    """Whatever happened before, promoting another version and rolling back returns to the
    version that was active, and there is never more than one active version."""
    root = tmp_path_factory.mktemp("store")
    engine = make_engine(f"sqlite:///{root / 'adaptd.db'}")
    migrate.upgrade(engine)
    try:
        versions = imported(engine, root / "adapters", sources, base)
        minute = 10
        for op, index in ops:
            minute += 1
            try:
                if op == "promote":
                    registry.promote(engine, versions[index], at(minute), reason="op")
                else:
                    registry.rollback(engine, at(minute), reason="op")
            except AdapterRefusedError:
                pass
            active = [r for r in registry.list_adapters(engine) if r.status == "active"]
            assert len(active) <= 1
        before = registry.active(engine)
        target = versions[last]
        if before is not None and before.version != target:
            registry.promote(engine, target, at(minute + 1), reason="candidate")
            assert (
                registry.rollback(engine, at(minute + 2), reason="undo").version == before.version
            )
            assert registry.show(engine, target).status == "rolled_back"
    finally:
        engine.dispose()
