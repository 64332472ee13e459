from __future__ import annotations

from pathlib import Path

import pytest

from adaptd.modeling.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "bert", hidden=32, layers=2)
