"""bot/gallery/render.py without a server: the Jinja2 templates escape what users typed.

Campaigns here are built in memory, so every field a person (or a provider)
controls can carry HTML: the theme, the audience, product plans, errors,
worker and model names. Nothing of it may reach the page as markup, in text
or in an attribute; the pages' own markup (badges, cards) is not escaped twice.
"""

from __future__ import annotations

import re
import subprocess
import sys
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot.gallery import render
from core.model import (
    Action,
    Campaign,
    CampaignStatus,
    Product,
    ProductPlan,
    SlackOrigin,
    StepName,
    StepRecord,
    StepStatus,
)
from core.request import CampaignRequest

ROOT = Path(__file__).resolve().parent.parent
T = 1_700_000_000.0
SCRIPT = "<script>alert(1)</script>"
QUOTES = "\"' onmouseover=alert(2) x='"


def _link(path: str) -> str:
    return f"{path}?exp=1&sig=ab"


def _hostile() -> Campaign:
    plan = ProductPlan(
        index=0,
        name=f"{SCRIPT}{QUOTES}",
        product_type=SCRIPT,
        tagline=SCRIPT,
        image_prompt=SCRIPT,
        video_prompt=SCRIPT,
    )
    steps = (
        StepRecord(0, StepName.IMAGE, StepStatus.SUCCEEDED, 1, T + 1, T + 2, output="/d/p01.png"),
        StepRecord(
            0,
            StepName.VIDEO,
            StepStatus.FAILED,
            2,
            T + 3,
            T + 4,
            provider_id=SCRIPT,
            error=SCRIPT,
            worker=SCRIPT,
            model=SCRIPT,
        ),
    )
    request = CampaignRequest.from_options(theme=SCRIPT, products=1, videos=True, audience=QUOTES)
    return Campaign(
        id="c1",
        request=request,
        status=CampaignStatus.FAILED,
        created_at=T,
        executor="local",
        generator="offline",
        started_at=T,
        finished_at=T + 5,
        contact_sheet="/d/contact-sheet.png",
        error=SCRIPT,
        products=(Product(plan, steps, attempt_of=0, action=Action.REROLL),),
        requester=SCRIPT,
        origin=SlackOrigin(channel=SCRIPT, team=SCRIPT, ts=SCRIPT),
    )


class _Tags(HTMLParser):
    """Every start tag and its attributes' names, as a browser would read them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: set[str] = set()
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.update(name for name, _ in attrs)


def _pages() -> dict[str, str]:
    campaign = _hostile()
    return {
        "list": render.list_page([campaign], _link, int(T + 60)),
        "campaign": render.campaign_page(campaign, _link, int(T + 60), now=T + 10),
    }


def test_the_templates_autoescape() -> None:
    env = render.environment()
    assert env.autoescape is True
    assert render.escaped(SCRIPT) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert render.escaped(None) == ""


@pytest.mark.parametrize("name", ["list", "campaign"])
def test_a_script_in_a_theme_or_any_other_field_is_escaped(name: str) -> None:
    text = _pages()[name]
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    parsed = _Tags(text)
    assert "script" not in parsed.tags
    assert "onmouseover" not in parsed.attributes and "x" not in parsed.attributes
    assert '<span class="badge"' in text and "&lt;span" not in text  # own markup as is
    hrefs = re.findall(r'(?:href|src|poster)="([^"]+)"', text)
    assert hrefs and all(h.endswith("?exp=1&amp;sig=ab") for h in hrefs)


def test_the_campaign_page_escapes_inside_attributes_as_before() -> None:
    text = _pages()["campaign"]
    # html.escape's spelling of quotes, as the f-string pages had (not markupsafe's &#34;)
    assert 'alt="&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27; onmouseover=alert(2)' in text
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in text
    assert "<title>Campaign c1</title>" in text
    assert "(reroll of 1)" in text


def test_a_link_needs_neither_jinja2_nor_aiohttp() -> None:
    """The chat front ends and the CLI import bot.gallery for links: the server loads later."""
    probe = (
        "import sys; from bot.gallery import GallerySettings, make_link, valid_until;"
        " print(sorted(m for m in ('jinja2', 'aiohttp', 'bot.gallery.server') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_the_templates_ship_in_the_image() -> None:
    """Docker copies the code without what .dockerignore names: never the templates."""
    templates = sorted(p.name for p in render.TEMPLATES.glob("*.html"))
    assert templates == ["base.html", "campaign.html", "list.html", "macros.html", "message.html"]
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    parts = Path("bot/gallery/templates/base.html").parts
    paths = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    assert not [(p, i) for p in paths for i in ignored if fnmatch(p, i) or fnmatch(p, f"**/{i}")]
