"""Commands load only what they need: reading campaigns starts no adapter or chat library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("aiohttp", "httpx", "replicate", "discord", "slack_bolt", "ray", "PIL", "jinja2")
SETTINGS = ("pydantic", "pydantic_settings")  # read after the arguments: not for --version
PROBE = """
import json, runpy, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["bot.py", *json.loads(sys.argv[1])]
code = None
try:
    runpy.run_path("bot.py", run_name="__main__")
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in heavy if m in sys.modules)
print(json.dumps({"code": code, "loaded": loaded}))
"""


@pytest.mark.parametrize(
    ("args", "code", "heavy"),
    [
        (["--version"], 0, HEAVY + SETTINGS),
        (["history", "--json"], 0, HEAVY),
        (["show", "nope1234"], 1, HEAVY),
        (["usage"], 0, HEAVY),
        (["cancel", "nope1234"], 1, HEAVY),
    ],
)
def test_reading_commands_load_no_adapter_or_chat_library(
    tmp_path: Path, args: list[str], code: int, heavy: tuple[str, ...]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "REPLICATE_"))}
    env |= {
        "REPLICATE_API_TOKEN": "r8_not-used",  # set, as in production: still nothing loads
        "CAMPAIGN_DB": str(tmp_path / "c.db"),
        "CAMPAIGN_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(heavy)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["code"], result["loaded"]) == (code, []), done.stderr
