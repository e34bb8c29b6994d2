"""The gallery's aiohttp side: routes, signed-link checks, files, `bot.py gallery`.

Every request needs a valid signed link (bot.gallery.signing); the pages come
from bot.gallery.render. Files: `<name>` is looked up among the file names the
campaign's record holds; the path served is the recorded one, never built from
the URL, and must lie inside the data folder.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from aiohttp import web

from bot.gallery import render
from bot.gallery.settings import GallerySettings
from bot.gallery.signing import make_link, signed_path, valid_until
from bot.health import Check, add_health_routes
from bot.signals import StopSignals
from core.errors import CampaignNotFound
from core.model import Campaign
from core.settings import CoreSettings, reveal

LIST_LIMIT = 200
FILE_CACHE_S = 3600
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline';"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # signed links never leave in a Referer header
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class CampaignReader(Protocol):
    """The two store reads the gallery uses (SqliteStore has them)."""

    async def get(self, campaign_id: str) -> Campaign: ...

    async def recent(self, limit: int) -> Sequence[Campaign]: ...


def campaign_files(campaign: Campaign) -> dict[str, Path]:
    """File name -> recorded path of every file the campaign's record names."""
    paths = [s.output for p in campaign.products for s in p.steps if s.output]
    paths += [f for f in (campaign.contact_sheet, campaign.timeline, campaign.reel) if f]
    files: dict[str, Path] = {}
    for recorded in paths:
        files.setdefault(Path(recorded).name, Path(recorded))
    return files


class Gallery:
    """The gallery's request handlers over a store and the data folder."""

    def __init__(
        self,
        store: CampaignReader,
        secret: str,
        data_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        list_limit: int = LIST_LIMIT,
    ) -> None:
        self.store = store
        self._secret = secret
        self.data_dir = data_dir.resolve()
        self._clock = clock
        self.list_limit = list_limit

    def add_to(self, app: web.Application) -> None:
        """Mount the gallery's routes on an aiohttp application."""
        app.router.add_get("/campaigns", self.list_page)
        app.router.add_get("/campaigns/{campaign_id}", self.campaign_page)
        app.router.add_get("/files/{campaign_id}/{name}", self.file)

    def _allowed(self, request: web.Request) -> int | None:
        return valid_until(self._secret, request.path, request.query, self._clock())

    def _signer(self, exp: int) -> render.Link:
        """Signs the links a page shows with that page's own expiry."""
        return lambda path: signed_path(self._secret, path, exp)

    async def list_page(self, request: web.Request) -> web.Response:
        """GET /campaigns: the newest campaigns."""
        exp = self._allowed(request)
        if exp is None:
            return forbidden()
        campaigns = await self.store.recent(self.list_limit)
        return page(render.list_page(campaigns, self._signer(exp), exp))

    async def campaign_page(self, request: web.Request) -> web.Response:
        """GET /campaigns/<id>: one campaign in full."""
        exp = self._allowed(request)
        if exp is None:
            return forbidden()
        try:
            campaign = await self.store.get(request.match_info["campaign_id"])
        except CampaignNotFound:
            return not_found()
        return page(render.campaign_page(campaign, self._signer(exp), exp, now=self._clock()))

    async def file(self, request: web.Request) -> web.StreamResponse:
        """GET /files/<id>/<name>: a file the campaign's record names, from the data folder."""
        exp = self._allowed(request)
        if exp is None:
            return forbidden()
        try:
            campaign = await self.store.get(request.match_info["campaign_id"])
        except CampaignNotFound:
            return not_found()
        recorded = campaign_files(campaign).get(request.match_info["name"])
        if recorded is None:
            return not_found()
        path = recorded.resolve()
        if not path.is_relative_to(self.data_dir) or not path.is_file():
            return not_found()
        max_age = max(0, min(FILE_CACHE_S, exp - int(self._clock())))
        return web.FileResponse(
            path,
            headers={
                "Cache-Control": f"private, max-age={max_age}",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )


def add_gallery_routes(
    app: web.Application, store: CampaignReader, secret: str, data_dir: Path
) -> Gallery:
    """Mount the gallery on an existing aiohttp application (e.g. the Slack server)."""
    gallery = Gallery(store, secret, data_dir)
    gallery.add_to(app)
    return gallery


@contextlib.asynccontextmanager
async def serving_gallery(
    store: CampaignReader,
    settings: CoreSettings,
    secret: str,
    host: str,
    port: int,
    database: Check,
) -> AsyncIterator[int]:
    """Serve the gallery with /healthz and /readyz (`database`: the store's readiness check)
    on host:port; yields the bound port."""
    app = web.Application()
    add_gallery_routes(app, store, secret, settings.data_dir)
    add_health_routes(app, {"database": database})
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def serve_gallery(
    store: CampaignReader,
    settings: CoreSettings,
    host: str,
    port: int,
    out: TextIO,
    *,
    gallery: GallerySettings,
    database: Check,
    stop: StopSignals | None = None,
) -> int:
    """`bot.py gallery`: serve until SIGINT/SIGTERM, after printing a signed link to the list.

    Without CAMPAIGN_GALLERY_SECRET a random key is used: its links die with the process.
    """
    secret = reveal(gallery.secret)
    if not secret:
        secret = secrets.token_urlsafe(32)
        print(
            "note: CAMPAIGN_GALLERY_SECRET is not set; these links work until this process"
            " stops (set it to keep links working and to let the chat bots link here)",
            file=out,
        )
    with contextlib.ExitStack() as stack:
        signals = stop if stop is not None else stack.enter_context(StopSignals())
        async with serving_gallery(store, settings, secret, host, port, database) as bound:
            shown_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
            base = gallery.base_url or f"http://{_url_host(shown_host)}:{bound}"
            link = make_link(secret, base, "/campaigns", gallery.ttl_s)
            until = render.when(time.time() + gallery.ttl_s)
            print(f"gallery: listening on {host}:{bound} (health: /healthz, /readyz)", file=out)
            print(f"open: {link}", file=out)
            print(f"(the link works until {until})", file=out, flush=True)
            await signals.wait()
    return 0


def page(text: str, status: int = 200) -> web.Response:
    """A rendered HTML page with the security headers."""
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


def forbidden() -> web.Response:
    """403: the link is missing, wrong or expired (nothing else is said)."""
    text = (
        "This link is missing its signature, was changed, or has expired."
        " Ask the bot for a new one."
    )
    return page(render.message_page("Forbidden", "Link not valid", text), 403)


def not_found() -> web.Response:
    """404 for a signed link to something that does not exist (any more)."""
    text = "There is no such campaign or file."
    return page(render.message_page("Not found", "Not found", text), 404)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
