"""A `.env` file read at start-up; the real environment always wins.

    # comment
    export SLACK_BOT_TOKEN=xoxb-...        # `export ` is allowed and ignored
    CAMPAIGN_DATA_DIR = /srv/campaigns     # spaces around `=` are fine
    SLACK_ADMINS="U1 U2"                   # double quotes: \\n \\t \\" \\\\ are escapes
    REPLICATE_WEBHOOK_SECRET='whsec_a#b'   # single quotes: taken literally

An unquoted value ends at ` #` (a comment) and loses surrounding spaces; an
empty value (`KEY=`) is the empty string. There is no variable expansion and
no multi-line value. A line that is not `KEY=VALUE` is a ConfigError naming
the file and line, so a typo never silently drops a setting.

`load_dotenv` only sets variables the environment does not have (even an
empty one counts as set), so a container's or a shell's value overrides the
file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from core.errors import ConfigError

ENV_FILE_VARIABLE = "CAMPAIGN_ENV_FILE"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def parse_dotenv(text: str, source: str = ".env") -> dict[str, str]:
    """The KEY=VALUE pairs of a `.env` text, in order (a later line wins)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("export ", "export\t")):
            line = line[len("export") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            why = f"{_clip(key)!r} is not a variable name" if sep else "no '=' in it"
            raise ConfigError(f"{source} line {number}: expected KEY=VALUE ({why})")
        try:
            values[key] = _value(rest.strip())
        except ValueError as exc:
            raise ConfigError(f"{source} line {number} ({key}): {exc}") from None
    return values


def load_dotenv(path: Path | str, environ: MutableMapping[str, str]) -> list[str]:
    """Set the file's variables that `environ` lacks; returns their names.

    A missing file is not an error (nothing is set); an unreadable or
    malformed one is a ConfigError.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")  # tolerate a BOM from Windows editors
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from None
    added = []
    for key, value in parse_dotenv(text, str(file)).items():
        if key not in environ:
            environ[key] = value
            added.append(key)
    return added


def env_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The file to load: $CAMPAIGN_ENV_FILE, else `./.env`; None when there is none to read.

    `CAMPAIGN_ENV_FILE=` (empty) turns the file off. Under pytest (PYTEST_VERSION
    is set, and inherited by the CLI subprocesses the tests start in the repo)
    `./.env` is not read unless named explicitly, so a developer's real tokens
    never reach a test run.
    """
    environ = os.environ if environ is None else environ
    if ENV_FILE_VARIABLE in environ:
        named = environ[ENV_FILE_VARIABLE].strip()
        return Path(named) if named else None
    if "PYTEST_VERSION" in environ:
        return None
    return Path(".env")


def _value(rest: str) -> str:
    if rest[:1] == '"':
        return _double_quoted(rest)
    if rest[:1] == "'":
        end = rest.find("'", 1)
        if end < 0:
            raise ValueError("unclosed single quote")
        _only_comment_after(rest[end + 1 :])
        return rest[1:end]
    if rest.startswith("#"):  # `KEY=   # note`: an empty value and a comment
        return ""
    comment = re.search(r"\s#", rest)
    return (rest[: comment.start()] if comment else rest).strip()


def _double_quoted(rest: str) -> str:
    out: list[str] = []
    i = 1
    while i < len(rest):
        char = rest[i]
        if char == "\\" and i + 1 < len(rest):
            following = rest[i + 1]
            out.append(_ESCAPES.get(following, "\\" + following))
            i += 2
            continue
        if char == '"':
            _only_comment_after(rest[i + 1 :])
            return "".join(out)
        out.append(char)
        i += 1
    raise ValueError("unclosed double quote")


def _only_comment_after(tail: str) -> None:
    tail = tail.strip()
    if tail and not tail.startswith("#"):
        raise ValueError("text after the closing quote")  # (not echoed: it may be a secret)


def _clip(text: str, limit: int = 40) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
