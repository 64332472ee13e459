"""Lineage: which rows each retrain run trained on, as prediction ids and keyed text hashes.

A plain SHA-256 of a text is no protection: a dictionary of e-mail addresses or phone numbers
reverses it. The hash here is an HMAC under a secret that never enters the store: from
``ADAPTD_LINEAGE_KEY`` when set (several hosts sharing one store must share it), else from
``state_dir/lineage.key``, created at first use (32 random bytes, mode 0600). Texts are hashed
in the same normal form the dataset deduplicates by (``retraining.dataset.text_key``), so a row
that came back through the replay reservoir matches the prediction it came from.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sqlalchemy import Engine

from adaptd.datasets.records import Example
from adaptd.errors import ConfigError
from adaptd.retraining.dataset import text_key
from adaptd.storage import repository as repo
from adaptd.storage.records import LabelledPrediction

KEY_ENV = "ADAPTD_LINEAGE_KEY"
KEY_FILE = "lineage.key"


def lineage_key(state_dir: Path) -> bytes:
    """The HMAC key of lineage hashes (see the module docstring)."""
    if env := os.environ.get(KEY_ENV):
        return env.encode("utf-8")
    path = state_dir / KEY_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes creating it at once agree on the first one's key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(secrets.token_hex(32))
    except FileExistsError:
        pass
    except OSError as e:
        raise ConfigError(f"state_dir: cannot create the lineage key {path}: {e}") from e
    try:
        return path.read_text(encoding="utf-8").strip().encode("utf-8")
    except OSError as e:
        raise ConfigError(f"state_dir: cannot read the lineage key {path}: {e}") from e


def keyed_hash(key: bytes, text: str) -> str:
    return hash_of_key(key, text_key(text))


def hash_of_key(key: bytes, tkey: str) -> str:
    """The keyed hash of a text already in its ``text_key`` form."""
    return hmac.new(key, tkey.encode("utf-8"), hashlib.sha256).hexdigest()


def source_ids(rows: Iterable[LabelledPrediction]) -> dict[str, str]:
    """text key -> id of the prediction a labelled example came from."""
    return {text_key(r.prediction.text): r.prediction.id for r in rows if r.prediction.text}


def record_run(
    engine: Engine,
    run_id: int,
    train: Sequence[Example],
    sources: Mapping[str, str],
    key: bytes,
) -> int:
    """Store what run ``run_id`` trains on; ``sources`` maps text keys to prediction ids."""
    rows = [(sources.get(text_key(e.text)), keyed_hash(key, e.text)) for e in train]
    return repo.add_training_rows(engine, run_id, rows)
