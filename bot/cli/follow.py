"""`run`, `demo` and `retry`: one campaign with live progress, then its result."""

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
from core.progress import CoalescingSink
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
    finishes it. Both exit with 130.
    """
    if stop.requested:  # stopped while starting up: start nothing
        print("stopped before the campaign started", file=sys.stderr)
        return EXIT_INTERRUPTED
    live = None if as_json else console.LiveProgress(out, service.describe_executor())
    sink = CoalescingSink(live.deliver if live else _ignore, min_interval_s=interval_s)
    handed_over = False
    with live or contextlib.nullcontext():
        campaign = await start([sink])
        interrupted = await stop.until(service.wait(campaign.id))
        if interrupted is signal.SIGTERM:
            await service.stop_campaigns(hand_over=True)
            handed_over = not (await service.get(campaign.id)).status.done
        elif interrupted is not None:
            with contextlib.suppress(CampaignStateError):  # it finished meanwhile
                await service.cancel(campaign.id)
        campaign = await service.wait(campaign.id)
        await sink.aclose()
    _print_result(campaign, as_json=as_json, out=out, handed_over=handed_over)
    if interrupted is not None:
        return EXIT_INTERRUPTED
    ok = campaign.status in (CampaignStatus.SUCCEEDED, CampaignStatus.PARTIAL)
    return EXIT_OK if ok else EXIT_FAILED


def _print_result(campaign: Campaign, *, as_json: bool, out: Console, handed_over: bool) -> None:
    if as_json:
        print(json.dumps(console.summary(campaign), indent=2))
    else:
        out.print()
        out.print(console.files_table(campaign))
        out.print(f"[dim]See it again with: python bot.py show {campaign.id}[/dim]")
    if handed_over:
        print(
            f'stopped: campaign {campaign.id} handed over; run "python bot.py resume" to finish it',
            file=sys.stderr,
            flush=True,
        )


async def _ignore(_snapshot: object) -> None:
    return None
