from __future__ import annotations

from pathlib import Path

import pytest

from adaptd.modeling.base import BaseModelInfo, base_module_shapes, inspect_base
from tests.unit.adapters.builders import LABELS, build_adapter, build_base


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("base") / "bert")


@pytest.fixture(scope="session")
def base_info(tiny_base: Path) -> BaseModelInfo:
    return inspect_base(str(tiny_base), LABELS)


@pytest.fixture(scope="session")
def base_modules(tiny_base: Path) -> dict[str, tuple[int, ...]]:
    return base_module_shapes(str(tiny_base), LABELS)


@pytest.fixture(scope="session")
def saved_adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter as adaptd's trainer saves it; copy it before changing anything."""
    return build_adapter(tiny_base, tmp_path_factory.mktemp("adapters") / "good")


@pytest.fixture
def adapter(saved_adapter: Path, tmp_path: Path) -> Path:
    """A private copy of the good adapter, free to damage."""
    import shutil

    return Path(shutil.copytree(saved_adapter, tmp_path / "adapter"))
