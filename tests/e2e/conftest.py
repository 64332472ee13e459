from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.retraining.synthetic import cued_tiny_model


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT the loop tests run on; see tests/e2e/tiny.py."""
    return cued_tiny_model(tmp_path_factory.mktemp("e2e") / "bert")
