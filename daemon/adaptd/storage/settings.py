from __future__ import annotations

from pydantic import Field

from adaptd.settings_base import Section

#: a LoRA adapter at r=16 on the attention projections of a 7B base is about 70 MB in float32;
#: past 128 MiB a row weighs on every store backup (and nears PostgreSQL's 1 GB value limit), and
#: such a version is better kept on storage the hosts share than copied through the database.
DEFAULT_ADAPTER_MAX_BYTES = 128 * 1024 * 1024


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
    adapter_max_bytes: int = Field(
        default=DEFAULT_ADAPTER_MAX_BYTES,
        ge=0,
        description="Largest adapter (its files together) whose files are kept in the store, so "
        "that hosts with their own state_dir can serve it (128 MiB holds a LoRA adapter at r=16 "
        "on the attention of a 7B base); a larger one stays only in the importing host's "
        "state_dir, with a warning.",
    )
