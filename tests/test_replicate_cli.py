"""`bot.py run ... --json` in a subprocess with REPLICATE_API_TOKEN, against the fake API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.fakes.replicate import (
    TOKEN,
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
)

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env(tmp_path: Path, fake: FakeReplicate, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "REPLICATE_"))}
    env.pop("RAY_ADDRESS", None)
    env.update(
        CAMPAIGN_DATA_DIR=str(tmp_path / "data"),
        CAMPAIGN_DB=str(tmp_path / "c.db"),
        CAMPAIGN_EXECUTOR="local",
        REPLICATE_API_TOKEN=TOKEN,
        REPLICATE_BASE_URL=fake.base_url,
        REPLICATE_ALLOW_HTTP="1",
        REPLICATE_ALLOW_PRIVATE_OUTPUTS="1",  # the fake serves outputs on 127.0.0.1
        REPLICATE_POLL_MIN="0.02",
        REPLICATE_POLL_MAX="0.1",
    )
    env.update(extra)
    return env


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "bot.py",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 100)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_json_against_the_fake(fake: FakeReplicate, tmp_path: Path) -> None:
    env = _env(tmp_path, fake)
    code, out, err = await _cli(env, "run", 'theme:"retro cats" products:4 videos:yes', "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["status"], summary["generator"]) == ("succeeded", "replicate")
    assert summary["cost_usd"] == pytest.approx(4 * 0.003 + 4 * 0.18)
    assert "estimated cost: $0.732 for 8 steps on replicate" in err
    assert [p["name"] for p in summary["products"]] == [f"Retro Cats Item {i}" for i in range(1, 5)]
    for product in summary["products"]:
        assert Path(product["image"]).read_bytes()[:4] == b"\x89PNG"
        assert Path(product["video"]).read_bytes()[4:8] == b"ftyp"
    assert (len(fake.made("image")), len(fake.made("video"))) == (4, 4)
    assert fake.repeated() == []  # nothing paid twice, the planning calls included
    assert fake.file_headers and all("Authorization" not in h for h in fake.file_headers)
    assert TOKEN not in out + err

    code, out, _ = await _cli(env, "show", summary["id"], "--json")
    steps = [s for p in json.loads(out)["products"] for s in p["steps"]]
    assert {s["provider_id"] for s in steps} <= set(fake.predictions)
    assert {s["model"] for s in steps} == {
        "black-forest-labs/flux-schnell",
        "bytedance/seedance-1-lite",
    }
    assert sorted(s["cost_usd"] for s in steps) == [0.003] * 4 + [0.18] * 4
    assert [s["predict_time_s"] for s in steps] == [
        fake.predictions[s["provider_id"]]["metrics"]["predict_time"] for s in steps
    ]
    code, out, _ = await _cli(env, "history", "--json")
    assert json.loads(out)[0]["cost_usd"] == summary["cost_usd"]
    assert TOKEN.encode() not in (tmp_path / "c.db").read_bytes()


async def test_cli_model_option_and_plain_http_refusal(fake: FakeReplicate, tmp_path: Path) -> None:
    env = _env(tmp_path, fake)
    code, out, err = await _cli(
        env, "run", "dogs products:1", "--image-model", "black-forest-labs/flux-dev", "--json"
    )
    assert code == 0, err
    assert [p["model"] for p in fake.created()][1:] == ["black-forest-labs/flux-dev"]
    assert json.loads(out)["cost_usd"] == 0.025

    code, _, err = await _cli(env, "run", "dogs", "--image-model", "nope", "--json")
    assert code == 2 and "--image-model='nope' is invalid" in err
    env.pop("REPLICATE_ALLOW_HTTP")
    code, out, err = await _cli(env, "run", "dogs products:1", "--json")
    assert code == 2 and "REPLICATE_ALLOW_HTTP" in err and out == ""
    assert len(fake.created()) == 2  # neither refused run created anything


async def test_models_lists_each_kind_as_mapped_and_priced(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[models."minimax/hailuo-02"]\nkind = "video"\nunit = "output_second"\nprice = 0.09\n',
        encoding="utf-8",
    )
    env = _env(
        tmp_path,
        fake,
        REPLICATE_VIDEO_MODEL="minimax/hailuo-02",
        REPLICATE_VIDEO_RESOLUTION="720p",
        CAMPAIGN_MODELS_FILE=str(models),
    )
    code, out, err = await _cli(env, "models", "--json")
    assert code == 0, err
    rows = {row["kind"]: row for row in json.loads(out)}
    video = rows["video"]
    assert (video["model"], video["version"]) == ("minimax/hailuo-02", fake.latest[video["model"]])
    assert video["inputs"]["image"] == "first_frame_image"
    assert video["inputs"]["resolution"] == "resolution=768p"  # 720p snapped to what it takes
    assert (video["unit"], video["price_usd"], video["price_source"]) == (
        "output_second",
        0.09,
        str(models),
    )
    assert video["estimate_usd"] == pytest.approx(6 * 0.09)  # its default 6 s clip
    assert rows["image"]["price_source"] == "table" and rows["text"]["inputs"]["prompt"]
    assert TOKEN not in out + err
    code, text, err = await _cli(env, "models")  # the same for people
    assert code == 0 and "video: minimax/hailuo-02" in text and "first_frame_image" in text
    offline = {k: v for k, v in env.items() if k != "REPLICATE_API_TOKEN"}
    code, out, err = await _cli(offline, "models", "--json")  # no token: the stored schemas
    assert code == 0 and json.loads(out)[2]["inputs"]["image"] == "first_frame_image", err
    offline["CAMPAIGN_DB"] = str(tmp_path / "fresh.db")  # no token and no stored schema
    code, out, err = await _cli(offline, "models", "--json")
    assert code == 0, err
    assert all(row["inputs"] == "schema not fetched" for row in json.loads(out))
