"""Discord pieces without a gateway: attachments within limits, texts, settings, options."""

from __future__ import annotations

from pathlib import Path

import discord
import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.offline.product_image import render_product_image
from bot.discord_ui.commands import to_request
from bot.discord_ui.progress import Place
from bot.discord_ui.render import MIB, _join_within, attachments, explain, shrink_image
from bot.discord_ui.seams import endpoints, guard_parsers
from bot.settings import AppSettings
from core.errors import ConfigError, InvalidRequest
from core.model import DiscordOrigin, TerminalOrigin


@pytest.fixture(scope="module")
def product_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real offline product image (a few hundred KiB)."""
    out = tmp_path_factory.mktemp("img") / "p01-image.png"
    render_product_image(
        str(out), name="Mug", product_type="mug", tagline="hi", style="neon", seed=1
    )
    return out


async def test_files_within_the_limit_are_attached_as_they_are(product_png: Path) -> None:
    size = product_png.stat().st_size
    found = await attachments([str(product_png)], file_limit=size, files_base_url=None)
    assert [(u.filename, len(u.data)) for u in found.uploads] == [("p01-image.png", size)]
    assert found.notes == []


async def test_a_too_big_image_is_shrunk_to_a_jpeg_within_the_limit(product_png: Path) -> None:
    limit = product_png.stat().st_size // 8
    found = await attachments([str(product_png)], file_limit=limit, files_base_url=None)
    (upload,) = found.uploads
    assert upload.filename == "p01-image.jpg" and 0 < len(upload.data) <= limit
    assert upload.data[:3] == b"\xff\xd8\xff"  # a JPEG
    assert shrink_image(str(product_png), 50) is None  # nothing that small exists


async def test_a_too_big_video_is_linked_or_explained(tmp_path: Path) -> None:
    video = tmp_path / "campaigns" / "c1" / "p01-video.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\0" * (2 * MIB))
    linked = await attachments([str(video)], file_limit=MIB, files_base_url="https://cdn.example/d")
    assert linked.uploads == []
    assert linked.notes == ["p01-video.mp4: https://cdn.example/d/campaigns/c1/p01-video.mp4"]
    noted = await attachments([str(video)], file_limit=MIB, files_base_url=None)
    (note,) = noted.notes
    assert note.startswith("p01-video.mp4 (2.0 MiB) is over this server's 1 MiB upload limit")


async def test_a_too_big_video_gets_a_signed_gallery_link(tmp_path: Path) -> None:
    from bot.gallery import GallerySettings

    video = tmp_path / "campaigns" / "c1" / "p01-video.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\0" * (2 * MIB))
    gallery = GallerySettings(secret="s" * 32, base_url="https://bot.example.com/g")
    found = await attachments([str(video)], file_limit=MIB, files_base_url=None, gallery=gallery)
    (note,) = found.notes
    assert note.startswith("p01-video.mp4: https://bot.example.com/g/files/c1/p01-video.mp4?")
    assert "sig=" in note and "exp=" in note


async def test_at_most_ten_files_per_message(tmp_path: Path) -> None:
    paths = []
    for index in range(12):
        path = tmp_path / f"f{index}.txt"
        path.write_text("x")
        paths.append(str(path))
    found = await attachments(paths, file_limit=MIB, files_base_url=None)
    assert len(found.uploads) == 10 and len(found.notes) == 2


def test_discord_errors_are_explained() -> None:
    class Response:  # what discord.HTTPException reads from an aiohttp response
        status = 403
        reason = "Forbidden"

    missing = discord.Forbidden(Response(), {"code": 50013, "message": "Missing Permissions"})  # type: ignore[arg-type]
    assert "Create Public Threads" in explain(missing)
    Response.status = 400
    archived = discord.HTTPException(Response(), {"code": 50083, "message": "Thread is archived"})  # type: ignore[arg-type]
    assert "archived" in explain(archived)
    odd = discord.HTTPException(Response(), {"code": 12345, "message": "Odd"})  # type: ignore[arg-type]
    assert explain(odd) == "Discord refused the request (400, code 12345): Odd"


def test_long_lists_are_cut_with_a_count() -> None:
    lines = [f"line {i} " + "x" * 50 for i in range(200)]
    text = _join_within(lines, 4096)
    assert len(text) <= 4096 and text.endswith("more") and text.startswith("line 0")
    assert _join_within(["a", "b"], 4096) == "a\nb"


def test_settings_from_env() -> None:
    env = {
        "DISCORD_TOKEN": "secret-token",
        "DISCORD_GUILD_IDS": "1, 2",
        "DISCORD_API_BASE_URL": "http://127.0.0.1:9/api/v10/",
        "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/gateway",
        "DISCORD_ALLOWED_ROLE_IDS": "7",
    }
    settings = AppSettings.from_mapping(env).discord
    assert settings.guild_ids == (1, 2) and settings.allowed_role_ids == {7}
    assert settings.api_base_url == "http://127.0.0.1:9/api/v10"
    assert "secret-token" not in repr(settings)
    assert settings.bot_token() == "secret-token"
    with pytest.raises(ConfigError, match="DISCORD_TOKEN is not set"):
        AppSettings.from_mapping({}).discord.bot_token()
    with pytest.raises(ConfigError, match="DISCORD_GATEWAY_URL"):
        AppSettings.from_mapping({"DISCORD_TOKEN": "t", "DISCORD_GATEWAY_URL": "http://x"})
    with pytest.raises(ConfigError, match="DISCORD_GUILD_IDS"):
        AppSettings.from_mapping({"DISCORD_TOKEN": "t", "DISCORD_GUILD_IDS": "abc"})


def test_endpoints_are_restored() -> None:
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    with endpoints("http://127.0.0.1:9/api", "ws://127.0.0.1:9/gw"):
        assert Route.BASE == "http://127.0.0.1:9/api"
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/gw"
    restored = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    assert restored == (base, gateway)


def test_guarded_parsers_skip_a_bad_payload_and_are_restored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = discord.Client(intents=discord.Intents.none())
    parsers = client._connection.parsers
    before = dict(parsers)
    restore = guard_parsers(client)
    assert parsers["READY"] is before["READY"]  # without READY the session is unusable
    parsers["MESSAGE_DELETE"]({"id": "7"})  # no channel_id: discord.py would raise
    assert "skipped a MESSAGE_DELETE payload" in caplog.text and "(id 7)" in caplog.text
    restore()
    assert parsers == before


def test_options_or_free_text_become_one_request() -> None:
    typed = to_request(
        theme="cats",
        products=2,
        videos=True,
        style="neon",
        audience=None,
        request=None,
        max_products=5,
    )
    text = to_request(
        theme=None,
        products=None,
        videos=None,
        style=None,
        audience=None,
        request="cats 2 products with videos in neon style",
        max_products=5,
    )
    assert typed == text
    with pytest.raises(InvalidRequest, match="products"):
        to_request(
            theme=None,
            products=None,
            videos=None,
            style=None,
            audience=None,
            request="cats 9 products",
            max_products=5,
        )


def test_place_round_trips_through_origin() -> None:
    place = Place(1, 2, 3, 4, 5 * MIB)
    assert Place.of(place.origin()) == place
    assert Place.of(TerminalOrigin()) is None and Place.of(DiscordOrigin(guild="x")) is None
