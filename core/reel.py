"""The campaign reel: a promo of bounded length, its clips prepared as they arrive.

The reel is a title card, then the clips of the first `REEL_CLIPS` current
products that have one, in product order, each cut to `CLIP_MAX_S`: at most
`REEL_MAX_S` long, and as costly for 12 products as for 100. Each clip is
prepared (letterboxed, captioned and encoded to the reel's frame by the
injected `ReelFns`) on the executor's CPU pool as soon as its video step
succeeds, while the campaign still runs, on all CPU workers but one (`lanes`),
so the summary's pictures do not queue behind it. The campaign finishes without it:
the summary (CAMPAIGN_FINISHED) goes out at the last product, then only the
parts still missing are prepared, the join is a stream copy, and the reel
follows as its own event, REEL_READY (its path, or what went wrong).

Durability: finalize marks the reel as owed before it stores the outcome,
and the join stores its path (or, when it fails, clears the mark), fenced by
owner; while it renders it beats the campaign's lease. A process that dies in
between leaves the mark: the next `resume` renders the reel from the stored
clips (`Reels.start` again), running no step. A second run of the campaign
here (a retry, a reroll) joins its reel after the first's, so the newer is
stored last.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import LeaseLost
from core.lease import Ownership, Stop
from core.model import Campaign, StepName, StepStatus
from core.pictures import ReelFns, render_each
from core.ports import Executor, ProgressSink
from core.progress import EventKind, ProgressEvent
from core.store_ports import CampaignRecords

log = logging.getLogger(__name__)

REEL_MAX_S = 60.0
REEL_CLIPS = 12
TITLE_S = 1.5
CLIP_MAX_S = (REEL_MAX_S - TITLE_S) / REEL_CLIPS  # 4.875 s: 12 clips and the card fill 60 s
PARTS = "reel-parts"  # the prepared parts' folder, inside the campaign's
_NOT_CLIPS = (StepStatus.FAILED, StepStatus.CANCELED, StepStatus.SKIPPED)


@dataclass(frozen=True)
class Clip:
    """One product's clip as the reel shows it."""

    index: int  # the product's
    name: str  # its caption
    path: str


def reel_clips(campaign: Campaign) -> list[Clip]:
    """What a finished campaign's reel shows: the first REEL_CLIPS current products' clips."""
    clips = [
        Clip(p.plan.index, p.plan.name, path)
        for p in campaign.current()
        if (path := p.output(StepName.VIDEO)) is not None
    ]
    return clips[:REEL_CLIPS]


Part = tuple[str | None, str | None]  # (path, None) or (None, what went wrong)


class Reels:
    """This process's reels: parts being prepared, and each campaign's join after its summary."""

    def __init__(
        self,
        fns: ReelFns | None,
        executor: Executor,
        records: CampaignRecords,
        ownership: Ownership,
        folder: Callable[[str], Path],
        beat_s: float,
        lanes: int = 1,
    ) -> None:
        self.fns = fns  # None: no reels (a bare contact-sheet renderer)
        self.executor = executor
        self.records = records
        self.ownership = ownership
        self.folder = folder
        self.beat_s = beat_s
        self._parts: dict[str, dict[str, asyncio.Task[Part]]] = {}  # by campaign, then part
        # CPU workers reel work may hold at once: the others stay free for what the
        # campaigns wait on (their steps' rendering, finalize's sheet and timeline)
        self._lanes = asyncio.Semaphore(max(1, lanes))
        self._joins: dict[str, asyncio.Task[None]] = {}

    def __contains__(self, campaign_id: object) -> bool:
        return campaign_id in self._joins

    def due(self, campaign: Campaign) -> list[Clip]:
        """The clips of the reel a finished campaign owes (none: no reel)."""
        return reel_clips(campaign) if self.fns is not None else []

    def watch(self, campaign: Campaign) -> ClipWatch:
        """One run's watcher: each clip of the reel-to-be is prepared when its video succeeds."""
        return ClipWatch(self, campaign)

    def prepare(self, campaign: Campaign, clip: Clip) -> asyncio.Task[Part]:
        """Prepare a clip's part now (and the card, with the first), unless it is under way."""
        assert self.fns is not None
        fns, parts = self.fns, self._parts.setdefault(campaign.id, {})
        folder = str(self.folder(campaign.id) / PARTS)
        count = campaign.request.products
        subtitle = f"{count} product{'s' if count != 1 else ''} · {campaign.id}"
        card = functools.partial(
            fns.card, folder, title=campaign.request.theme, subtitle=subtitle, seconds=TITLE_S
        )
        self._start_part(parts, "card", card)
        job = functools.partial(fns.clip, clip.path, folder, caption=clip.name, max_s=CLIP_MAX_S)
        return self._start_part(parts, f"clip-{clip.index}", job)

    def _start_part(
        self, parts: dict[str, asyncio.Task[Part]], key: str, job: Callable[[], str]
    ) -> asyncio.Task[Part]:
        known = parts.get(key)
        if known is None or known.cancelled():
            known = parts[key] = asyncio.create_task(self._render(job))
        return known

    async def _render(self, job: Callable[[], str]) -> Part:
        """One picture on the CPU pool: (path, None), or (None, why); raises only CancelledError."""
        try:
            async with self._lanes:
                [(path, failure)] = await self.executor.run_cpu(render_each, [job])
        except Exception as exc:  # the pool itself failed
            return None, f"{type(exc).__name__}: {exc}"
        return path, failure

    def start(self, campaign: Campaign, sinks: Sequence[ProgressSink]) -> bool:
        """Make the reel a finished campaign owes, after its summary; False if it owes none.

        Its REEL_READY event goes to `sinks`. This process must own the
        campaign (the finalizing run, or a resume that claimed it).
        """
        clips = self.due(campaign)
        if not clips:
            return False
        before = self._joins.get(campaign.id)
        task = asyncio.create_task(self._join(campaign, clips, sinks, before))
        self._joins[campaign.id] = task
        task.add_done_callback(lambda done: self._joined(campaign.id, done))
        return True

    def _joined(self, campaign_id: str, task: asyncio.Task[None]) -> None:
        if self._joins.get(campaign_id) is task:  # the newest reel: its parts are on disk
            del self._joins[campaign_id]
            self._parts.pop(campaign_id, None)

    async def _join(
        self,
        campaign: Campaign,
        clips: Sequence[Clip],
        sinks: Sequence[ProgressSink],
        before: asyncio.Task[None] | None,
    ) -> None:
        if before is not None:  # an earlier reel of this campaign is stored first
            await asyncio.wait([before])
        async with self._beating(campaign.id):
            path, failure = await self._made(campaign, clips)
        status = "succeeded" if path else "failed"
        try:
            await self.records.save_reel(campaign.id, path, self.ownership.owner)
        except LeaseLost:  # a retry or a resume elsewhere owns the campaign: theirs counts
            status, path, failure = "canceled", None, "the campaign runs again elsewhere"
        except Exception as exc:  # the database: the mark stays, and resume tries again
            status, path, failure = "failed", None, f"not stored: {type(exc).__name__}: {exc}"
        if failure:
            log.warning("campaign %s: no reel: %s", campaign.id, failure)
        stored = await self.records.get(campaign.id)
        event = ProgressEvent(
            EventKind.REEL_READY,
            campaign.id,
            self.ownership.clock(),
            status=status,
            output=path,
            message=failure or "",
            campaign=stored,
        )
        for sink in sinks:
            try:
                await sink.publish(event)
            except Exception:  # one broken display must not stop the others
                log.exception("progress sink failed")

    async def _made(self, campaign: Campaign, clips: Sequence[Clip]) -> Part:
        """The parts (those prepared already, the rest now), then their join."""
        assert self.fns is not None
        made = await asyncio.gather(*(self.prepare(campaign, clip) for clip in clips))
        (card, card_failure) = await self._parts[campaign.id]["card"]
        parts = [path for path, _ in made if path is not None]
        for clip, (_, failure) in zip(clips, made, strict=True):
            if failure is not None:
                log.warning(
                    "campaign %s: clip %d not in the reel: %s", campaign.id, clip.index + 1, failure
                )
        if card is None or not parts:
            return None, card_failure or next((f for _, f in made if f), "no clip")
        out = str(self.folder(campaign.id) / "reel.mp4")
        return await self._render(functools.partial(self.fns.join, [card, *parts], out))

    @contextlib.asynccontextmanager
    async def _beating(self, campaign_id: str) -> AsyncIterator[None]:
        """Keep the campaign's lease fresh while its reel renders: no resume takes it over."""

        async def beat() -> None:
            stop = Stop()
            while True:
                if not await self.ownership.beat(campaign_id, stop):
                    return  # claimed by another run: its save is fenced off anyway
                await asyncio.sleep(self.beat_s)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait(self, campaign_id: str) -> None:
        """Return once no reel of the campaign is being made here."""
        while (task := self._joins.get(campaign_id)) is not None and not task.done():
            await asyncio.wait([task])

    def forget(self, campaign_id: str) -> None:
        """Drop the parts a run prepared that no reel will join (it was canceled or let go)."""
        if campaign_id in self._joins:
            return
        for task in self._parts.pop(campaign_id, {}).values():
            task.cancel()

    async def stop(self) -> None:
        """Stop every reel and part under way here; a reel left owed is released, for the
        next process's `resume` to make at once."""
        owed = list(self._joins)
        tasks = [*self._joins.values(), *(t for p in self._parts.values() for t in p.values())]
        self._joins.clear()
        self._parts.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for campaign_id in owed:
            with contextlib.suppress(Exception):  # its lease lapses anyway
                await self.ownership.release(campaign_id)


class ClipWatch:
    """One run's clips: each one the reel will show is prepared as soon as its video succeeds."""

    def __init__(self, reels: Reels, campaign: Campaign) -> None:
        self.reels = reels
        self.campaign = campaign  # as last announced (with its products, once planned)
        self.clipless: set[int] = set()  # products whose video did not succeed in this run

    def saw(self, event: ProgressEvent) -> None:
        """Take one of the run's events."""
        if self.reels.fns is None:
            return
        if event.campaign is not None:
            self.campaign = event.campaign
        index = event.product_index
        if event.kind is not EventKind.STEP_FINISHED or event.step is not StepName.VIDEO:
            return
        if index is None:
            return
        if event.status != StepStatus.SUCCEEDED.value or not event.output:
            self.clipless.add(index)
            return
        clip = self._wanted(index, event.output)
        if clip is not None:
            self.reels.prepare(self.campaign, clip)

    def _wanted(self, index: int, path: str) -> Clip | None:
        """The clip, if the reel will show it: fewer than REEL_CLIPS products before its
        slot may still have one (a product in doubt counts, so this never prepares more)."""
        product = next((p for p in self.campaign.products if p.plan.index == index), None)
        if product is None:
            return None
        ahead = 0
        for current in self.campaign.current():
            if current.slot == product.slot:
                return Clip(index, product.plan.name, path) if ahead < REEL_CLIPS else None
            video = current.step(StepName.VIDEO)
            if video is None or video.status in _NOT_CLIPS:
                continue
            if current.plan.index not in self.clipless:
                ahead += 1
        return None
