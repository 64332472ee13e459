"""Small security helpers used across the daemon and the CLI: masking secrets wherever a URL or an
error is shown, private file permissions, bearer secrets read from a file or the environment, and
the scrubbed environment of the training child.

Each concern has one function here so that there is one place to get it right: a password shown
in one log line but masked in another is still a leaked password.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path

from adaptd.errors import ConfigError

MASK = "***"

# scheme://user:password@host -> scheme://user:***@host. Matched on free text, not parsed, because
# the URLs that leak are exactly the ones a parser refuses ("cannot parse ...") and the ones
# quoted inside a driver's error message.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)[^@\s'\"]+(?=@)")
# libpq key/value strings and SQLAlchemy query arguments: password=... up to a space, & or quote.
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)[^\s&'\"]+", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with every URL password and ``password=...`` value replaced by ``***``.

    The one helper for anything shown to a person: ``config show``, error messages, logs, status.
    """
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _KV_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def mask_url(url: str | None) -> str | None:
    """A URL fit to show: its password (if any) replaced by ``***``."""
    return None if url is None else mask_secrets(url)


# --------------------------------------------------------------------------- file permissions

#: Files the daemon creates hold prediction texts, labels and adapters trained on them: readable
#: by the service account only, whatever umask the shell or the unit was started with.
PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def use_private_umask() -> int:
    """Make every file and directory this process (and its children) creates private (0600 and
    0700). Process-wide on purpose: the SQLite file, its WAL, safetensors files and run
    directories are created by libraries that take no mode argument. Returns the old umask."""
    return os.umask(PRIVATE_UMASK)


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it 0700, even if it existed before."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)
    return path


def make_private_file(path: Path) -> None:
    """Make an existing file 0600 (a store file created by an older version or another tool)."""
    if path.is_file():
        path.chmod(PRIVATE_FILE_MODE)


# --------------------------------------------------------------------------- bearer secrets


def read_secret(*, file: Path | None, env: str | None, key: str) -> str:
    """The secret named by a config reference: the first line of ``file`` or the value of the
    environment variable ``env``. Raises :class:`ConfigError` naming ``key`` when it is missing
    or empty (never the value itself)."""
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"{key}.file: cannot read {file} ({e.strerror or e})") from e
        if not value:
            raise ConfigError(f"{key}.file: {file} is empty")
        return value
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"{key}.env: environment variable {env} is not set or empty")
        return value
    raise ConfigError(f"{key}: name a file or an env variable holding the token")


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant-time compare)."""
    scheme, _, given = (header or "").partition(" ")
    given_bytes, token_bytes = given.strip().encode(), token.encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token_bytes)


# --------------------------------------------------------------------------- child environment

#: What the training child needs from the daemon's environment, and nothing else: it reads its
#: job from a spec file, so store URLs, tokens and cloud credentials have no business there (a
#: crash dump or a third-party library's telemetry would carry them along).
CHILD_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        # thread counts (the executor sets its own on top)
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "TOKENIZERS_PARALLELISM",
        # Hugging Face: offline flags and where the local cache is (never HF_TOKEN)
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_HOME",
        "HF_HUB_CACHE",
        # which accelerator the child may use, and the libraries to drive it
        "CUDA_VISIBLE_DEVICES",
        "LD_LIBRARY_PATH",
    }
)
CHILD_ENV_PREFIXES = ("LC_", "ADAPTD_")
#: ADAPTD_* variables that hold secrets: the child needs none of them.
_SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|KEY|URL", re.IGNORECASE)


def child_env(environ: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The scrubbed environment of the training child: the allowed names of ``environ`` (minus
    any ``ADAPTD_`` variable whose name says it holds a secret), then ``extra`` on top."""
    kept: dict[str, str] = {}
    for name, value in environ.items():
        if name in CHILD_ENV_NAMES:
            kept[name] = value
        elif name.startswith(CHILD_ENV_PREFIXES):
            if name.startswith("ADAPTD_") and _SECRET_NAME.search(name):
                continue
            kept[name] = value
    return {**kept, **extra}


def ray_env_vars(environ: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The ``runtime_env`` ``env_vars`` of a Ray training task: ``extra``, and every variable of
    ``environ`` whose name says it holds a secret set to "" (HF_TOKEN, AWS_SECRET_ACCESS_KEY,
    ADAPTD_STORE__URL, ...).

    A local Ray that the daemon starts forks its workers from the daemon's environment, and
    ``runtime_env`` can only set variables, never remove them: blanking is the scrub available.
    Unlike :func:`child_env` nothing else is taken from ``environ``: on a remote cluster the
    daemon's PATH or HOME would break the worker, and Ray's own variables must stay."""
    blanked = {
        name: ""
        for name in environ
        if _SECRET_NAME.search(name) and name not in CHILD_ENV_NAMES and not name.startswith("RAY_")
    }
    return {**blanked, **extra}
