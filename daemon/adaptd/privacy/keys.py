"""The secret key of the text hash: from the environment, a file, or created on first start.

An unkeyed SHA-256 of an email or a phone number is reversed by hashing a list of candidates
(a few million phone numbers hash in seconds), so stored hashes are HMAC-SHA256 under a key
that never enters the store or the config.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from adaptd.errors import ConfigError
from adaptd.privacy.settings import DEFAULT_KEY_FILE, KEY_ENV, PrivacySettings

#: HMAC-SHA256 keys shorter than the hash add no strength, and a short one is guessable
MIN_KEY_BYTES = 32


def key_path(settings: PrivacySettings, state_dir: Path) -> Path:
    return settings.key_file if settings.key_file is not None else state_dir / DEFAULT_KEY_FILE


def _checked(key: bytes, where: str) -> bytes:
    key = key.strip()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{where}: the privacy hash key has {len(key)} bytes, it needs at least "
            f"{MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)"
        )
    return key


def load_key(
    settings: PrivacySettings, state_dir: Path, environ: Mapping[str, str] = os.environ
) -> bytes:
    """The key: ``$ADAPTD_PRIVACY_KEY``, else the key file, created when it is the default one.

    A key file the operator named must exist (a typo would otherwise silently start a new key
    and make every stored hash unmatchable); the default one is created once, mode 0600.
    """
    if env := environ.get(KEY_ENV):
        return _checked(env.encode("utf-8"), KEY_ENV)
    path = key_path(settings, state_dir)
    if not path.exists() and settings.key_file is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        except OSError as e:
            raise ConfigError(f"privacy key: cannot create {path}: {e.strerror or e}") from e
        else:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
    try:
        return _checked(path.read_bytes(), str(path))
    except FileNotFoundError as e:
        raise ConfigError(
            f"privacy.key_file: {path} does not exist (set {KEY_ENV} or create the file)"
        ) from e
    except OSError as e:
        raise ConfigError(f"privacy.key_file: cannot read {path}: {e.strerror or e}") from e
