"""The one settings model: every section, read once at start from the environment and `.env`.

    AppSettings
      core       CoreSettings       core/settings.py          CAMPAIGN_*
      replicate  ReplicateSettings  adapters/replicate_api/   REPLICATE_*, CAMPAIGN_MODELS_FILE
      ray        RaySettings        adapters/ray_exec/        RAY_ADDRESS, CAMPAIGN_RAY_*
      slack      SlackSettings      bot/slack_ui/             SLACK_*
      discord    DiscordSettings    bot/discord_ui/           DISCORD_*
      gallery    GallerySettings    bot/gallery/              CAMPAIGN_GALLERY_*
      http       HttpSettings       here                      CAMPAIGN_HTTP_PORT, _HOST

This is the only module that reads the environment. `load_settings()` does it
once in bot.py's entry point (pydantic-settings reads the variables and the
`.env` file; the real environment wins over the file); each adapter and
front end receives its section. The variables keep their documented flat
names (docs/configuration.md): each field names its own with `Env`, so a
section reads them through `Section.variables`, and a bad value stops the
bot with `NAME='value' is invalid: why`. Tests and benchmarks build settings
from a mapping with `AppSettings.from_mapping`, which reads nothing else.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from adapters.ray_exec.settings import RaySettings
from adapters.replicate_api.settings import ReplicateSettings
from bot.discord_ui.settings import DiscordSettings
from bot.gallery.settings import GallerySettings
from bot.slack_ui.settings import SlackSettings
from core.errors import ConfigError
from core.settings import CoreSettings, Env, Section

ENV_FILE_VARIABLE = "CAMPAIGN_ENV_FILE"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port, 1-65535")
    return value


class HttpSettings(Section):
    """The /healthz and /readyz listener: off unless CAMPAIGN_HTTP_PORT is set."""

    port: Annotated[int | None, Env("CAMPAIGN_HTTP_PORT", _port)] = None
    host: Annotated[str, Env("CAMPAIGN_HTTP_HOST")] = "127.0.0.1"

    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on; None when no port is set."""
        return None if self.port is None else (self.host, self.port)


class AppSettings(BaseSettings):
    """Every section of the settings (frozen)."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="forbid")

    core: CoreSettings = Field(default_factory=CoreSettings)
    replicate: ReplicateSettings = Field(default_factory=ReplicateSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    gallery: GallerySettings = Field(default_factory=GallerySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Sections given in code, then the environment over the `.env` file."""
        return (init_settings, _Sections(settings_cls, env_settings, dotenv_settings))

    @classmethod
    def of(cls, **sections: Section) -> AppSettings:
        """These sections and the defaults of the others; reads no environment (tests)."""
        return cls.model_validate(sections)

    @classmethod
    def from_mapping(cls, environ: Mapping[str, str]) -> AppSettings:
        """Settings from these variables alone (tests, benchmarks): no environment, no file."""
        return cls.model_validate(sections(cls, environ))


class _Sections(PydanticBaseSettingsSource):
    """Hands each section the variables it names (the environment wins over `.env`)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        env: PydanticBaseSettingsSource,
        dotenv: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        environ: dict[str, str] = {}
        for source in (dotenv, env):
            if isinstance(source, EnvSettingsSource | DotEnvSettingsSource):
                environ.update((k, v) for k, v in source.env_vars.items() if v is not None)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads whole sections

    def __call__(self) -> dict[str, Any]:
        return sections(self.settings_cls, self.environ)


def sections(settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> dict[str, Any]:
    """Each section's raw values from `environ`, by the variable names its fields declare."""
    found: dict[str, Any] = {}
    for name, info in settings_cls.model_fields.items():
        section = info.annotation
        if isinstance(section, type) and issubclass(section, Section):
            found[name] = section.variables(environ)
    return found


def load_settings() -> AppSettings:
    """The settings of this process, read once: the environment, over the `.env` file."""
    dotenv = env_file(os.environ)
    if dotenv is not None:
        check_dotenv(dotenv)
    return AppSettings(_env_file=dotenv, _env_file_encoding="utf-8-sig")  # type: ignore[call-arg]


def env_file(environ: Mapping[str, str]) -> Path | None:
    """The file to load: $CAMPAIGN_ENV_FILE, else `./.env`; None when there is none to read.

    `CAMPAIGN_ENV_FILE=` (empty) turns the file off. Under pytest (PYTEST_VERSION
    is set, and inherited by the CLI subprocesses the tests start in the repo)
    `./.env` is not read unless named explicitly, so a developer's real tokens
    never reach a test run.
    """
    if ENV_FILE_VARIABLE in environ:
        named = environ[ENV_FILE_VARIABLE].strip()
        return Path(named) if named else None
    if "PYTEST_VERSION" in environ:
        return None
    return Path(".env")


def check_dotenv(path: Path) -> None:
    """A ConfigError naming the file and line of the first line that is not KEY=VALUE.

    python-dotenv (which reads the file) skips such a line with a warning; a typo
    must not silently drop a setting. Values are never echoed: they may be secrets.
    A missing file is not an error.
    """
    from dotenv.parser import parse_stream

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    for binding in parse_stream(io.StringIO(text)):
        text = binding.original.string  # may start with the blank lines before it
        line = binding.original.line + text[: len(text) - len(text.lstrip())].count("\n")
        if binding.error:
            raise ConfigError(f"{path} line {line}: expected KEY=VALUE (malformed quoting)")
        if binding.key is not None and binding.value is None:
            raise ConfigError(f"{path} line {line}: expected KEY=VALUE (no '=' in it)")
        if binding.key is not None and not _KEY.fullmatch(binding.key):
            raise ConfigError(f"{path} line {line}: expected KEY=VALUE (not a variable name)")
