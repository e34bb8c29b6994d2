"""`reroll`, `animate` and `export` end to end, in subprocesses, on the offline generator."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.test_cli import _cli

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, request: str) -> dict[str, object]:
    result = _cli(tmp_path, "run", request, "--json")
    assert result.returncode == 0, result.stderr
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def _products(summary: dict[str, object]) -> list[dict[str, object]]:
    products = summary["products"]
    assert isinstance(products, list)
    return products


def test_reroll_then_animate_a_product_then_show(tmp_path: Path) -> None:
    first = _run(tmp_path, 'theme:"space dogs" products:2')
    cid = str(first["id"])
    rerolled = _cli(tmp_path, "reroll", cid, "2", "--json")
    assert rerolled.returncode == 0, rerolled.stderr
    products = _products(json.loads(rerolled.stdout))
    assert [(p["index"], p["attempt_of"], p["action"]) for p in products] == [
        (0, None, None),
        (1, None, None),
        (2, 1, "reroll"),
    ]
    assert [p["current"] for p in products] == [True, False, True]
    assert products[2]["image"] != products[1]["image"]

    animated = _cli(tmp_path, "animate", cid, "3", "--prompt", "slow orbit", "--json")
    assert animated.returncode == 0, animated.stderr
    summary = json.loads(animated.stdout)
    attempt = _products(summary)[3]
    assert (attempt["attempt_of"], attempt["action"], attempt["status"]) == (
        1,
        "animate",
        "succeeded",
    )
    assert attempt["image"] == products[2]["image"]  # the rerolled image, not paid again
    assert Path(str(attempt["video"])).stat().st_size > 1000

    shown = json.loads(_cli(tmp_path, "show", cid, "--json").stdout)
    assert len(shown["products"]) == 4
    assert shown["products"][3]["video_prompt"] == "slow orbit"


def test_animate_an_image_file_is_a_one_product_campaign(tmp_path: Path) -> None:
    picture = tmp_path / "cat photo.png"
    Image.new("RGB", (64, 64), "orange").save(picture)
    result = _cli(tmp_path, "animate", str(picture), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["theme"]) == ("succeeded", "animate cat photo")
    [product] = _products(summary)
    assert product["name"] == "cat photo"
    assert Path(str(product["video"])).stat().st_size > 1000
    history = json.loads(_cli(tmp_path, "history", "--json").stdout)
    assert [c["id"] for c in history] == [summary["id"]]


def test_animate_refusals_exit_2_and_store_nothing(tmp_path: Path) -> None:
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    refused = _cli(tmp_path, "animate", str(not_image))
    assert refused.returncode == 2
    assert "image: is not a PNG, JPEG or WebP image" in refused.stderr
    first = _run(tmp_path, 'theme:"space dogs" products:1')
    cid = str(first["id"])
    for args, message in (
        (("animate", cid, "7"), "product: 7 is not a product"),
        (("animate", cid, "--prompt", "zoom \x1b[2J"), "prompt: contains the control character"),
        (("reroll", cid, "0"), "product: 0 is not a product"),
    ):
        result = _cli(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 1


def test_export_round_trip(tmp_path: Path) -> None:
    first = _run(tmp_path, 'theme:"space dogs" products:2 videos:yes')
    cid = str(first["id"])
    out = tmp_path / "out" / "dogs.zip"
    result = _cli(tmp_path, "export", cid, "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["skipped"] == []
    shown = json.loads(_cli(tmp_path, "show", cid, "--json").stdout)
    folder = tmp_path / "data" / "campaigns" / cid
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        assert json.loads(zf.read("campaign.json")) == shown
        names = set(zf.namelist())
        for product in shown["products"]:
            for key in ("image", "video"):
                name = Path(product[key]).relative_to(folder).as_posix()
                assert zf.read(name) == Path(product[key]).read_bytes()
        assert Path(shown["contact_sheet"]).name in names
    assert set(report["files"]) == names


def test_export_leaves_out_files_outside_the_campaign_folder(tmp_path: Path) -> None:
    first = _run(tmp_path, 'theme:"space dogs" products:1')
    cid = str(first["id"])
    secret = tmp_path / "secret.txt"
    secret.write_text("do not ship")
    with sqlite3.connect(tmp_path / "c.db") as conn:  # a hostile edit of the database
        conn.execute("UPDATE steps SET output = ? WHERE campaign_id = ?", (str(secret), cid))
    result = _cli(tmp_path, "export", cid, "--out", str(tmp_path / "x.zip"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["skipped"] == [str(secret)]
    with zipfile.ZipFile(tmp_path / "x.zip") as zf:
        assert all("secret" not in n for n in zf.namelist())
