"""The base model as the registry sees it: config and module shapes, no weights loaded."""

from __future__ import annotations

import pytest

from adaptd.errors import ConfigError
from adaptd.modeling.base import base_module_shapes, describe, inspect_base, load_classifier
from tests.unit.adapters.builders import LABELS


def test_inspect_base_agrees_with_describe_of_the_loaded_model(tiny_base):
    loaded = describe(str(tiny_base), load_classifier(str(tiny_base), LABELS), LABELS)
    assert inspect_base(str(tiny_base), LABELS) == loaded


def test_module_shapes_cover_the_classifier_with_linear_shapes(tiny_base):
    shapes = base_module_shapes(str(tiny_base), ("a", "b", "c"))
    assert shapes["bert.encoder.layer.1.attention.self.query"] == (32, 32)
    assert shapes["bert.encoder.layer.0.intermediate.dense"] == (32, 64)
    # The head is built for the configured labels.
    assert shapes["classifier"] == (32, 3)
    assert shapes["bert.embeddings.LayerNorm"] == ()


def test_a_base_without_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot load a model config"):
        inspect_base(str(tmp_path), LABELS)
    with pytest.raises(ConfigError, match="cannot load a model config"):
        base_module_shapes(str(tmp_path), LABELS)
