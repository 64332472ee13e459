from __future__ import annotations

from pydantic import Field

from adaptd.settings_base import Section


class StoreSettings(Section):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: sqlite:///<state_dir>/adaptd.db. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db (extra 'postgres').",
    )
    pool_size: int = Field(default=5, ge=1, description="Connection pool size (PostgreSQL).")
    connect_timeout_s: float = Field(
        default=5.0, gt=0, description="How long to wait for the store before giving up."
    )
