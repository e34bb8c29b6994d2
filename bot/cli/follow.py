"""`run`, `demo` and `retry`: one campaign with live progress, then its result and its reel.

The campaign's result is printed at its last product; the reel, made after
it, follows on a line of its own, and the command exits once the reel is
written or has failed (`--json` prints one object then, with `reel_s`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from rich.console import Console

from bot.cli import console
from bot.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from bot.signals import StopSignals
from core.errors import CampaignStateError
from core.model import Campaign, CampaignStatus
from core.ports import ProgressSink
from core.progress import CoalescingSink, EventKind, ProgressEvent
from core.request import CampaignRequest
from core.service import CampaignService

Start = Callable[[Sequence[ProgressSink]], Awaitable[Campaign]]


def print_estimate(service: CampaignService, request: CampaignRequest, as_json: bool) -> None:
    """Show what a paid campaign will cost before it starts (stderr under --json)."""
    estimate = service.estimate(request)
    if estimate.cost_usd > 0:
        print(
            f"estimated cost: ${estimate.cost_usd:.3f} for {estimate.steps} steps"
            f" on {service.generator_name} (plus planning)",
            file=sys.stderr if as_json else sys.stdout,
            flush=True,
        )


async def follow(
    service: CampaignService,
    start: Start,
    *,
    as_json: bool,
    out: Console,
    interval_s: float,
    stop: StopSignals,
) -> int:
    """Start a campaign, show its progress, print the result; returns the exit code.

    Ctrl-C (SIGINT) cancels the campaign. SIGTERM hands it over: it stops here,
    nothing is cancelled at the provider, its lease is released and `resume`
    finishes it. Both exit with 130. A signal while the reel is being made
    stops the reel (`resume` makes it) and exits with 130 too.
    """
    if stop.requested:  # stopped while starting up: start nothing
        print("stopped before the campaign started", file=sys.stderr)
        return EXIT_INTERRUPTED
    live = None if as_json else console.LiveProgress(out, service.describe_executor())
    sink = CoalescingSink(live.deliver if live else _ignore, min_interval_s=interval_s)
    reel = ReelWatch(sink)
    handed_over = False
    with live or contextlib.nullcontext():
        campaign = await start([reel])
        interrupted = await stop.until(service.wait(campaign.id))
        if interrupted is signal.SIGTERM:
            await service.stop_campaigns(hand_over=True)
            handed_over = not (await service.get(campaign.id)).status.done
        elif interrupted is not None:
            with contextlib.suppress(CampaignStateError):  # it finished meanwhile
                await service.cancel(campaign.id)
        campaign = await service.wait(campaign.id)
        await sink.aclose()
    if not as_json:  # the campaign's result at once; its reel follows
        _print_table(campaign, out)
    if interrupted is None:
        interrupted = await stop.until(service.wait_reel(campaign.id))
        if interrupted is not None:  # the reel stays owed: `resume` makes it
            await service.stop_campaigns(hand_over=True)
        campaign = await service.get(campaign.id)
    _print_result(campaign, reel, as_json=as_json, out=out, handed_over=handed_over)
    if interrupted is not None:
        return EXIT_INTERRUPTED
    ok = campaign.status in (CampaignStatus.SUCCEEDED, CampaignStatus.PARTIAL)
    return EXIT_OK if ok else EXIT_FAILED


class ReelWatch:
    """The command's sink: progress to the live display; the reel's event kept aside."""

    def __init__(self, display: ProgressSink) -> None:
        self.display = display
        self.event: ProgressEvent | None = None

    async def publish(self, event: ProgressEvent) -> None:
        """Keep REEL_READY; hand everything else to the display."""
        if event.kind is EventKind.REEL_READY:
            self.event = event
        else:
            await self.display.publish(event)

    def seconds(self, campaign: Campaign) -> float | None:
        """The reel's own time: from the campaign's last product to the reel written."""
        event = self.event
        if event is None or event.output is None or campaign.finished_at is None:
            return None
        return round(max(0.0, event.at - campaign.finished_at), 3)


def _print_table(campaign: Campaign, out: Console) -> None:
    out.print()
    out.print(console.files_table(campaign))
    out.print(f"[dim]See it again with: python bot.py show {campaign.id}[/dim]")


def _print_result(
    campaign: Campaign, reel: ReelWatch, *, as_json: bool, out: Console, handed_over: bool
) -> None:
    """`--json`: the summary with `reel_s` after `elapsed_s`; else the reel's line."""
    seconds = reel.seconds(campaign)
    if as_json:
        items = list(console.summary(campaign).items())
        at = next(i for i, (key, _) in enumerate(items) if key == "elapsed_s") + 1
        print(json.dumps(dict([*items[:at], ("reel_s", seconds), *items[at:]]), indent=2))
    elif seconds is not None and campaign.reel:
        out.print(console.inert(f"reel: {campaign.reel} ({seconds:.1f} s after the last product)"))
    elif reel.event is not None and reel.event.status == "failed":
        out.print(console.inert(f"no reel: {reel.event.message}", "yellow"))
    if handed_over:
        print(
            f'stopped: campaign {campaign.id} handed over; run "python bot.py resume" to finish it',
            file=sys.stderr,
            flush=True,
        )


async def _ignore(_snapshot: object) -> None:
    return None
