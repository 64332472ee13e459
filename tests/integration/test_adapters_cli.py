"""``adaptd adapters ...`` end to end: a config file, a real store, real adapters, exit codes.

Most cases run the real entry point (:func:`adaptd.cli.main`) in-process, which is what the
console script runs; one runs it as a subprocess to pin what an operator's shell sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from adaptd.cli import main
from adaptd.storage import migrate
from adaptd.storage.engine import make_engine
from tests.unit.adapters.builders import LABELS, build_adapter, build_base, variant

HEX = set("0123456789abcdef")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("base") / "bert")


@pytest.fixture(scope="module")
def sources(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("sources")
    first = build_adapter(tiny_base, root / "v0")
    plain = build_adapter(tiny_base, root / "plain", plain_peft=True, seed=1)
    return [first, variant(first, root / "v1", "v1"), plain]


def write_config(
    tmp_path: Path,
    base: Path,
    *,
    store_url: str | None = None,
    labels: Sequence[str] = LABELS,
    pooling: str = "auto",
) -> Path:
    lines = [
        f"state_dir: {tmp_path / 'state'}",
        "model:",
        f"  base: {base}",
        f"  labels: [{', '.join(labels)}]",
        f"  pooling: {pooling}",
    ]
    if store_url is not None:
        lines += ["store:", f"  url: {store_url}"]
    path = tmp_path / "adaptd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ADAPTD_CONFIG", raising=False)

    def run(*args: str | Path) -> tuple[int, str, str]:
        code: int | str | None = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return int(code or 0), out.out, out.err

    return run


@pytest.fixture
def config(tmp_path: Path, tiny_base: Path, store_url: str) -> Path:
    """A config on each store backend, with the schema in place."""
    # Migrated here rather than by `adaptd db upgrade` in-process: that command leaves its
    # connections to the interpreter's exit, which a test run would report as leaked.
    engine = make_engine(store_url)
    migrate.upgrade(engine)
    engine.dispose()
    return write_config(tmp_path, tiny_base, store_url=store_url)


def test_import_promote_list_show_rollback(cli, config, sources):
    code, out, err = cli("adapters", "import", sources[0], "--config", config, "--reason", "first")
    assert code == 0, err
    v0 = out.strip()
    assert len(v0) == 64 and set(v0) <= HEX

    code, out, _ = cli("adapters", "import", sources[0], "--config", config)
    assert (code, out.strip()) == (0, v0)

    code, out, _ = cli("adapters", "list", "--json", "--config", config)
    listed = json.loads(out)
    assert [(a["version"], a["status"], a["reason"]) for a in listed] == [
        (v0, "candidate", "first")
    ]

    code, out, err = cli("adapters", "promote", v0[:8], "--config", config)
    assert code == 0, err
    assert out.strip() == f"promoted {v0}"

    code, out, err = cli(
        "adapters", "import", sources[1], "--promote", "--parent", v0[:10], "--config", config
    )
    assert code == 0, err
    v1 = out.strip()

    code, out, _ = cli("adapters", "list", "--config", config)
    header, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["VERSION", "STATUS", "PARENT"]
    assert rows[0].split()[:3] == [v0[:12], "retired", "-"]
    assert rows[1].split()[:3] == [v1[:12], "active", v0[:12]]

    code, out, err = cli("adapters", "rollback", "--reason", "probation", "--config", config)
    assert code == 0, err
    assert out.strip() == f"rolled back to {v0} from {v1[:12]}"

    code, out, _ = cli("adapters", "show", v1[:6], "--json", "--config", config)
    shown = json.loads(out)
    assert shown["status"] == "rolled_back"
    assert shown["parent"] == v0
    assert shown["intact"] is True
    assert [link["version"] for link in shown["lineage"]] == [v1, v0]
    assert {f["name"] for f in shown["files"]} == {
        "adaptd.json",
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    assert [e["kind"] for e in shown["events"]] == [
        "adapter_imported",
        "promoted",
        "rolled_back",
    ]
    assert shown["config"]["adapter"]["rank"] == 4

    code, out, _ = cli("adapters", "show", v1, "--config", config)
    assert code == 0
    assert f"version:  {v1}" in out
    assert "status:   rolled_back" in out
    assert "lineage (newest first):" in out
    assert "probation" in out


def test_show_prints_every_gate_of_a_stored_verdict(cli, config, sources):
    from adaptd.adapters import registry
    from adaptd.cli.common import load, open_store

    _, out, _ = cli("adapters", "import", sources[0], "--config", config)
    version = out.strip()
    verdict = {
        "passed": False,
        "gates": [
            {"metric": "accuracy", "slice": "recent", "value": 0.712, "bound": ">= 0.8"},
            {"metric": "accuracy_delta", "slice": "golden", "value": -0.031, "bound": ">= -0.01"},
        ],
        "significance": {"test": "mcnemar", "p_value": 0.21},
    }
    engine = open_store(load(config))
    from datetime import UTC, datetime

    registry.reject(engine, version, datetime.now(UTC), verdict=verdict, reason="gates failed")
    engine.dispose()

    code, out, _ = cli("adapters", "show", version, "--json", "--config", config)
    assert json.loads(out)["verdict"] == verdict
    code, out, _ = cli("adapters", "show", version, "--config", config)
    for needle in ("accuracy_delta", "-0.031", "0.712", "mcnemar", "p_value: 0.21"):
        assert needle in out
    code, out, err = cli("adapters", "promote", version, "--config", config)
    assert code == 1
    assert "is rejected; refusing to promote" in err
    code, out, err = cli("adapters", "promote", version, "--force", "--config", config)
    assert code == 0, err


def test_an_adapter_trained_elsewhere_imports_on_the_pooling_it_was_trained_with(
    cli, config, sources, tmp_path, tiny_base, store_url
):
    # Trained on AutoModelForSequenceClassification (BERT's CLS pooler), recording nothing: the
    # tiny base pools by mean under auto, so the import is refused naming both poolings ...
    code, out, err = cli("adapters", "import", sources[2], "--config", config, "--json")
    assert (code, out) == (1, "")
    assert "trained with cls pooling" in one_line(err) and "pools by mean" in err
    # ... and accepted once the config says the base is read through the CLS pooler.
    (tmp_path / "cls").mkdir()
    cls_config = write_config(tmp_path / "cls", tiny_base, store_url=store_url, pooling="cls")
    code, out, err = cli("adapters", "import", sources[2], "--config", cls_config, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["config"]["adapter"]["labels"] is None
    assert record["config"]["adapter"]["head_shape"] == [2, 32]
    assert record["config"]["adapter"]["pooling"] == "cls"


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_unknown_versions_exit_1_naming_them(cli, config):
    for command in (
        ["show", "deadbeef"],
        ["promote", "deadbeef"],
        ["rollback", "--to", "deadbeef"],
    ):
        code, _, err = cli("adapters", *command, "--config", config)
        assert code == 1
        assert one_line(err) == "adaptd: error: adapter 'deadbeef' not found"


def test_nothing_to_roll_back_exits_1(cli, config):
    code, _, err = cli("adapters", "rollback", "--config", config)
    assert code == 1
    assert "nothing to roll back to" in one_line(err)


def test_incompatible_adapter_exits_1_with_the_mismatch(cli, tmp_path, tiny_base, sources):
    config = write_config(tmp_path, tiny_base, labels=("neg", "neutral", "pos"))
    assert cli("db", "upgrade", "--config", config)[0] == 0
    code, out, err = cli("adapters", "import", sources[2], "--config", config)
    assert (code, out) == (1, "")
    assert "classifier head classifier.weight has 2 outputs" in one_line(err)
    assert "label set has 3" in err
    code, _, err = cli("adapters", "import", tmp_path / "missing", "--config", config)
    assert code == 1
    assert "missing: not a directory" in one_line(err)
    code, out, _ = cli("adapters", "list", "--json", "--config", config)
    assert json.loads(out) == []


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("model:\n  labelz: [a, b]\n", "model.labelz: unknown key"),
        (
            "store:\n  url: postgresql+psycopg://nobody@127.0.0.1:1/none\n",
            "store.url: cannot reach",
        ),
    ],
)
def test_config_and_store_problems_exit_2(cli, tmp_path, yaml_text, needle):
    path = tmp_path / "adaptd.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\n" + yaml_text)
    code, _, err = cli("adapters", "list", "--config", path)
    assert code == 2
    assert needle in one_line(err)


def test_a_store_without_schema_names_the_fix(cli, tmp_path, tiny_base):
    from adaptd.errors import StoreError

    config = write_config(tmp_path, tiny_base)
    code, _, err = cli("adapters", "list", "--config", config)
    # The exit code of an outdated schema is the foundation's (StoreError), not the registry's.
    assert code == StoreError.exit_code
    assert "adaptd db upgrade" in one_line(err)


def test_list_of_an_empty_registry_says_how_to_fill_it(cli, config):
    code, out, _ = cli("adapters", "list", "--config", config)
    assert code == 0
    assert "adaptd adapters import DIR" in out
    assert json.loads(cli("adapters", "list", "--json", "--config", config)[1]) == []


def test_the_console_entry_point_as_a_subprocess(tmp_path, tiny_base, sources):
    config = write_config(tmp_path, tiny_base)
    env = {k: v for k, v in os.environ.items() if k != "ADAPTD_CONFIG"}

    def adaptd(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "adaptd", *map(str, args), "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )

    assert adaptd("db", "upgrade").returncode == 0
    imported = adaptd("adapters", "import", sources[0], "--promote")
    assert imported.returncode == 0, imported.stderr
    version = imported.stdout.strip()
    assert len(version) == 64
    shown = adaptd("adapters", "show", version[:12], "--json")
    assert json.loads(shown.stdout)["status"] == "active"
    missing = adaptd("adapters", "show", "nope")
    assert missing.returncode == 1
    assert one_line(missing.stderr) == "adaptd: error: adapter 'nope' not found"
