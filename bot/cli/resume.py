"""`resume [--wait]`: take over what stopped processes left, say what is held elsewhere."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from bot.cli import console
from bot.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from bot.signals import StopSignals
from core.lease import Held
from core.model import Campaign, CampaignStatus
from core.service import CampaignService

MIN_WAIT_STEP_S = 0.2
CHECKS_PER_LEASE = 5  # resume --wait looks this often per lease (a dead holder is seen at once)


async def resume(
    service: CampaignService, *, as_json: bool, wait: bool, out: Console, stop: StopSignals
) -> int:
    """Take over every orphan (of any front end), say what is held elsewhere, finish them.

    With `wait`, the campaigns a live process holds are checked a few times a
    lease until each has finished there or been let go (its lease expired, its
    process is gone, or it handed them over) and resumed here. That lasts as
    long as their holder runs them; a signal ends the wait. A signal also hands
    the campaigns resumed here over again (nothing is cancelled). Reels that
    stopped processes owed are made here; it returns once every reel is made.
    """
    report = await service.resume_orphans()
    resumed, reels = list(report.resumed), list(report.reels)
    held = [h for h in report.held if h.campaign.id not in {c.id for c in resumed}]
    nothing_to_do = not resumed and not held and not reels
    elsewhere: list[Campaign] = []  # held ones that ended in their own process
    if not as_json:
        if reels:
            out.print(f"making the reel of {len(reels)} finished campaign(s), left owed")
        if resumed or held or not reels:  # else: no "nothing to resume"
            _print_found(out, resumed, held, wait=wait)
    if wait:
        held = await _wait_for_held(
            service, held, resumed, elsewhere, out=None if as_json else out, stop=stop
        )
    interrupted = stop.signal
    if interrupted is None and (resumed or reels):
        ids = [c.id for c in (*resumed, *reels)]
        interrupted = await stop.until(asyncio.gather(*(_to_the_reel(service, i) for i in ids)))
    if interrupted is not None:
        await service.stop_campaigns(hand_over=True)  # nothing cancelled: the next resume goes on
    finished = [await service.get(c.id) for c in resumed]
    reeled = [await service.get(c.id) for c in reels]
    if as_json:
        data = _resume_json(finished, held, elsewhere, nothing_to_do)
        print(json.dumps({**data, "reels": [console.summary(c) for c in reeled]}, indent=2))
    else:
        for campaign in finished:
            out.print(console.files_table(campaign))
        for campaign in reeled:
            out.print(console.inert(f"{campaign.id}: reel {campaign.reel or 'not made'}"))
    _say_handed_over([c.id for c in finished if not c.status.done])
    if interrupted is not None:
        return EXIT_INTERRUPTED
    failed = any(c.status in (CampaignStatus.FAILED, CampaignStatus.CANCELED) for c in finished)
    return EXIT_FAILED if failed else EXIT_OK


async def _to_the_reel(service: CampaignService, campaign_id: str) -> None:
    """Wait for a campaign to finish here, and for its reel."""
    await service.wait(campaign_id)
    await service.wait_reel(campaign_id)


def _say_handed_over(left: list[str]) -> None:
    if left:
        print(
            f"stopped: campaign(s) {' '.join(left)} handed over;"
            ' run "python bot.py resume" to finish them',
            file=sys.stderr,
            flush=True,
        )


async def _wait_for_held(
    service: CampaignService,
    held: list[Held],
    resumed: list[Campaign],
    elsewhere: list[Campaign],
    *,
    out: Console | None,
    stop: StopSignals,
) -> list[Held]:
    """`resume --wait`: watch held campaigns until none is; returns those still held.

    Each is resumed here (appended to `resumed`) once its holder lets it go,
    or noted in `elsewhere` once it ended in its own process. Campaigns that
    live processes start meanwhile are not waited for. Ends early on a signal.
    """
    watching = {h.campaign.id for h in held}
    said_at = -service.config.settings.lease_s
    while held and not stop.requested:
        if out is not None and time.monotonic() - said_at >= service.config.settings.lease_s:
            out.print(_waiting_line(held))  # about once a lease
            said_at = time.monotonic()
        step = max(MIN_WAIT_STEP_S, min(h.free_in_s for h in held) + 0.1)
        if await stop.sleep(min(service.config.settings.lease_s / CHECKS_PER_LEASE, step)):
            break
        report = await service.resume_orphans()
        resumed += report.resumed
        taken = {c.id for c in report.resumed}
        still = {h.campaign.id: h for h in report.held if h.campaign.id in watching - taken}
        ended = [h.campaign.id for h in held if h.campaign.id not in still.keys() | taken]
        gone = [await service.get(campaign_id) for campaign_id in ended]
        elsewhere += gone
        if out is not None:
            for campaign in report.resumed:
                out.print(f"resuming {_campaign_line(campaign)}")
            for campaign in gone:
                out.print(f"{campaign.id} is {campaign.status.value} in its own process")
        held = list(still.values())
    return held


def _campaign_line(campaign: Campaign) -> str:
    """'abc12345 from slack: “retro cats”, 3 products' (user text escaped for rich)."""
    theme = escape(console.inert(campaign.request.theme).plain)
    return (
        f"{campaign.id} from {campaign.platform}: “{theme}”, {campaign.request.products} product(s)"
    )


def _held_line(held: Held) -> str:
    return (
        f"{_campaign_line(held.campaign)}; run by {held.owner}, a live process"
        f" (its lease expires in {held.free_in_s:.0f}s unless it beats again)"
    )


def _print_found(out: Console, resumed: list[Campaign], held: list[Held], *, wait: bool) -> None:
    """What `resume` found: campaigns it takes over, campaigns live processes still run."""
    if not resumed and not held:
        out.print("nothing to resume")
        return
    if resumed:
        out.print(f"resuming {len(resumed)} campaign(s):")
    for campaign in resumed:
        out.print(f"  {_campaign_line(campaign)}")
    if held:
        out.print(f"{len(held)} campaign(s) still held by a live process:")
    for item in held:
        out.print(f"  {_held_line(item)}")
    if held and not wait:
        out.print("[dim]`python bot.py resume --wait` takes them over once they are let go[/dim]")


def _waiting_line(held: list[Held]) -> str:
    first = min(held, key=lambda h: h.free_in_s)
    return (
        f"{time.strftime('%H:%M:%S')} waiting for {len(held)} held campaign(s):"
        f" {' '.join(h.campaign.id for h in held)}; {first.campaign.id}'s holder"
        f" {first.owner} is alive (lease expires in {first.free_in_s:.0f}s unless it beats)"
    )


def _resume_json(
    finished: list[Campaign], held: list[Held], elsewhere: list[Campaign], nothing_to_do: bool
) -> dict[str, Any]:
    """`resume --json`: what was resumed (and how it ended), what is still held elsewhere."""
    return {
        "resumed": [{**console.summary(c), "platform": c.platform} for c in finished],
        "held": [
            {
                "id": h.campaign.id,
                "owner": h.owner,
                "free_in_s": round(h.free_in_s, 1),
                "platform": h.campaign.platform,
            }
            for h in held
        ],
        "finished_elsewhere": [{**console.summary(c), "platform": c.platform} for c in elsewhere],
        "nothing_to_do": nothing_to_do,
    }
