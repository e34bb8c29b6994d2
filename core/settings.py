"""Settings: read once from the environment into a frozen object.

Every variable is listed in docs/configuration.md. Secrets are kept out of repr() so
they never reach logs or error messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from core.errors import ConfigError
from core.logs import LOG_FORMATS
from core.quotas import ENV_NAMES, QuotaSettings
from core.request import DEFAULT_MAX_PRODUCTS
from core.scheduler import Limits
from core.screening import Blocklist

T = TypeVar("T")

EXECUTORS = ("auto", "local", "ray")
GENERATORS = ("auto", "offline", "replicate")


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the embedded defaults."""

    data_dir: Path = Path("data")
    db_path: Path | None = None  # default: <data_dir>/campaigns.db
    executor: str = "auto"
    generator: str = "auto"
    max_products: int = DEFAULT_MAX_PRODUCTS
    limits: Limits = field(default_factory=Limits)
    progress_interval_s: float = 1.0
    lease_s: float = 10.0  # a campaign whose owner has not beaten for this long is free
    video_seconds: float = 3.0
    replicate_api_token: str | None = field(default=None, repr=False)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    blocklist: Blocklist = field(default_factory=Blocklist)
    log_format: str = "text"  # or "json": one JSON object per log line

    @property
    def database(self) -> Path:
        """The SQLite file in use."""
        return self.db_path or self.data_dir / "campaigns.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables (see docs/configuration.md for the list)."""
        env = os.environ if env is None else env
        base = Limits()
        limits = Limits(
            **{
                kind: env_value(
                    env, f"CAMPAIGN_LIMIT_{kind.upper()}", positive_int, getattr(base, kind)
                )
                for kind in ("text", "image", "video", "cpu")
            }
        )
        db = env.get("CAMPAIGN_DB")
        return cls(
            data_dir=Path(env.get("CAMPAIGN_DATA_DIR") or "data"),
            db_path=Path(db) if db else None,
            executor=_choice(env, "CAMPAIGN_EXECUTOR", EXECUTORS),
            generator=_choice(env, "CAMPAIGN_GENERATOR", GENERATORS),
            max_products=env_value(
                env, "CAMPAIGN_MAX_PRODUCTS", positive_int, DEFAULT_MAX_PRODUCTS
            ),
            limits=limits,
            progress_interval_s=env_value(env, "CAMPAIGN_PROGRESS_INTERVAL", positive_float, 1.0),
            lease_s=env_value(env, "CAMPAIGN_LEASE", positive_float, 10.0),
            video_seconds=env_value(env, "CAMPAIGN_VIDEO_SECONDS", positive_float, 3.0),
            replicate_api_token=env.get("REPLICATE_API_TOKEN") or None,
            quotas=quota_settings(env),
            blocklist=blocklist_settings(env),
            log_format=_choice(env, "CAMPAIGN_LOG_FORMAT", LOG_FORMATS),
        )


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


def env_value(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    """`parse(env[name])`, or `default` when unset; a ConfigError naming the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from None


def positive_int(raw: str) -> int:
    """A whole number of at least 1."""
    value = int(raw)
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def whole(raw: str) -> int:
    """A whole number of at least 0."""
    value = int(raw)
    if value < 0:
        raise ValueError("must be a whole number of at least 0 (0 = unlimited)")
    return value


def dollars(raw: str) -> float:
    """US dollars, at least 0."""
    value = float(raw.removeprefix("$"))
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be an amount in US dollars of at least 0 (0 = unlimited)")
    return value


_REQUESTER_RE = re.compile(r"[a-z]+:[^\s,:]+")


def requester_ids(raw: str) -> frozenset[str]:
    """Requester ids with their platform, e.g. `slack:U123 discord:42` (comma or space)."""
    ids = frozenset(raw.replace(",", " ").split())
    bad = sorted(i for i in ids if not _REQUESTER_RE.fullmatch(i))
    if bad:
        raise ValueError(f"{bad[0]!r} needs its platform, e.g. slack:U123 or discord:42")
    return ids


def positive_float(raw: str) -> float:
    """A number above 0."""
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a number above 0")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or allowed[0]
    if raw not in allowed:
        raise ConfigError(f"{name}={raw!r} is invalid (allowed: {', '.join(allowed)})")
    return raw


_YES = frozenset({"1", "yes", "true", "on"})
_NO = frozenset({"0", "no", "false", "off"})


def yes_no(raw: str) -> bool:
    """1/0, yes/no, true/false, on/off."""
    word = raw.lower()
    if word in _YES | _NO:
        return word in _YES
    raise ValueError("must be 1 or 0 (yes/no, true/false, on/off)")
