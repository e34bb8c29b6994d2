"""The `.env` file: read by pydantic-settings at start, the environment always wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import check_dotenv, env_file, load_settings
from core.errors import ConfigError

SAMPLE = """\
\ufeff# a comment
export SLACK_BOT_TOKEN=xoxb-1
CAMPAIGN_DATA_DIR = /srv/campaigns     # spaces around = and a comment
SLACK_ADMINS="U1 U2"
REPLICATE_WEBHOOK_SECRET='whsec_a#b'
SLACK_API_URL=https://slack.example.com/api#frag
CAMPAIGN_LOG_FORMAT=
"""


@pytest.fixture
def dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `.env` the loader is pointed at, in an environment with none of the bot's variables."""
    path = tmp_path / "bot.env"
    monkeypatch.setenv("CAMPAIGN_ENV_FILE", str(path))
    for name in ("SLACK_BOT_TOKEN", "CAMPAIGN_DATA_DIR", "SLACK_ADMINS", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("REPLICATE_WEBHOOK_SECRET", "CAMPAIGN_LOG_FORMAT", "CAMPAIGN_MAX_PRODUCTS"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_the_file_fills_the_settings(dotenv: Path) -> None:
    dotenv.write_text(SAMPLE, encoding="utf-8")
    settings = load_settings()
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-1"  # `export ` is allowed
    assert settings.core.data_dir == Path("/srv/campaigns")  # the comment is not the value
    assert settings.slack.admins == {"U1", "U2"}
    secret = settings.replicate.webhook_secret
    assert secret is not None and secret.get_secret_value() == "whsec_a#b"  # single: literal
    assert settings.slack.api_url == "https://slack.example.com/api#frag/"  # `#` inside: data
    assert settings.core.log_format == "text"  # empty: the default


def test_the_environment_wins_even_when_empty(
    dotenv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv.write_text("CAMPAIGN_MAX_PRODUCTS=7\nCAMPAIGN_DATA_DIR=/from/file\n", encoding="utf-8")
    monkeypatch.setenv("CAMPAIGN_MAX_PRODUCTS", "9")
    monkeypatch.setenv("CAMPAIGN_DATA_DIR", "")  # set, though empty: the default, not the file
    settings = load_settings()
    assert settings.core.max_products == 9
    assert settings.core.data_dir == Path("data")


def test_a_missing_file_sets_nothing(dotenv: Path) -> None:
    assert not dotenv.exists()
    assert load_settings().core.data_dir == Path("data")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GOOD=1\nJUST_A_WORD\n", "line 2: expected KEY=VALUE (no '=' in it)"),
        ("\n1BAD=x\n", "line 2: expected KEY=VALUE (not a variable name)"),
        ('A="open\nB=2\n', "line 1: expected KEY=VALUE (malformed quoting)"),
    ],
)
def test_a_malformed_line_is_a_config_error_naming_the_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "demo.env"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        check_dotenv(path)
    assert str(caught.value) == f"{path} {message}"


def test_a_bad_value_in_the_file_names_the_variable_and_stops_the_load(dotenv: Path) -> None:
    dotenv.write_text("CAMPAIGN_LIMIT_IMAGE=0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="CAMPAIGN_LIMIT_IMAGE='0' is invalid: "):
        load_settings()


def test_errors_never_echo_a_value(dotenv: Path) -> None:
    dotenv.write_text('TOKEN="secret-value\nOTHER=secret-tail\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "secret" not in str(caught.value)


def test_which_file_is_read() -> None:
    assert env_file({}) == Path(".env")
    assert env_file({"CAMPAIGN_ENV_FILE": "/etc/bot.env"}) == Path("/etc/bot.env")
    assert env_file({"CAMPAIGN_ENV_FILE": ""}) is None
    # under pytest the repo's .env is never read by the CLI subprocesses the tests start
    assert env_file({"PYTEST_VERSION": "9"}) is None
    assert env_file({"PYTEST_VERSION": "9", "CAMPAIGN_ENV_FILE": "x.env"}) == Path("x.env")
