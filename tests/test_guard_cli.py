"""Hostile input at the terminal, and options on either side of the subcommand.

Subprocess runs of bot.py on the offline generator (as in test_cli.py). The
environment points at a paid-looking setup (a Replicate token) and at the
wrong data folder, so an option that is dropped shows up as a failure."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bot.cli.console import inert
from bot.cli.parser import build_parser

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
MARKUP_THEME = "sale [/y] now [bold red]big[/] [link=http://x]deal"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "REPLICATE_"))}
    env.update(
        CAMPAIGN_DATA_DIR=str(tmp_path / "wrong-data"),  # options must win over these
        CAMPAIGN_DB=str(tmp_path / "wrong.db"),
        CAMPAIGN_VIDEO_SECONDS="1",
        REPLICATE_API_TOKEN="r8_would-be-paid",  # auto = Replicate: only --generator stops it
        REPLICATE_BASE_URL="https://127.0.0.1:9",
        COLUMNS="200",
    )
    return env


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bot.py", *args],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "tail",
    [
        ["run", "cats"],
        ["run", "cats", "--image-model", "a/b"],
        ["history", "--limit", "3"],
        ["show", "abc"],
        ["resume", "--wait"],
        ["slack", "--port", "1", "--socket"],
        ["discord"],
    ],
)
def test_global_options_parse_the_same_before_and_after(tail: list[str]) -> None:
    options = ["--db", "x.db", "--data-dir", "d", "--executor", "local"]
    options += ["--generator", "offline", "--json", "-v"]
    parser = build_parser()
    before = parser.parse_args([*options, *tail])
    after = parser.parse_args([*tail, *options])
    assert vars(before) == vars(after)
    assert (before.generator, before.json, before.verbose, str(before.db)) == (
        "offline",
        True,
        True,
        "x.db",
    )
    plain = parser.parse_args(tail)  # and without them, the defaults
    assert (plain.generator, plain.json, plain.verbose, plain.db, plain.data_dir) == (
        None,
        False,
        False,
        None,
        None,
    )


def test_options_before_and_after_the_subcommand_run_the_same(tmp_path: Path) -> None:
    results = {}
    for where, data, db in (("before", "d1", "c1.db"), ("after", "d2", "c2.db")):
        options = ["--generator", "offline", "--data-dir", str(tmp_path / data)]
        options += ["--db", str(tmp_path / db), "--json", "--executor", "local"]
        args = [*options, "run", "cats products:1"]
        if where == "after":
            args = ["run", "cats products:1", *options]
        result = _cli(tmp_path, *args)
        assert result.returncode == 0, (where, result.stderr)
        summary = json.loads(result.stdout)
        assert (summary["generator"], summary["executor"]) == ("offline", "local")
        assert Path(summary["products"][0]["image"]).is_relative_to(tmp_path / data)
        results[where] = summary
        listed = [
            _cli(tmp_path, "--json", "--db", str(tmp_path / db), "history"),
            _cli(tmp_path, "history", "--db", str(tmp_path / db), "--json"),
        ]
        assert [json.loads(r.stdout)[0]["id"] for r in listed] == [summary["id"]] * 2
    assert results["before"]["products"][0]["name"] == results["after"]["products"][0]["name"]
    assert not (tmp_path / "wrong-data").exists() and not (tmp_path / "wrong.db").exists()


def test_markup_in_a_theme_runs_and_lists_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    base = ["--generator", "offline", "--db", str(db), "--data-dir", str(tmp_path / "d")]
    ran = _cli(tmp_path, *base, "run", f'theme:"{MARKUP_THEME}" products:1')
    assert ran.returncode == 0, ran.stderr
    history = _cli(tmp_path, *base, "history")
    assert history.returncode == 0, history.stderr
    assert MARKUP_THEME in history.stdout  # shown literally, not as markup
    with sqlite3.connect(db) as conn:
        (campaign_id,) = conn.execute("SELECT id FROM campaigns").fetchone()
        # a row from before control characters were refused, or a model-made name
        conn.execute(
            "UPDATE campaigns SET request_json = json_set(request_json, '$.theme', ?)",
            ("clear\x1b[2J\x1b]0;pwned\x07 [/y] \u202eevil",),
        )
    for args in (["history"], ["show", campaign_id], ["history", "--json"]):
        shown = _cli(tmp_path, *base, *args)
        assert shown.returncode == 0, (args, shown.stderr)
        assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
        assert "\u202e" not in shown.stdout
    assert (
        "clear\\x1b[2J\\x1b]0;pwned\\x07 [/y] \\u202eevil"
        in _cli(tmp_path, *base, "history").stdout
    )


def test_control_characters_in_a_request_exit_2_naming_the_field(tmp_path: Path) -> None:
    base = ["--generator", "offline", "--db", str(tmp_path / "c.db")]
    for text, field in (
        ("cats \x1b[2J", "theme"),
        ('cats audience:"a\x01b"', "audience"),  # (a NUL cannot be in argv at all)
        ("cats \u202egnp.exe", "theme"),
        ("cats style:neon\x7f", "style"),
    ):
        result = _cli(tmp_path, *base, "run", text)
        assert result.returncode == 2, result.stderr
        assert f"{field}: contains the control character" in result.stderr
        assert "\x1b" not in result.stderr and "\x01" not in result.stderr
    assert not (tmp_path / "c.db").exists() or _count(tmp_path / "c.db") == 0


def _count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM campaigns").fetchone()[0])


def test_inert_text_is_literal_and_visible() -> None:
    console = Console(record=True, width=200, color_system=None)
    console.print(inert("a [/y] [bold]b[/bold] \x1b[2J\x00\u2066c\td"))
    out = console.export_text()
    assert out.strip() == "a [/y] [bold]b[/bold] \\x1b[2J\\x00\\u2066c d"
