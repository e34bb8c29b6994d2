"""bot/gallery over HTTP: signed links, 403s, files only from the record, escaping.

The campaigns are real: made once per module by the service with the offline
generator (Pillow images, ffmpeg Ken Burns videos, a contact sheet) into a
real SQLite file; each test serves them on 127.0.0.1 with the real aiohttp app.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from yarl import URL

from bot.gallery import (
    GallerySettings,
    make_link,
    serve_gallery,
    serving_gallery,
    sign,
    signed_path,
    valid_until,
)
from bot.health import database_check
from bot.settings import AppSettings
from core.errors import ConfigError
from core.model import SlackOrigin, StepName
from core.request import CampaignRequest
from core.scheduler import Limits
from core.settings import CoreSettings
from storage.sqlite_store import SqliteStore

SECRET = "test-secret-0123456789abcdef"
NASTY_THEME = '<script>alert("x")</script> & "cats"'
NASTY_AUDIENCE = "'><img src=x onerror=alert(1)>"


@dataclass(frozen=True)
class Made:
    """What `build_campaigns` made: the settings to serve it and the campaigns' ids."""

    settings: CoreSettings
    nice: str  # 2 products with videos, from Slack
    nasty: str  # a theme and audience full of HTML, from the terminal
    outside: str  # its record names a file outside the data folder


async def build_campaigns(
    bot_main: ModuleType, folder: Path, products: int = 2, video_seconds: float = 1.0
) -> Made:
    """Real campaigns with real files in `folder` (offline generator, local executor)."""
    settings = CoreSettings(
        data_dir=folder / "data",
        db_path=folder / "campaigns.db",
        executor="local",
        generator="offline",
        video_seconds=video_seconds,
        limits=Limits(text=2, image=4, video=2, cpu=2),
    )
    async with bot_main.build(AppSettings.of(core=settings)) as app:
        service, store = app.service, app.store
        nice = await service.submit(
            CampaignRequest.from_options(
                theme="retro cats",
                products=products,
                videos=True,
                style="neon",
                audience="indie gamers",
            ),
            requester="slack:U123",
            origin=SlackOrigin(channel="C1"),
        )
        nasty = await service.submit(
            CampaignRequest.from_options(theme=NASTY_THEME, products=1, audience=NASTY_AUDIENCE)
        )
        outside = await service.submit(CampaignRequest.from_options(theme="owls", products=1))
        for campaign in (nice, nasty, outside):
            await service.wait(campaign.id)
            await service.wait_reel(campaign.id)  # the reel follows the summary
        done = await store.get(outside.id)
        step = done.products[0].step(StepName.IMAGE)
        assert step is not None
        (folder / "secret.txt").write_text("not for the web")
        secret = step.evolve(output=str(folder / "secret.txt"))
        await store.save_step(outside.id, secret, service.owner)
    return Made(settings, nice.id, nasty.id, outside.id)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, bot_main: ModuleType) -> Made:
    return asyncio.run(build_campaigns(bot_main, tmp_path_factory.mktemp("gallery")))


@contextlib.asynccontextmanager
async def gallery_server(made: Made) -> AsyncIterator[str]:
    store = await SqliteStore.open(made.settings.database)
    try:
        ready = database_check(store.ping)
        async with serving_gallery(store, made.settings, SECRET, "127.0.0.1", 0, ready) as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        await store.close()


@pytest.fixture
async def base(made: Made) -> AsyncIterator[str]:
    async with gallery_server(made) as url:
        yield url


async def fetch(url: str | URL) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.read()
        text = body.decode("utf-8", "replace")
        return response.status, text, response.headers


def link(base: str, path: str, ttl: float = 600, secret: str = SECRET) -> str:
    return make_link(secret, base, path, ttl)


# ------------------------------------------------------------------ signing


def test_links_are_hmac_sha256_over_path_and_expiry() -> None:
    exp = 2_000_000_000
    expected = hmac.new(SECRET.encode(), b"/campaigns\n2000000000", hashlib.sha256).hexdigest()
    assert sign(SECRET, "/campaigns", exp) == expected
    assert signed_path(SECRET, "/campaigns", exp) == f"/campaigns?exp={exp}&sig={expected}"
    query = {"exp": str(exp), "sig": expected}
    assert valid_until(SECRET, "/campaigns", query, now=exp - 1) == exp
    assert valid_until(SECRET, "/campaigns", query, now=exp) is None  # expired
    assert valid_until(SECRET, "/campaigns/x", query, now=0) is None  # another path
    assert valid_until("another-secret-0123456789", "/campaigns", query, now=0) is None
    assert valid_until(SECRET, "/campaigns", {"exp": "1e10", "sig": expected}, now=0) is None
    assert valid_until(SECRET, "/campaigns", {"exp": str(exp)}, now=0) is None


def test_make_link_and_the_settings_the_chat_bots_use() -> None:
    url = make_link(SECRET, "https://bot.example.com/gallery/", "/campaigns/abc", 60, now=1000)
    assert url == "https://bot.example.com/gallery" + signed_path(SECRET, "/campaigns/abc", 1060)
    env = {"CAMPAIGN_GALLERY_SECRET": SECRET, "CAMPAIGN_GALLERY_URL": "https://g.example.com/"}
    settings = AppSettings.from_mapping(env).gallery
    assert SECRET not in repr(settings)
    assert settings.campaign_link("abc", now=0) == make_link(
        SECRET, "https://g.example.com", "/campaigns/abc", 86400, now=0
    )
    assert (
        AppSettings.from_mapping({"CAMPAIGN_GALLERY_SECRET": SECRET}).gallery.campaign_link("a")
        is None
    )
    assert AppSettings.from_mapping({}).gallery.link("/campaigns") is None
    with pytest.raises(ConfigError, match="CAMPAIGN_GALLERY_SECRET is too short"):
        AppSettings.from_mapping({"CAMPAIGN_GALLERY_SECRET": "short"})
    with pytest.raises(ConfigError, match="CAMPAIGN_GALLERY_URL"):
        AppSettings.from_mapping({"CAMPAIGN_GALLERY_URL": "ftp://x"})
    with pytest.raises(ConfigError, match="CAMPAIGN_GALLERY_TTL"):
        AppSettings.from_mapping({"CAMPAIGN_GALLERY_TTL": "0"})


# ------------------------------------------------------------------ 403s


async def test_no_link_a_tampered_one_or_an_expired_one_gets_403_and_lists_nothing(
    base: str, made: Made
) -> None:
    good = link(base, "/campaigns")
    exp = int(re.search(r"exp=(\d+)", good)[1])  # type: ignore[index]
    sig = re.search(r"sig=([0-9a-f]+)", good)[1]  # type: ignore[index]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    bad = [
        f"{base}/campaigns",
        f"{base}/campaigns?exp={exp}",
        f"{base}/campaigns?sig={sig}",
        f"{base}/campaigns?exp={exp}&sig={flipped}",
        f"{base}/campaigns?exp={exp + 3600}&sig={sig}",  # a longer life, same signature
        f"{base}/campaigns?exp=abc&sig={sig}",
        link(base, "/campaigns", ttl=-5),  # expired
        link(base, "/campaigns", secret="someone-elses-secret-123"),
        f"{base}/campaigns/{made.nice}?exp={exp}&sig={sig}",  # the list's signature elsewhere
        f"{base}/files/{made.nice}/contact-sheet.png?exp={exp}&sig={sig}",
        f"{base}/files/{made.nice}/contact-sheet.png",
    ]
    for url in bad:
        status, text, headers = await fetch(url)
        assert status == 403, url
        assert "Link not valid" in text
        for secret_bit in (made.nice, made.nasty, "retro cats", "contact", "PNG"):
            assert secret_bit not in text, url
        assert headers["Content-Type"].startswith("text/html")
    assert (await fetch(good))[0] == 200


async def test_a_campaign_link_opens_that_campaign_only(base: str, made: Made) -> None:
    page = link(base, f"/campaigns/{made.nice}")
    status, text, _ = await fetch(page)
    assert status == 200
    assert "retro cats" in text
    query = page.split("?", 1)[1]
    assert (await fetch(f"{base}/campaigns/{made.nasty}?{query}"))[0] == 403
    assert (await fetch(f"{base}/campaigns?{query}"))[0] == 403
    assert 'href="/campaigns?' not in text  # no way back to the whole list from here


async def test_unknown_campaigns_and_unnamed_files_are_404_even_when_signed(
    base: str, made: Made
) -> None:
    assert (await fetch(link(base, "/campaigns/nosuchid")))[0] == 404
    for name in ("campaigns.db", "p09-image.png", "secret.txt.bak", "..", "%2e%2e"):
        assert (await fetch(link(base, f"/files/{made.nice}/{name}")))[0] == 404, name
    # a file of another campaign is not named by this one's record
    other = f"/files/{made.nasty}/p01-image.png"
    assert (await fetch(link(base, other)))[0] == 200
    assert (await fetch(link(base, f"/files/{made.outside}/contact-sheet.png")))[0] in (200, 404)


async def test_path_traversal_never_serves_a_file(base: str, made: Made) -> None:
    db_bytes = made.settings.database.read_bytes()[:16]
    attempts = [
        f"/files/{made.nice}/../../campaigns.db",
        f"/files/{made.nice}/..%2F..%2Fcampaigns.db",
        f"/files/{made.nice}/%2e%2e%2f%2e%2e%2fcampaigns.db",
        f"/files/{made.nice}/..%5C..%5Ccampaigns.db",
        f"/files/..%2F{made.nice}/p01-image.png",
        "/files/%2e%2e/%2e%2e%2fcampaigns.db",
        f"/files/{made.nice}/%252e%252e%252fcampaigns.db",
    ]
    for raw in attempts:
        # unsigned, and signed over both the raw and the decoded path: never the file
        decoded = URL(raw, encoded=True).path
        for path in (raw, decoded):
            url = URL(base + path + "?" + signed_path(SECRET, path, 2_000_000_000).split("?")[1],
                      encoded=True)  # fmt: skip
            status, text, _ = await fetch(url)
            assert status in (403, 404), (raw, path, status)
            assert db_bytes.decode("latin-1") not in text
        assert (await fetch(URL(base + raw, encoded=True)))[0] in (403, 404)


async def test_a_record_naming_a_file_outside_the_data_folder_is_not_served(
    base: str, made: Made
) -> None:
    status, text, _ = await fetch(link(base, f"/files/{made.outside}/secret.txt"))
    assert status == 404
    assert "not for the web" not in text


# ------------------------------------------------------------------ pages and files


def _links(text: str) -> list[str]:
    return [href.replace("&amp;", "&") for href in re.findall(r'(?:href|src)="([^"]+)"', text)]


async def test_the_list_is_newest_first_with_status_cost_requester_and_platform(
    base: str, made: Made
) -> None:
    status, text, headers = await fetch(link(base, "/campaigns"))
    assert status == 200
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "<script" not in text.lower()
    positions = [text.index(made.outside), text.index(made.nasty), text.index(made.nice)]
    assert positions == sorted(positions)  # newest first
    row = text[text.index(made.nice) - 1500 : text.index(made.nice) + 1500]
    for fact in ("succeeded", "$0.000", "slack:U123", "slack", "2/2 + videos"):
        assert fact in row, fact
    hrefs = _links(text)
    assert hrefs and all("exp=" in h and "sig=" in h for h in hrefs)  # every link is signed
    exp = re.search(r"exp=(\d+)", link(base, "/campaigns"))[1]  # type: ignore[index]
    assert all(f"exp={exp}" in h for h in hrefs)  # and expires with the page


async def test_the_campaign_page_shows_every_product_its_files_plans_steps_and_timeline(
    base: str, made: Made
) -> None:
    status, text, _ = await fetch(link(base, f"/campaigns/{made.nice}"))
    assert status == 200
    assert text.count("<video controls") == 2
    assert text.count('class="card"') == 2
    for part in ("Contact sheet", "Reel", "Timeline", "Steps", "Image prompt", "tl-bar"):
        assert part in text, part
    files = [h for h in _links(text) if h.startswith("/files/")]
    names = {h.split("?")[0].rsplit("/", 1)[1] for h in files}
    assert names == {
        "contact-sheet.png", "reel.mp4",
        "p01-image.png", "p01-video.mp4", "p02-image.png", "p02-video.mp4",
    }  # fmt: skip
    for href in files:
        status, _, headers = await fetch(base + href)
        assert status == 200, href
        kind = "video/mp4" if href.split("?")[0].endswith(".mp4") else "image/png"
        assert headers["Content-Type"] == kind
        assert headers["Cache-Control"].startswith("private")
    status, _, headers = await fetch(link(base, f"/files/{made.nice}/timeline.png"))
    assert (status, headers["Content-Type"]) == (200, "image/png")  # what a chat link names


async def test_videos_can_be_fetched_in_ranges(base: str, made: Made) -> None:
    url = link(base, f"/files/{made.nice}/p01-video.mp4")
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Range": "bytes=0-99"}) as response,
    ):
        assert response.status == 206
        assert len(await response.read()) == 100


async def test_everything_a_user_typed_is_escaped(base: str, made: Made) -> None:
    for path in ("/campaigns", f"/campaigns/{made.nasty}"):
        status, text, _ = await fetch(link(base, path))
        assert status == 200
        assert "<script>" not in text
        assert "<img src=x" not in text
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;cats&quot;" in text
    assert "&#x27;&gt;&lt;img src=x onerror=alert(1)&gt;" in text


async def test_health_routes_come_with_the_gallery(base: str) -> None:
    assert (await fetch(f"{base}/healthz"))[:2] == (200, "ok")
    status, text, _ = await fetch(f"{base}/readyz")
    assert status == 200 and '"database"' in text


# ------------------------------------------------------------------ bot.py gallery


async def _printed_link(out: io.StringIO, limit_s: float = 10) -> str:
    """The link `serve_gallery` printed, once it has (it prints when it listens)."""
    deadline = time.monotonic() + limit_s
    while "open: " not in out.getvalue():
        assert time.monotonic() < deadline, out.getvalue()
        await asyncio.sleep(0.05)
    return out.getvalue().split("open: ", 1)[1].split()[0]


class _Stop:
    """Stands in for StopSignals: `wait()` returns once `set()` is called."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> None:
        await self.event.wait()


async def test_serve_gallery_prints_a_working_signed_link_and_stops_on_a_signal(
    made: Made,
) -> None:
    store = await SqliteStore.open(made.settings.database)
    out = io.StringIO()
    stop = _Stop()
    try:
        task = asyncio.create_task(
            serve_gallery(
                store,
                made.settings,
                "127.0.0.1",
                0,
                out,
                gallery=GallerySettings(secret=SECRET, ttl_s=120),
                database=database_check(store.ping),
                stop=stop,
            )
        )
        url = await _printed_link(out)
        assert url.startswith("http://127.0.0.1:") and "/campaigns?exp=" in url
        status, text, _ = await fetch(url)
        assert status == 200 and made.nice in text
        stop.event.set()
        assert await asyncio.wait_for(task, 10) == 0
    finally:
        await store.close()
    assert "note:" not in out.getvalue()  # a secret was given


async def test_without_a_secret_the_gallery_uses_a_random_one_and_says_so(made: Made) -> None:
    store = await SqliteStore.open(made.settings.database)
    out = io.StringIO()
    stop = _Stop()
    try:
        task = asyncio.create_task(
            serve_gallery(
                store,
                made.settings,
                "127.0.0.1",
                0,
                out,
                gallery=GallerySettings(),
                database=database_check(store.ping),
                stop=stop,
            )
        )
        url = await _printed_link(out)
        assert (await fetch(url))[0] == 200
        base = url.split("/campaigns")[0]
        assert (await fetch(link(base, "/campaigns")))[0] == 403  # not our test secret
        stop.event.set()
        await asyncio.wait_for(task, 10)
    finally:
        await store.close()
    assert "CAMPAIGN_GALLERY_SECRET is not set" in out.getvalue()
