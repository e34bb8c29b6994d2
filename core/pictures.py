"""A finished campaign's pictures: what they show, and rendering them off the event loop.

The contact sheet (every current product, failed and canceled ones marked,
videos badged, the campaign id and cost on its title bar) and the timeline (a
row per product and attempt, a bar per step that ran) are drawn by picklable
renderers that bot.py injects (adapters/pictures); they run on the
executor's CPU pool, never on the event loop. `CampaignPictures` renders the
sheet early, once the images are done, and both at finalize in one pool
call, before CAMPAIGN_FINISHED goes out, so the summary carries them. The
reel is not part of finalize: it follows the summary (core/reel.py), with
renderers of its own (`ReelFns`). A picture that fails is logged and left
out; the outcome never changes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.model import Campaign, Product, StepName, StepStatus
from core.ports import Executor

log = logging.getLogger(__name__)

SheetFn = Callable[..., str]
"""`sheet(items, out_path, *, title, subtitle, base=None) -> out_path`: picklable renderer
of the contact sheet; `base` is a sheet it rendered earlier from the same items (only
the title bar is drawn again)."""
TimelineFn = Callable[..., str]
"""`timeline(panels, out_path, *, title, axis_label) -> out_path`: picklable renderer."""
SheetItem = tuple[str, str | None, str, bool]
"""(product name, image path or None, status word, has a video)."""
SheetItems = list[SheetItem]
Render = functools.partial[str]
"""One picture's renderer with its arguments, ready for the CPU pool."""
Price = Callable[[StepName, str | None], float]
"""What a step of this kind and model costs (the generator's price table)."""
Bar = tuple[str, str, float, float, str]
"""A timeline bar: (row label, kind, start s, end s, status word)."""


@dataclass(frozen=True)
class ReelFns:
    """The reel's picklable renderers (ffmpeg): its parts one at a time, then the join.

    `card(folder, *, title, subtitle, seconds) -> part`; `clip(clip_path, folder, *,
    caption, max_s) -> part` (letterboxed to the reel's frame, captioned, cut to
    `max_s`); `join(parts, out_path) -> out_path` (a stream copy). A part is a file in
    `folder`, named after what it was made from (made again only when that changed).
    """

    card: Callable[..., str]
    clip: Callable[..., str]
    join: Callable[..., str]


@dataclass(frozen=True)
class Pictures:
    """The picklable renderers of a finished campaign's pictures (bot.py injects them)."""

    sheet: SheetFn
    timeline: TimelineFn | None = None
    reel: ReelFns | None = None


Renderers = Pictures | SheetFn
"""What the service takes as `sheet`: the bundle, or a bare contact-sheet renderer
(then the sheet alone is rendered, no timeline and no reel)."""


def as_pictures(renderers: Renderers) -> Pictures:
    """The bundle, whichever form was given."""
    return renderers if isinstance(renderers, Pictures) else Pictures(renderers)


@dataclass(frozen=True)
class Rendered:
    """The pictures finalize stores (None: not made, or failed)."""

    sheet: str | None = None
    timeline: str | None = None


class CampaignPictures:
    """One campaign's pictures: the early sheet, then everything at finalize."""

    def __init__(
        self, renderers: Pictures, executor: Executor, folder: Path, price: Price | None = None
    ) -> None:
        self.renderers = renderers
        self.executor = executor
        self.folder = folder
        self.price = price  # what a step costs once it succeeds: the early sheet's cost
        self._early: tuple[SheetItems, str, str | None] | None = None  # the early sheet

    async def finish(self, campaign: Campaign) -> Rendered:
        """Sheet and timeline in one CPU-pool call (one worker's turn); a failed one is None."""
        jobs = {
            "contact sheet": self._sheet_job(campaign),
            "timeline": self._timeline_job(campaign),
        }
        todo = [(what, job) for what, job in jobs.items() if isinstance(job, functools.partial)]
        done: dict[str, str | None] = {
            what: job if isinstance(job, str) else None for what, job in jobs.items()
        }
        if todo:
            try:
                results = await self.executor.run_cpu(render_each, [j for _, j in todo])
            except Exception as exc:  # the pool itself failed: no pictures, same outcome
                results = [(None, f"{type(exc).__name__}: {exc}")] * len(todo)
            for (what, _), (path, failure) in zip(todo, results, strict=True):
                if failure is not None:
                    log.warning("campaign %s: no %s: %s", campaign.id, what, failure)
                done[what] = path
        return Rendered(done["contact sheet"], done["timeline"])

    def _sheet_job(self, campaign: Campaign) -> Render | str | None:
        """The early sheet if nothing on it changed, else the render of a new one.

        When only the title bar changed (the cost of the videos) the early
        sheet's cells are kept: the renderer redraws the bar over it.
        """
        items, subtitle = sheet_items(campaign), _subtitle(campaign)
        early = self._early
        if early is None or early[2] is None or early[0] != items:
            return self._sheet_render(campaign, items, subtitle)
        if early[1] == subtitle:
            return early[2]
        return self._sheet_render(campaign, items, subtitle, base=early[2])

    def _sheet_render(
        self, campaign: Campaign, items: SheetItems, subtitle: str, base: str | None = None
    ) -> Render | None:
        if not any(image for _, image, _, _ in items):  # nothing but placeholders
            return None
        out = str(self.folder / "contact-sheet.png")
        more = {"base": base} if base else {}
        return functools.partial(
            self.renderers.sheet,
            items,
            out,
            title=campaign.request.theme,
            subtitle=subtitle,
            **more,
        )

    async def early_sheet(self, campaign: Campaign) -> None:
        """Render the contact sheet once every image is done, while the videos still run.

        It shows what the campaign will look like if the steps still running
        succeed: a video mark for every video under way, and the cost they
        will add at their price. When they do, `finish` keeps it as it is
        (no pool call for the sheet); when only the cost differs (a model
        priced per second), it redraws just the title bar.
        """
        expected = campaign.cost_usd + sum(
            self.price(step.name, step.model) if self.price else 0.0
            for product in campaign.current()
            for step in product.steps
            if not step.status.done
        )
        items, subtitle = sheet_items(campaign, expect=True), _subtitle(campaign, expected)
        render = self._sheet_render(campaign, items, subtitle)
        if render is None:
            self._early = (items, subtitle, None)
            return
        try:
            [(path, failure)] = await self.executor.run_cpu(render_each, [render])
        except Exception as exc:  # the pool itself failed: finalize tries again
            path, failure = None, f"{type(exc).__name__}: {exc}"
        if failure is not None:
            log.warning("campaign %s: no early contact sheet: %s", campaign.id, failure)
        self._early = (items, subtitle, path)

    def _timeline_job(self, campaign: Campaign) -> Render | None:
        """One row per product, a bar per step that ran, from the stored step times."""
        fn, bars = self.renderers.timeline, timeline_bars(campaign)
        if fn is None or not bars:
            return None
        out = str(self.folder / "timeline.png")
        title = f"{campaign.request.theme} · campaign {campaign.id} · ${campaign.cost_usd:.3f}"
        return functools.partial(
            fn,
            [(f"{len(campaign.current())} products", bars)],
            out,
            title=title,
            axis_label="seconds since the campaign started",
        )


def render_each(jobs: Sequence[Callable[[], str]]) -> list[tuple[str | None, str | None]]:
    """Runs in a CPU worker: each render in turn, as (path, None) or (None, what went wrong).

    A failure is caught here, per picture, and comes back as text (an
    exception from a renderer may not pickle), so one never stops the others.
    """
    out: list[tuple[str | None, str | None]] = []
    for job in jobs:
        try:
            out.append((job(), None))
        except Exception as exc:
            out.append((None, f"{type(exc).__name__}: {exc}"))
    return out


def sheet_items(campaign: Campaign, *, expect: bool = False) -> SheetItems:
    """Every current product: name, image (or None), what became of it, whether it has a video.

    With `expect`, steps still pending or running count as succeeding (the
    early sheet's guess, checked at finalize). A product whose image exists
    but whose video failed or was canceled is marked "video failed" (or
    "video canceled"), not as if it had no picture.
    """
    items: SheetItems = []
    for product in campaign.current():
        steps = [
            s.evolve(status=StepStatus.SUCCEEDED) if expect and not s.status.done else s
            for s in product.steps
        ]
        guess = Product(product.plan, tuple(steps), product.attempt_of, product.action)
        image, status = product.output(StepName.IMAGE), guess.status
        word = status.value
        if image is not None and status in (StepStatus.FAILED, StepStatus.CANCELED):
            word = f"video {status.value}"
        video = guess.step(StepName.VIDEO)
        has_video = video is not None and video.status is StepStatus.SUCCEEDED
        items.append((product.plan.name, image, word, has_video))
    return items


def _subtitle(campaign: Campaign, cost_usd: float | None = None) -> str:
    """The sheet's second line: which campaign, what it cost (or will, for the early sheet)."""
    cost = campaign.cost_usd if cost_usd is None else cost_usd
    return f"Campaign {campaign.id} · ${cost:.3f}"


def timeline_bars(campaign: Campaign) -> list[Bar]:
    """A bar per step that ran (seconds since the campaign started), attempts on their own rows.

    The plan is a bar from the campaign's start to its first step, if there is
    a gap. Rows: the products in slot order, each slot's attempts under it.
    """
    timed = [
        (product, step)
        for product in campaign.products
        for step in product.steps
        if step.started_at is not None and step.finished_at is not None
    ]
    if not timed:
        return []
    first = min(s.started_at or 0.0 for _, s in timed)
    zero = min(campaign.started_at or first, first)
    bars: list[Bar] = []
    if first - zero > 0:
        bars.append(("plan", "plan", 0.0, first - zero, "succeeded"))
    order = sorted(campaign.products, key=lambda p: (p.slot, p.plan.index))
    for product in order:
        for step in product.steps:
            if step.started_at is None or step.finished_at is None:
                continue
            bars.append(
                (
                    _row_label(product),
                    step.name.value,
                    step.started_at - zero,
                    max(step.finished_at, step.started_at) - zero,
                    step.status.value,
                )
            )
    return bars


def _row_label(product: Product) -> str:
    """'3. Mug' for an original; '5. reroll of 3: Mug' for an attempt (the note first, so a
    long name is what gets cut). Numbers are the ones `show` and the chat posts use."""
    number = f"{product.plan.index + 1}."
    if product.action is None or product.attempt_of is None:
        return f"{number} {product.plan.name}"
    return f"{number} {product.action.value} of {product.attempt_of + 1}: {product.plan.name}"
