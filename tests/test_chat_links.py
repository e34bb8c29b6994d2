"""One place for oversize-file links: the served data folder or a signed gallery link,
the file name percent-encoded on Slack and on Discord alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.links import file_link
from bot.discord_ui.render import MIB, attachments
from bot.gallery import GallerySettings
from bot.slack_ui.thread import SlackThread

NAME = "p01 video #1?.mp4"
QUOTED = "p01%20video%20%231%3F.mp4"
GALLERY = GallerySettings(secret="s" * 32, base_url="https://bot.example.com/g")


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "campaigns" / "c1" / NAME
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * (2 * MIB))
    return path


def test_file_link_quotes_the_name_for_the_data_folder_and_the_gallery() -> None:
    served = file_link("c1", NAME, files_base_url="https://cdn.example/d")
    assert served == f"https://cdn.example/d/campaigns/c1/{QUOTED}"
    signed = file_link("c1", NAME, files_base_url=None, gallery=GALLERY)
    assert signed is not None and signed.startswith(f"https://bot.example.com/g/files/c1/{QUOTED}?")
    assert file_link("c1", NAME, files_base_url=None) is None
    assert file_link("c1", NAME, files_base_url=None, gallery=GallerySettings()) is None


@pytest.mark.parametrize("base", ["https://cdn.example/d", None])
async def test_slack_and_discord_link_an_oversize_file_alike(video: Path, base: str | None) -> None:
    thread = SlackThread(
        AsyncWebClient(token="xoxb-unused"),
        "C1",
        "1.0",
        executor="local",
        max_upload_bytes=MIB,
        files_base_url=base,
        gallery=GALLERY,
    )
    slack = thread._too_big("c1", str(video), 2 * MIB)
    found = await attachments([str(video)], file_limit=MIB, files_base_url=base, gallery=GALLERY)
    (discord,) = found.notes
    expected = file_link("c1", NAME, files_base_url=base, gallery=GALLERY)
    assert expected is not None and QUOTED in expected
    assert expected.split("?")[0] in slack  # the signature's expiry may tick between the two
    assert discord.startswith(f"{NAME}: {expected.split('?')[0]}")
    assert " " not in discord.removeprefix(f"{NAME}: ")
