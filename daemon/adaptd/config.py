"""Configuration: one YAML file plus ``ADAPTD_...`` environment overrides.

Values are validated into pydantic models with ``extra="forbid"`` so a typo fails with its key
path. The environment wins over the file (``ADAPTD_SERVER__PORT=8099``), as pydantic-settings does.
Relative paths in the file are resolved against the file's directory, so a config means the same
thing whatever the working directory of the process that reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from adaptd.alerting import AlertingSettings
from adaptd.control.settings import SchedulerSettings
from adaptd.errors import ConfigError
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.privacy.settings import PrivacySettings
from adaptd.retention.settings import RetentionSettings
from adaptd.retraining.settings import RetrainingSettings, ValidationSettings
from adaptd.security import make_private_dir, mask_secrets
from adaptd.serving.settings import ModelSettings, ServerSettings, ServingSettings
from adaptd.settings_base import Section
from adaptd.storage.settings import StoreSettings
from adaptd.yamlfile import YamlDocument, load_yaml

DEFAULT_CONFIG = Path("adaptd.yaml")
CONFIG_ENV = "ADAPTD_CONFIG"


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of the daemon and the CLI."
    )
    json_lines: bool = Field(default=False, description="One JSON object per log line.")


class Settings(BaseSettings):
    """The whole configuration of one adaptd instance."""

    model_config = SettingsConfigDict(
        env_prefix="ADAPTD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    state_dir: Path = Field(
        default=Path("state"), description="Adapters, the SQLite store and run files live here."
    )
    store: StoreSettings = Field(default_factory=StoreSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    monitors: MonitorsSettings = Field(default_factory=MonitorsSettings)
    retraining: RetrainingSettings = Field(default_factory=RetrainingSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    policies: list[Path] = Field(
        default_factory=list, description="Policy files, in the order they are evaluated."
    )
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment must override it.
        return (env_settings, init_settings)

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.state_dir / 'adaptd.db'}"

    @property
    def adapters_dir(self) -> Path:
        return self.state_dir / "adapters"


def resolve_config_path(path: Path | None) -> tuple[Path, bool]:
    """The config path to use and whether the user named it (explicitly or by env)."""
    if path is not None:
        return path, True
    if env := os.environ.get(CONFIG_ENV):
        return Path(env), True
    return DEFAULT_CONFIG, False


def _describe(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    message = str(error["msg"])
    if "input" in error and not isinstance(error["input"], dict | list):
        secret = any("token" in str(part) for part in error["loc"])
        message += (
            " (value not shown)" if secret else f" (got {mask_secrets(repr(error['input']))})"
        )
    return message


def _format_validation_error(e: ValidationError, doc: YamlDocument | None) -> str:
    first = e.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc) or "<root>"
    where = doc.where(loc) if doc is not None else "config"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {key}: {_describe(first)}{more}"


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p)


def load_settings(path: Path | None = None) -> Settings:
    """Load the effective configuration, or raise :class:`ConfigError` with one clear line."""
    config_path, named = resolve_config_path(path)
    doc: YamlDocument | None = None
    data: dict[str, Any] = {}
    if config_path.exists() or named:
        doc = load_yaml(config_path, allow_empty=True)
        if doc.data is None:
            data = {}
        elif not isinstance(doc.data, dict):
            raise ConfigError(f"{config_path}: the top level must be a mapping of keys")
        else:
            data = doc.data
    try:
        settings = Settings(**data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, doc)) from e

    base = config_path.parent.resolve() if doc is not None else Path.cwd()
    policies = [_resolve(base, p) for p in settings.policies]
    for index, policy in enumerate(policies):
        if not policy.is_file():
            where = doc.where(("policies", index)) if doc is not None else "config"
            raise ConfigError(f"{where}: policies[{index}]: file not found: {policy}")
    server = settings.server
    for key in ("feedback_token", "admin_token"):
        source = getattr(server, key)
        if source is not None and source.file is not None:
            token = source.model_copy(update={"file": _resolve(base, source.file)})
            server = server.model_copy(update={key: token})
    return settings.model_copy(
        update={
            "state_dir": _resolve(base, settings.state_dir),
            "policies": policies,
            "server": server,
        }
    )


def ensure_state_dir(settings: Settings) -> Path:
    """Create the state directory and check it is writable, or raise :class:`ConfigError`."""
    state = settings.state_dir
    try:
        # 0700 even if it existed: it holds prediction texts, labels and adapters.
        make_private_dir(state)
        make_private_dir(state / "adapters")
        probe = state / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"state_dir: not writable: {state} ({e.strerror or e})") from e
    return state


def json_schema() -> dict[str, Any]:
    """The JSON schema of the config file, for editors (yaml-language-server)."""
    return Settings.model_json_schema()
