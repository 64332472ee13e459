"""Lineage: which rows each retrain run trained on, as prediction ids and keyed text hashes.

A plain SHA-256 of a text is no protection: a dictionary of e-mail addresses or phone numbers
reverses it. The hash here is an HMAC under a key derived from the privacy key (``privacy.key_file``
or ``ADAPTD_PRIVACY_KEY``, see :mod:`adaptd.privacy.keys`): one secret for an operator to keep,
share between hosts and rotate, never in the store or the config. The derivation separates the
two uses, so a lineage hash never equals the prediction log's ``text_hash`` of the same text.
Texts are hashed in the same normal form the dataset deduplicates by
(``retraining.dataset.text_key``), so a row that came back through the replay reservoir matches
the prediction it came from.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sqlalchemy import Engine

from adaptd.datasets.records import Example
from adaptd.privacy.keys import load_key
from adaptd.privacy.settings import PrivacySettings
from adaptd.retraining.dataset import text_key
from adaptd.storage import repository as repo
from adaptd.storage.records import LabelledPrediction

#: what the privacy key is bound to for lineage hashes (HMAC key derivation, domain separation)
_PURPOSE = b"adaptd lineage v1"


def lineage_key(privacy: PrivacySettings, state_dir: Path) -> bytes:
    """The HMAC key of lineage hashes (see the module docstring)."""
    return hmac.new(load_key(privacy, state_dir), _PURPOSE, hashlib.sha256).digest()


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
