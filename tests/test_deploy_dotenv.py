"""core/dotenv.py: the .env parser and loader (the environment always wins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.dotenv import env_file, load_dotenv, parse_dotenv
from core.errors import ConfigError

SAMPLE = """\
# a comment
\ufeff
export SLACK_BOT_TOKEN=xoxb-1
CAMPAIGN_DATA_DIR = /srv/campaigns     # spaces around = and a comment
SLACK_ADMINS="U1 U2"
QUOTED_HASH="a # not a comment"  # but this is
SINGLE='whsec_a#b\\n'
ESCAPES="line1\\nline2\\t\\"q\\" \\\\ \\x"
EMPTY=
EMPTY_NOTE=    # only a comment
URL=https://example.com/a#frag
SPACED =   padded value   # trailing spaces before a comment
"""


def test_parse_dotenv_reads_keys_values_comments_and_quotes() -> None:
    values = parse_dotenv(SAMPLE.replace("\ufeff", ""))
    assert values == {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "CAMPAIGN_DATA_DIR": "/srv/campaigns",
        "SLACK_ADMINS": "U1 U2",
        "QUOTED_HASH": "a # not a comment",
        "SINGLE": "whsec_a#b\\n",  # single quotes are literal
        "ESCAPES": 'line1\nline2\t"q" \\ \\x',
        "EMPTY": "",
        "EMPTY_NOTE": "",
        "URL": "https://example.com/a#frag",  # a # without a space before it is data
        "SPACED": "padded value",
    }


def test_a_later_line_wins() -> None:
    assert parse_dotenv("A=1\nA=2\n") == {"A": "2"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("JUST_A_WORD", "line 1: expected KEY=VALUE (no '=' in it)"),
        ("\n1BAD=x", "line 2: expected KEY=VALUE ('1BAD' is not a variable name)"),
        ('A="open', "line 1 (A): unclosed double quote"),
        ("A='open", "line 1 (A): unclosed single quote"),
        ('A="x" trailing', "line 1 (A): text after the closing quote"),
    ],
)
def test_a_malformed_line_is_a_config_error_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_dotenv(text, "demo.env")
    assert str(caught.value).startswith(f"demo.env {message}")


def test_errors_never_echo_a_value() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_dotenv('TOKEN="secret-value" oops-secret-tail')
    assert "secret" not in str(caught.value)


def test_load_dotenv_sets_only_unset_variables(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("\ufeffA=from-file\nB=from-file\nC=from-file\n", encoding="utf-8")
    environ = {"A": "from-env", "C": ""}  # even an empty variable counts as set
    assert load_dotenv(path, environ) == ["B"]
    assert environ == {"A": "from-env", "B": "from-file", "C": ""}


def test_a_missing_file_sets_nothing(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    assert load_dotenv(tmp_path / "nothing.env", environ) == []
    assert environ == {}


def test_a_malformed_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("GOOD=1\nbroken line\n")
    environ: dict[str, str] = {}
    with pytest.raises(ConfigError, match=r"\.env line 2"):
        load_dotenv(path, environ)
    assert environ == {}  # nothing half-loaded


def test_which_file_is_read() -> None:
    assert env_file({}) == Path(".env")
    assert env_file({"CAMPAIGN_ENV_FILE": "/etc/bot.env"}) == Path("/etc/bot.env")
    assert env_file({"CAMPAIGN_ENV_FILE": ""}) is None
    # under pytest the repo's .env is never read by the CLI subprocesses the tests start
    assert env_file({"PYTEST_VERSION": "9"}) is None
    assert env_file({"PYTEST_VERSION": "9", "CAMPAIGN_ENV_FILE": "x.env"}) == Path("x.env")
