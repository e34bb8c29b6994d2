"""A read-only web gallery of the stored campaigns, reached by signed, expiring links.

    GET /campaigns              newest first: status, cost, requester, origin platform
    GET /campaigns/<id>         contact sheet, every product's image and video,
                                plans, steps and a timeline
    GET /files/<id>/<name>      a file the campaign's database record names

Every request needs `exp` (a Unix time) and `sig` (hex HMAC-SHA256 with
CAMPAIGN_GALLERY_SECRET over "<path>\\n<exp>") in its query: no link, a
wrong signature or an expired one gets 403 and lists nothing. The links a
page shows (to campaign pages and files) are signed with that page's own
expiry, so a link never opens more than it was given for, nor for longer.

Files: `<name>` is looked up among the file names the campaign's record
holds (its steps' outputs and its contact sheet); the path served is the
recorded one, never built from the URL, and must lie inside the data
folder. Everything a user typed (theme, audience, names, errors) is
HTML-escaped; pages carry no script and a strict Content-Security-Policy.

`make_link(secret, base_url, path, ttl)` makes a link; `GallerySettings.link`
does it from the environment for the chat front ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import html
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO
from urllib.parse import quote, urlencode

from aiohttp import web

from bot.health import add_health_routes, database_check
from bot.signals import StopSignals
from core.errors import CampaignNotFound, ConfigError
from core.model import Campaign, Product, StepName, StepRecord, StepStatus
from core.settings import Settings, env_value, positive_int

DEFAULT_TTL_S = 24 * 3600
MIN_SECRET_CHARS = 16
LIST_LIMIT = 200
FILE_CACHE_S = 3600
_SIG = re.compile(r"[0-9a-f]{64}")
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


@dataclass(frozen=True)
class GallerySettings:
    """CAMPAIGN_GALLERY_SECRET, CAMPAIGN_GALLERY_URL and CAMPAIGN_GALLERY_TTL."""

    secret: str | None = field(default=None, repr=False)
    base_url: str | None = None  # public URL of the gallery, e.g. https://bot.example.com/gallery
    ttl_s: int = DEFAULT_TTL_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GallerySettings:
        """Read and check the gallery's variables."""
        env = os.environ if env is None else env
        secret = env.get("CAMPAIGN_GALLERY_SECRET", "").strip() or None
        if secret is not None and len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"CAMPAIGN_GALLERY_SECRET is too short: use at least {MIN_SECRET_CHARS}"
                " random characters (e.g. `python -c 'import secrets;"
                " print(secrets.token_urlsafe(32))'`)"
            )
        base_url = env.get("CAMPAIGN_GALLERY_URL", "").strip().rstrip("/") or None
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"CAMPAIGN_GALLERY_URL={base_url!r} is invalid: must be an http(s) URL"
            )
        ttl = env_value(env, "CAMPAIGN_GALLERY_TTL", positive_int, DEFAULT_TTL_S)
        return cls(secret=secret, base_url=base_url, ttl_s=ttl)

    def link(self, path: str, now: float | None = None) -> str | None:
        """A signed link to `path` (e.g. /campaigns/<id>); None unless secret and URL are set."""
        if not self.secret or not self.base_url:
            return None
        return make_link(self.secret, self.base_url, path, self.ttl_s, now)

    def campaign_link(self, campaign_id: str, now: float | None = None) -> str | None:
        """The signed link to one campaign's page, for a chat summary."""
        return self.link(f"/campaigns/{campaign_id}", now)


def sign(secret: str, path: str, exp: int) -> str:
    """Hex HMAC-SHA256 of "<path>\\n<exp>"."""
    message = f"{path}\n{exp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_path(secret: str, path: str, exp: int) -> str:
    """`path?exp=...&sig=...` (the path percent-encoded, signed as decoded)."""
    return f"{quote(path)}?{urlencode({'exp': exp, 'sig': sign(secret, path, exp)})}"


def make_link(secret: str, base_url: str, path: str, ttl: float, now: float | None = None) -> str:
    """A link to `path` under `base_url` that works for `ttl` seconds from `now`."""
    exp = int((time.time() if now is None else now) + ttl)
    return base_url.rstrip("/") + signed_path(secret, path, exp)


def valid_until(secret: str, path: str, query: Mapping[str, str], now: float) -> int | None:
    """The link's expiry if its signature is right and it has not expired, else None."""
    exp_raw, sig = query.get("exp", ""), query.get("sig", "")
    if not exp_raw.isdigit() or len(exp_raw) > 12 or not _SIG.fullmatch(sig):
        return None
    exp = int(exp_raw)
    if not hmac.compare_digest(sign(secret, path, exp), sig) or exp <= now:
        return None
    return exp


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

    def _link(self, path: str, exp: int) -> str:
        return signed_path(self._secret, path, exp)

    async def list_page(self, request: web.Request) -> web.Response:
        """GET /campaigns: the newest campaigns."""
        exp = self._allowed(request)
        if exp is None:
            return forbidden()
        campaigns = await self.store.recent(self.list_limit)
        body = render_list(campaigns, lambda path: self._link(path, exp), exp)
        return page(body, "Campaigns")

    async def campaign_page(self, request: web.Request) -> web.Response:
        """GET /campaigns/<id>: one campaign in full."""
        exp = self._allowed(request)
        if exp is None:
            return forbidden()
        try:
            campaign = await self.store.get(request.match_info["campaign_id"])
        except CampaignNotFound:
            return not_found()
        body = render_campaign(campaign, lambda path: self._link(path, exp), exp, now=self._clock())
        return page(body, f"Campaign {campaign.id}")

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
    store: CampaignReader, settings: Settings, secret: str, host: str, port: int
) -> AsyncIterator[int]:
    """Serve the gallery with /healthz and /readyz on host:port; yields the bound port."""
    app = web.Application()
    add_gallery_routes(app, store, secret, settings.data_dir)
    add_health_routes(app, {"database": database_check(settings.database)})
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def serve_gallery(
    store: CampaignReader,
    settings: Settings,
    host: str,
    port: int,
    out: TextIO,
    *,
    gallery: GallerySettings | None = None,
    stop: StopSignals | None = None,
) -> int:
    """`bot.py gallery`: serve until SIGINT/SIGTERM, after printing a signed link to the list.

    Without CAMPAIGN_GALLERY_SECRET a random key is used: its links die with the process.
    """
    config = gallery or GallerySettings.from_env()
    secret = config.secret
    if secret is None:
        secret = secrets.token_urlsafe(32)
        print(
            "note: CAMPAIGN_GALLERY_SECRET is not set; these links work until this process"
            " stops (set it to keep links working and to let the chat bots link here)",
            file=out,
        )
    with contextlib.ExitStack() as stack:
        signals = stop if stop is not None else stack.enter_context(StopSignals())
        async with serving_gallery(store, settings, secret, host, port) as bound:
            shown_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
            base = config.base_url or f"http://{_url_host(shown_host)}:{bound}"
            link = make_link(secret, base, "/campaigns", config.ttl_s)
            until = _when(time.time() + config.ttl_s)
            print(f"gallery: listening on {host}:{bound} (health: /healthz, /readyz)", file=out)
            print(f"open: {link}", file=out)
            print(f"(the link works until {until})", file=out, flush=True)
            await signals.wait()
    return 0


# ---------------------------------------------------------------- rendering

Link = Callable[[str], str]  # app path -> signed relative URL

STATUS_COLOURS = {
    "succeeded": "#1a7f37",
    "partial": "#9a6700",
    "failed": "#cf222e",
    "canceled": "#6e7781",
    "running": "#bf8700",
    "pending": "#6e7781",
    "skipped": "#6e7781",
}

KIND_COLOURS = {"image": "#0969da", "video": "#8250df"}  # succeeded steps, by kind

STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0; background: #f6f8fa; color: #1f2328; }
header { background: #24292f; color: #fff; padding: 14px 28px; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { padding: 20px 28px 40px; max-width: 1280px; margin: 0 auto; }
h1 { font-size: 24px; margin: 4px 0 6px; }
h2 { font-size: 18px; margin: 28px 0 10px; }
.muted { color: #656d76; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; color: #fff;
         font-size: 12px; font-weight: 600; vertical-align: middle; }
table { border-collapse: collapse; width: 100%; background: #fff;
        border: 1px solid #d0d7de; border-radius: 6px; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid #eaeef2;
         vertical-align: top; }
th { background: #f6f8fa; font-size: 13px; color: #57606a; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.thumb { width: 96px; height: auto; border-radius: 4px; display: block; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 22px; margin: 8px 0 0; }
.facts div span { color: #656d76; margin-right: 4px; }
.sheet { max-width: 100%; border-radius: 6px; border: 1px solid #d0d7de; background: #fff; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(290px, 1fr)); gap: 16px; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 12px; }
.card img, .card video { width: 100%; border-radius: 6px; background: #eaeef2; display: block; }
.card video { margin-top: 8px; }
.card h3 { margin: 10px 0 2px; font-size: 16px; }
.tagline { font-style: italic; color: #57606a; margin: 2px 0 6px; }
.missing { padding: 40px 0; text-align: center; color: #656d76; background: #eaeef2;
           border-radius: 6px; margin-top: 8px; }
.error { color: #cf222e; }
details { margin-top: 6px; font-size: 13px; }
.timeline { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 12px; }
.tl-row { display: flex; align-items: center; height: 24px; font-size: 12px; }
.tl-label { width: 150px; flex: none; color: #57606a; overflow: hidden; white-space: nowrap;
            text-overflow: ellipsis; }
.tl-track { position: relative; flex: 1; height: 14px; background: #f6f8fa; border-radius: 3px; }
.tl-bar { position: absolute; top: 0; bottom: 0; border-radius: 3px; min-width: 3px; }
.tl-axis { display: flex; justify-content: space-between; margin-left: 150px;
           font-size: 11px; color: #656d76; }
.tl-legend { display: flex; gap: 16px; margin: 8px 0 0 150px; font-size: 11px; color: #57606a; }
.tl-legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
               margin-right: 5px; vertical-align: -1px; }
code { font-size: 12px; }
"""


def e(value: object) -> str:
    """HTML-escaped text (quotes too: safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def page(body: str, title: str, status: int = 200) -> web.Response:
    """A whole HTML page with the security headers."""
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{e(title)}</title><style>{STYLE}</style></head>"
        f"<body><header><span>Campaign gallery</span></header><main>{body}</main></body></html>"
    )
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


def forbidden() -> web.Response:
    """403: the link is missing, wrong or expired (nothing else is said)."""
    return page(
        "<h1>Link not valid</h1><p>This link is missing its signature, was changed, or has"
        " expired. Ask the bot for a new one.</p>",
        "Forbidden",
        403,
    )


def not_found() -> web.Response:
    """404 for a signed link to something that does not exist (any more)."""
    return page("<h1>Not found</h1><p>There is no such campaign or file.</p>", "Not found", 404)


def badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#6e7781")
    return f'<span class="badge" style="background:{colour}">{e(status)}</span>'


def render_list(campaigns: Sequence[Campaign], link: Link, exp: int) -> str:
    """The /campaigns page body."""
    rows = []
    for c in campaigns:
        page_link = link(f"/campaigns/{c.id}")
        sheet = (
            f'<a href="{e(page_link)}"><img class="thumb" alt="contact sheet"'
            f' src="{e(link(_file_path(c.id, c.contact_sheet)))}"></a>'
            if c.contact_sheet
            else ""
        )
        done = sum(p.status is StepStatus.SUCCEEDED for p in c.products)
        rows.append(
            "<tr>"
            f"<td>{sheet}</td>"
            f'<td><a href="{e(page_link)}">{e(c.request.theme)}</a>'
            f'<div class="muted"><code>{e(c.id)}</code></div></td>'
            f"<td>{badge(c.status.value)}</td>"
            f'<td class="num">{done}/{len(c.products) or c.request.products}'
            f"{' + videos' if c.request.videos else ''}</td>"
            f'<td class="num">${c.cost_usd:.3f}</td>'
            f"<td>{e(c.requester or '—')}</td>"
            f"<td>{e(c.platform)}</td>"
            f"<td>{e(_when(c.created_at))}</td>"
            f'<td class="num">{e(_seconds(c.elapsed_s))}</td>'
            "</tr>"
        )
    table = (
        "<table><thead><tr><th></th><th>theme</th><th>status</th><th>products</th>"
        "<th>cost</th><th>requester</th><th>from</th><th>created</th><th>took</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">No campaigns yet.</p>'
    )
    return (
        f'<h1>Campaigns</h1><p class="muted">{len(campaigns)} newest first;'
        f" these links work until {e(_when(exp))}.</p>{table}"
    )


def render_campaign(campaign: Campaign, link: Link, exp: int, now: float) -> str:
    """The /campaigns/<id> page body."""
    c = campaign
    r = c.request
    facts = [
        ("id", f"<code>{e(c.id)}</code>"),
        ("status", badge(c.status.value)),
        ("cost", f"${c.cost_usd:.3f}"),
        ("requester", e(c.requester or "—")),
        ("from", e(c.platform)),
        ("created", e(_when(c.created_at))),
        ("took", e(_seconds(c.elapsed_s))),
        ("executor", e(c.executor)),
        ("generator", e(c.generator)),
        ("products", f"{r.products}{' with videos' if r.videos else ''}"),
        ("style", e(r.style.value)),
        ("audience", e(r.audience or "—")),
        ("seed", e(r.seed if r.seed is not None else "derived")),
    ]
    # No link back to the list: a campaign's link (e.g. from a chat) opens that campaign only.
    parts = [
        f"<h1>{e(r.theme)}</h1>",
        '<div class="facts">'
        + "".join(f"<div><span>{name}</span>{value}</div>" for name, value in facts)
        + "</div>",
    ]
    if c.error:
        parts.append(f'<p class="error">{e(c.error)}</p>')
    parts.append("<h2>Contact sheet</h2>")
    if c.contact_sheet:
        parts.append(
            f'<img class="sheet" alt="contact sheet"'
            f' src="{e(link(_file_path(c.id, c.contact_sheet)))}">'
        )
    else:
        parts.append('<p class="muted">No contact sheet (yet).</p>')
    if c.reel:
        parts.append("<h2>Reel</h2>")
        parts.append(
            f'<video class="sheet" controls preload="metadata" playsinline'
            f' src="{e(link(_file_path(c.id, c.reel)))}"></video>'
        )
    parts.append("<h2>Products</h2>")
    parts.append(
        '<div class="grid">' + "".join(_product_card(c.id, p, link) for p in c.products) + "</div>"
    )
    parts.append("<h2>Timeline</h2>")
    parts.append(_timeline(c, now))
    parts.append("<h2>Steps</h2>")
    parts.append(_steps_table(c))
    parts.append(f'<p class="muted">This link works until {e(_when(exp))}.</p>')
    return "".join(parts)


def _product_card(campaign_id: str, product: Product, link: Link) -> str:
    plan = product.plan
    image = product.output(StepName.IMAGE)
    video = product.output(StepName.VIDEO)
    media = (
        f'<img alt="{e(plan.name)}" src="{e(link(_file_path(campaign_id, image)))}">'
        if image
        else '<div class="missing">no image</div>'
    )
    if video:
        poster = f' poster="{e(link(_file_path(campaign_id, image)))}"' if image else ""
        media += (
            f'<video controls preload="metadata" muted playsinline{poster}'
            f' src="{e(link(_file_path(campaign_id, video)))}"></video>'
        )
    elif product.step(StepName.VIDEO) is not None:
        media += '<div class="missing">no video</div>'
    error = product.error()
    return (
        '<div class="card">'
        f"{media}"
        f"<h3>{plan.index + 1}. {e(plan.name)}{e(_attempt(product))}"
        f" {badge(product.status.value)}</h3>"
        f'<div class="muted">{e(plan.product_type)}</div>'
        f'<p class="tagline">{e(plan.tagline)}</p>'
        + (f'<p class="error">{e(error)}</p>' if error else "")
        + "<details><summary>Plan</summary>"
        f"<p><b>Image prompt</b><br>{e(plan.image_prompt)}</p>"
        f"<p><b>Video prompt</b><br>{e(plan.video_prompt)}</p></details>"
        "</div>"
    )


def _attempt(product: Product) -> str:
    """' (reroll of 2)' for an attempt made by a button, '' for an original product."""
    if product.action is None or product.attempt_of is None:
        return ""
    return f" ({product.action.value} of {product.attempt_of + 1})"


def _timeline(campaign: Campaign, now: float) -> str:
    steps = [(p, s) for p in campaign.products for s in p.steps if s.started_at is not None]
    if not steps:
        return '<p class="muted">No step has started.</p>'
    starts = [s.started_at for _, s in steps if s.started_at is not None]
    t0 = min([campaign.started_at or min(starts), *starts])
    ends = [s.finished_at or now for _, s in steps]
    t1 = max([*ends, campaign.finished_at or t0])
    span = max(t1 - t0, 1e-3)
    rows = []
    for product, step in steps:
        assert step.started_at is not None
        end = step.finished_at or now
        left = (step.started_at - t0) / span * 100
        width = max((end - step.started_at) / span * 100, 0.3)
        colour = (
            KIND_COLOURS.get(step.name.value, "#1a7f37")
            if step.status is StepStatus.SUCCEEDED
            else STATUS_COLOURS.get(step.status.value, "#6e7781")
        )
        label = f"{product.plan.index + 1}. {step.name.value}"
        title = f"{label}: {step.status.value}, {_seconds(end - step.started_at)}"
        rows.append(
            f'<div class="tl-row"><div class="tl-label" title="{e(product.plan.name)}">'
            f"{e(label)} · {e(_short(product.plan.name, 14))}</div>"
            f'<div class="tl-track"><div class="tl-bar" title="{e(title)}" style="left:'
            f'{left:.2f}%;width:{width:.2f}%;background:{colour}"></div></div></div>'
        )
    axis = (
        '<div class="tl-axis"><span>0 s</span>'
        f"<span>{e(_seconds(span / 2))}</span><span>{e(_seconds(span))}</span></div>"
    )
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{e(name)}</span>'
        for name, colour in (
            ("image", KIND_COLOURS["image"]),
            ("video", KIND_COLOURS["video"]),
            ("failed", STATUS_COLOURS["failed"]),
            ("canceled / skipped", STATUS_COLOURS["canceled"]),
            ("running", STATUS_COLOURS["running"]),
        )
    )
    return f'<div class="timeline">{"".join(rows)}{axis}<div class="tl-legend">{legend}</div></div>'


def _steps_table(campaign: Campaign) -> str:
    t0 = campaign.started_at or campaign.created_at
    rows = []
    for product in campaign.products:
        for step in product.steps:
            rows.append(_step_row(product, step, t0))
    return (
        "<table><thead><tr><th>product</th><th>step</th><th>status</th><th>tries</th>"
        "<th>start</th><th>took</th><th>cost</th><th>compute</th><th>worker</th>"
        "<th>model</th><th>prediction</th><th>error</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _step_row(product: Product, step: StepRecord, t0: float) -> str:
    took = (
        step.finished_at - step.started_at
        if step.started_at is not None and step.finished_at is not None
        else None
    )
    start = f"+{step.started_at - t0:.1f} s" if step.started_at is not None else "—"
    worker = step.worker or "—"
    return (
        "<tr>"
        f"<td>{product.plan.index + 1}. {e(_short(product.plan.name, 28))}</td>"
        f"<td>{e(step.name.value)}</td>"
        f"<td>{badge(step.status.value)}</td>"
        f'<td class="num">{step.attempts}</td>'
        f'<td class="num">{e(start)}</td>'
        f'<td class="num">{e(_seconds(took))}</td>'
        f'<td class="num">${step.cost_usd:.3f}</td>'
        f'<td class="num">{e(_seconds(step.predict_time_s))}</td>'
        f'<td title="{e(worker)}"><code>{e(_short(worker, 12))}</code></td>'
        f"<td>{e(step.model or '—')}</td>"
        f"<td><code>{e(step.provider_id or '—')}</code></td>"
        f'<td class="error">{e(step.error or "")}</td>'
        "</tr>"
    )


def _file_path(campaign_id: str, recorded: str | None) -> str:
    return f"/files/{campaign_id}/{Path(recorded or '').name}"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
