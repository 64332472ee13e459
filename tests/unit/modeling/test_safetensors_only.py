"""model.safetensors_only: a base whose weights are a pickle (pytorch_model.bin) is refused unless
the operator opts in, because unpickling a file can run any code in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptd.errors import ConfigError
from adaptd.modeling.base import load_classifier
from tests.unit.adapters.builders import LABELS, build_base


@pytest.fixture(scope="module")
def pickled_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base re-saved with pickle-based weights only."""
    import shutil

    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("pickled")
    base = build_base(root / "safe")
    out = root / "pickled"
    shutil.copytree(base, out)
    # transformers 5 no longer writes pickles itself: torch.save is what old checkpoints are.
    weights = out / "model.safetensors"
    torch.save(load_file(str(weights)), out / "pytorch_model.bin")
    weights.unlink()
    assert (out / "pytorch_model.bin").is_file()
    assert not list(out.glob("*.safetensors"))
    return out


def test_a_pickle_only_base_is_refused_by_default(pickled_base: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.base: cannot load"):
        load_classifier(str(pickled_base), LABELS)


def test_a_pickle_only_base_loads_when_the_operator_opts_in(pickled_base: Path) -> None:
    import torch

    opted_in = load_classifier(str(pickled_base), LABELS, safetensors_only=False)
    safe = load_classifier(str(pickled_base.parent / "safe"), LABELS)  # the default
    # the same weights, read from the pickle
    mine, theirs = opted_in.encoder.state_dict(), safe.encoder.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
