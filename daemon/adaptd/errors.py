"""One error hierarchy for adaptd.

Messages name the offending key, path or value, because they end up as the one line an operator
reads. Foreign exceptions are wrapped with ``raise ... from e`` at the edge that caught them.
"""

from __future__ import annotations


class AdaptdError(Exception):
    """Base of every error adaptd raises on purpose."""

    #: process exit code when this error ends a CLI command
    exit_code = 1


class ConfigError(AdaptdError):
    """The configuration (file, environment, referenced paths) is unusable."""

    exit_code = 2


class UsageError(AdaptdError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class StoreError(AdaptdError):
    """The store cannot be reached or refused an operation."""


class LockBusyError(StoreError):
    """A store-level lock (the retrain lock) is held by another process; the message names it."""


class StoreUnreachableError(StoreError, ConfigError):
    """The configured store URL does not lead to a working database."""

    exit_code = 2


class NotFoundError(AdaptdError):
    """A named thing (adapter version, prediction id, run) does not exist."""


class IncompatibleAdapterError(AdaptdError):
    """An adapter does not fit the base model or the label set; the message names the mismatch."""


class DatasetError(AdaptdError):
    """A dataset file or archive is missing, corrupted or has the wrong columns."""


class AdapterRefusedError(AdaptdError):
    """A registry change is refused in the adapters' current state (promoting a rejected version,
    rolling back with nothing to roll back to); the message says what state and what to do."""


class ActiveChangedError(AdapterRefusedError):
    """A conditional switch found another version active than the one it was meant to replace
    (an operator promoted meanwhile); nothing was changed."""
