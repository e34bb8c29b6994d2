"""Settings sections: each field names its environment variable once, next to its check.

The one settings model (`bot/settings.py`, pydantic-settings) reads the
environment and `.env` once at start and hands every adapter and front end its
own section; nothing else reads the environment. A section is a frozen
pydantic model whose fields say where they come from:

    max_products: Annotated[int, Env("CAMPAIGN_MAX_PRODUCTS", positive_int)] = 20

A bad value stops the bot with `CAMPAIGN_MAX_PRODUCTS='0' is invalid: why`
(a ConfigError, raised by the field's parser); unset and empty variables
keep the default. Secrets are `SecretStr`, so no repr() or log shows them.
Every variable is listed in docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, InstanceOf, SecretStr
from pydantic_core import CoreSchema, core_schema

from core.errors import ConfigError
from core.logs import LOG_FORMATS
from core.quotas import ENV_NAMES, QuotaSettings
from core.request import DEFAULT_MAX_PRODUCTS
from core.scheduler import Limits
from core.screening import Blocklist
from core.setting_values import (
    EXECUTORS,
    GENERATORS,
    choice,
    dollars,
    positive_float,
    positive_int,
    requester_ids,
    whole,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Env:
    """Field metadata: the variable a setting is read from, and how its text is parsed."""

    name: str
    parse: Callable[[str], Any] | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self.read, handler(source))

    def read(self, value: object) -> object:
        """Text from the environment, parsed; a value given in code passes as it is."""
        if not isinstance(value, str):
            return value
        raw = value.strip()
        if self.parse is None:
            return raw
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{self.name}={raw!r} is invalid: {exc}") from None


def env_value(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    """`parse(env[name])`, or `default` when unset: for settings made of several variables."""
    raw = env.get(name, "").strip()
    return default if not raw else Env(name, parse).read(raw)  # type: ignore[return-value]


class Section(BaseModel):
    """A frozen settings section; `variables()` reads its fields from an environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def variables(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        """This section's raw field values from `environ` (unset or empty variables left out).

        Sections with fields made of several variables add them here.
        """
        values: dict[str, Any] = {}
        for field, info in cls.model_fields.items():
            for meta in info.metadata:
                if isinstance(meta, Env) and environ.get(meta.name, "").strip():
                    values[field] = environ[meta.name]
        return values


class CoreSettings(Section):
    """The service's section: folders, executor and generator choice, limits, guards."""

    data_dir: Annotated[Path, Env("CAMPAIGN_DATA_DIR")] = Path("data")
    # CAMPAIGN_DB: a SQLite file (default: <data_dir>/campaigns.db), or a PostgreSQL URL
    # (postgresql://user:password@host:port/db?sslmode=...), a secret: it may hold a password.
    db_path: Path | None = None
    database_url: SecretStr | None = None
    executor: Annotated[str, Env("CAMPAIGN_EXECUTOR", partial(choice, allowed=EXECUTORS))] = "auto"
    generator: Annotated[str, Env("CAMPAIGN_GENERATOR", partial(choice, allowed=GENERATORS))] = (
        "auto"
    )
    max_products: Annotated[int, Env("CAMPAIGN_MAX_PRODUCTS", positive_int)] = DEFAULT_MAX_PRODUCTS
    limits: InstanceOf[Limits] = Limits()  # CAMPAIGN_LIMIT_TEXT / _IMAGE / _VIDEO / _CPU
    progress_interval_s: Annotated[float, Env("CAMPAIGN_PROGRESS_INTERVAL", positive_float)] = 1.0
    # A campaign whose owner has not beaten for this long is free.
    lease_s: Annotated[float, Env("CAMPAIGN_LEASE", positive_float)] = 10.0
    # How often a running campaign beats its heartbeat and reads its cancel flag (at least
    # three times a lease); PostgreSQL's NOTIFY brings another process's cancel sooner.
    cancel_poll_s: Annotated[float, Env("CAMPAIGN_CANCEL_POLL_S", positive_float)] = 1.0
    video_seconds: Annotated[float, Env("CAMPAIGN_VIDEO_SECONDS", positive_float)] = 3.0
    quotas: InstanceOf[QuotaSettings] = QuotaSettings()  # CAMPAIGN_QUOTA_*
    blocklist: InstanceOf[Blocklist] = Blocklist()  # CAMPAIGN_BLOCKLIST (+ _FILE)
    # "json": one JSON object per log line.
    log_format: Annotated[str, Env("CAMPAIGN_LOG_FORMAT", partial(choice, allowed=LOG_FORMATS))] = (
        "text"
    )

    @property
    def database(self) -> Path:
        """The SQLite file (when no PostgreSQL URL is set)."""
        return self.db_path or self.data_dir / "campaigns.db"

    @property
    def uses_postgres(self) -> bool:
        """Whether the store is PostgreSQL (several replicas) rather than a SQLite file."""
        return self.database_url is not None

    @classmethod
    def variables(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        """The single variables, plus the limits, quotas and blocklist made of several."""
        base = Limits()
        limits = {
            kind: env_value(
                environ, f"CAMPAIGN_LIMIT_{kind.upper()}", positive_int, getattr(base, kind)
            )
            for kind in ("text", "image", "video", "cpu")
        }
        return {
            **super().variables(environ),
            **database(environ.get("CAMPAIGN_DB", "")),
            "limits": Limits(**limits),
            "quotas": quota_settings(environ),
            "blocklist": blocklist_settings(environ),
        }


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def database(raw: str) -> dict[str, Any]:
    """CAMPAIGN_DB (or --db): a PostgreSQL URL, or a SQLite file; {} when unset."""
    value = raw.strip()
    if not value:
        return {}
    if value.lower().startswith(POSTGRES_SCHEMES):
        return {"database_url": SecretStr(value)}
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise ConfigError(
            f"CAMPAIGN_DB is invalid: {scheme}:// is not a database this bot uses"
            " (a SQLite file path, or a postgresql:// URL)"
        )
    return {"db_path": Path(value)}


def quota_settings(env: Mapping[str, str]) -> QuotaSettings:
    """The CAMPAIGN_QUOTA_* variables (see core/quotas.py); unset or 0 = unlimited."""
    values: dict[str, object] = {}
    for name, variable in ENV_NAMES.items():
        if name == "admins":
            values[name] = env_value(env, variable, requester_ids, frozenset[str]())
        elif name.endswith("_usd"):
            values[name] = env_value(env, variable, dollars, 0.0)
        else:
            values[name] = env_value(env, variable, whole, 0)
    return QuotaSettings(**values)  # type: ignore[arg-type]


def blocklist_settings(env: Mapping[str, str]) -> Blocklist:
    """CAMPAIGN_BLOCKLIST (comma-separated) plus CAMPAIGN_BLOCKLIST_FILE (one entry a line)."""
    blocklist = env_value(env, "CAMPAIGN_BLOCKLIST", Blocklist.parse, Blocklist())
    path = env.get("CAMPAIGN_BLOCKLIST_FILE", "").strip()
    if not path:
        return blocklist
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"CAMPAIGN_BLOCKLIST_FILE={path!r} cannot be read: {exc}") from None
    try:
        return blocklist + Blocklist.parse(text, sep="\n")
    except ValueError as exc:
        raise ConfigError(f"CAMPAIGN_BLOCKLIST_FILE={path!r} is invalid: {exc}") from None


def reveal(secret: SecretStr | None) -> str:
    """A secret's text, for the one call that sends it ("" when unset); never log it."""
    return secret.get_secret_value() if secret is not None else ""
