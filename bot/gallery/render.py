"""The gallery's HTML, from the Jinja2 templates in templates/ with autoescape on.

Every value a template prints that is not already markup (a macro's output)
is escaped by `escaped`: `html.escape(..., quote=True)`, so quotes read
&quot; and &#x27; as they always have (markupsafe would write &#34; and
&#39;), and None prints as "". Pages carry no script; links come from the
`link` the server passes (an app path -> a signed relative URL).
"""

from __future__ import annotations

import functools
import html
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from core.model import Campaign, Product, StepName, StepRecord, StepStatus

TEMPLATES = Path(__file__).with_name("templates")

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

LEGEND = (  # the timeline's key: (name, colour)
    ("image", KIND_COLOURS["image"]),
    ("video", KIND_COLOURS["video"]),
    ("failed", STATUS_COLOURS["failed"]),
    ("canceled / skipped", STATUS_COLOURS["canceled"]),
    ("running", STATUS_COLOURS["running"]),
)


@dataclass(frozen=True)
class Bar:
    """One step on the timeline; left and width in % of the campaign's span."""

    label: str  # "1. image"
    name: str  # the product's name
    title: str  # "1. image: succeeded, 2.5 s"
    left: float
    width: float
    colour: str


@dataclass(frozen=True)
class Chart:
    """The timeline: a bar per started step over `span` seconds."""

    bars: tuple[Bar, ...]
    span: float


def list_page(campaigns: Sequence[Campaign], link: Link, exp: int) -> str:
    """The whole /campaigns page."""
    return _render("list.html", title="Campaigns", campaigns=campaigns, link=link, exp=exp)


def campaign_page(campaign: Campaign, link: Link, exp: int, now: float) -> str:
    """The whole /campaigns/<id> page."""
    return _render(
        "campaign.html",
        title=f"Campaign {campaign.id}",
        campaign=campaign,
        chart=timeline_chart(campaign, now),
        link=link,
        exp=exp,
    )


def message_page(title: str, heading: str, text: str) -> str:
    """A page that only says something (the 403 and the 404)."""
    return _render("message.html", title=title, heading=heading, text=text)


def timeline_chart(campaign: Campaign, now: float) -> Chart | None:
    """Where each started step sits in time (still running ones end `now`); None if none has."""
    steps = [(p, s) for p in campaign.products for s in p.steps if s.started_at is not None]
    if not steps:
        return None
    starts = [s.started_at for _, s in steps if s.started_at is not None]
    t0 = min([campaign.started_at or min(starts), *starts])
    ends = [s.finished_at or now for _, s in steps]
    t1 = max([*ends, campaign.finished_at or t0])
    span = max(t1 - t0, 1e-3)
    bars = []
    for product, step in steps:
        assert step.started_at is not None
        end = step.finished_at or now
        colour = (
            KIND_COLOURS.get(step.name.value, "#1a7f37")
            if step.status is StepStatus.SUCCEEDED
            else STATUS_COLOURS.get(step.status.value, "#6e7781")
        )
        label = f"{product.plan.index + 1}. {step.name.value}"
        bars.append(
            Bar(
                label=label,
                name=product.plan.name,
                title=f"{label}: {step.status.value}, {seconds(end - step.started_at)}",
                left=(step.started_at - t0) / span * 100,
                width=max((end - step.started_at) / span * 100, 0.3),
                colour=colour,
            )
        )
    return Chart(tuple(bars), span)


def _render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


@functools.cache
def environment() -> Environment:
    """The templates' environment (made once): autoescape, and strict about unknown names."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=escaped,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals.update(
        steps=StepName,
        legend=LEGEND,
        status_colour=status_colour,
        file_path=file_path,
        attempt=attempt,
        done=done,
        took=took,
        start=start,
        usd=usd,
        when=when,
        seconds=seconds,
        short=short,
    )
    return env


def escaped(value: object) -> Markup:
    """Markup as it is; anything else HTML-escaped (quotes too: safe in attributes)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "#6e7781")


def file_path(campaign_id: str, recorded: str | None) -> str:
    """The app path of a recorded file: /files/<id>/<its name>."""
    return f"/files/{campaign_id}/{Path(recorded or '').name}"


def attempt(product: Product) -> str:
    """' (reroll of 2)' for an attempt made by a button, '' for an original product."""
    if product.action is None or product.attempt_of is None:
        return ""
    return f" ({product.action.value} of {product.attempt_of + 1})"


def done(campaign: Campaign) -> int:
    """How many of the campaign's products succeeded."""
    return sum(p.status is StepStatus.SUCCEEDED for p in campaign.products)


def took(step: StepRecord) -> float | None:
    if step.started_at is None or step.finished_at is None:
        return None
    return step.finished_at - step.started_at


def start(step: StepRecord, t0: float) -> str:
    """When the step started, from the campaign's start: '+1.5 s'."""
    return f"+{step.started_at - t0:.1f} s" if step.started_at is not None else "—"


def usd(amount: float) -> str:
    return f"${amount:.3f}"


def when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes} min {secs:02d} s"


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
