from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.serving.helpers import build_adapter, build_base


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("serving-base") / "bert")


@pytest.fixture(scope="session")
def adapter_a(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_adapter(tiny_base, tmp_path_factory.mktemp("serving-adapters") / "a", seed=1)


@pytest.fixture(scope="session")
def adapter_b(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_adapter(tiny_base, tmp_path_factory.mktemp("serving-adapters") / "b", seed=2)
