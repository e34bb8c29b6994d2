"""One handler per CLI command, and the table `dispatch` picks them from.

The handlers only translate: arguments in, a use case of the service, output
and an exit code out. The service comes from the `build` bot.py hands over,
so nothing here knows which adapters it runs on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console

from bot.cli import console
from bot.cli.exits import EXIT_OK
from bot.cli.follow import Start, follow, print_estimate
from bot.cli.parser import model_flags
from bot.cli.resume import resume
from bot.cli.usage import usage
from bot.signals import StopSignals
from core.ports import SpendLedger
from core.request import parse_request
from core.service import CampaignService
from core.settings import Settings

DEMO_REQUEST = 'theme:"retro cats" products:4 videos:yes style:neon audience:"indie gamers"'
RUNS_CAMPAIGNS = ("run", "demo", "retry", "resume", "slack", "discord")


class Built(Protocol):
    """What bot.py's build() yields, as far as the CLI uses it."""

    @property
    def service(self) -> CampaignService: ...

    @property
    def store(self) -> SpendLedger: ...


class Build(Protocol):
    """bot.py's build(): settings in, the wired service (and its resources) for a `with`."""

    def __call__(
        self,
        settings: Settings,
        *,
        run_steps: bool = True,
        models: Mapping[str, str | None] | None = None,
        hand_over: bool = False,
    ) -> AbstractAsyncContextManager[Built]: ...


@dataclass(frozen=True)
class Context:
    """One command's inputs: its arguments, settings, the builder and where output goes."""

    args: argparse.Namespace
    settings: Settings
    build: Build
    out: Console
    stop: StopSignals | None = None  # set for the commands in RUNS_CAMPAIGNS

    @property
    def signals(self) -> StopSignals:
        """The stop signals of a command that runs campaigns."""
        assert self.stop is not None, f"{self.args.command} is not in RUNS_CAMPAIGNS"
        return self.stop


Command = Callable[[Context], Awaitable[int]]


async def run_new(ctx: Context) -> int:
    """`run REQUEST` and `demo`: start one campaign and follow it."""
    text = DEMO_REQUEST if ctx.args.command == "demo" else ctx.args.request
    request = parse_request(text, max_products=ctx.settings.max_products)
    async with ctx.build(ctx.settings, models=model_flags(ctx.args)) as app:
        service = app.service
        print_estimate(service, request, ctx.args.json)
        return await _follow(ctx, service, lambda sinks: service.submit(request, sinks))


async def retry(ctx: Context) -> int:
    """`retry ID`: re-run a campaign's failed or canceled steps and follow it."""
    async with ctx.build(ctx.settings, models=model_flags(ctx.args)) as app:
        service = app.service
        return await _follow(ctx, service, lambda sinks: service.retry(ctx.args.id, sinks))


async def _follow(ctx: Context, service: CampaignService, start: Start) -> int:
    return await follow(
        service,
        start,
        as_json=ctx.args.json,
        out=ctx.out,
        interval_s=ctx.settings.progress_interval_s,
        stop=ctx.signals,
    )


async def resume_orphans(ctx: Context) -> int:
    """`resume [--wait]`: finish what stopped processes left; a signal hands it over again."""
    async with ctx.build(ctx.settings, hand_over=True) as app:
        return await resume(
            app.service, as_json=ctx.args.json, wait=ctx.args.wait, out=ctx.out, stop=ctx.signals
        )


async def history(ctx: Context) -> int:
    """`history [--limit N]`: recent campaigns."""
    async with ctx.build(ctx.settings, run_steps=False) as app:
        campaigns = list(await app.service.history(ctx.args.limit))
        if ctx.args.json:
            print(json.dumps([console.summary(c) for c in campaigns], indent=2))
        else:
            ctx.out.print(console.history_table(campaigns))
    return EXIT_OK


async def show(ctx: Context) -> int:
    """`show ID`: one campaign in full."""
    async with ctx.build(ctx.settings, run_steps=False) as app:
        campaign = await app.service.get(ctx.args.id)
        if ctx.args.json:
            print(json.dumps(console.details(campaign), indent=2))
        else:
            ctx.out.print(console.files_table(campaign))
    return EXIT_OK


async def cancel(ctx: Context) -> int:
    """`cancel ID`: stop a campaign, here or in the process that runs it."""
    async with ctx.build(ctx.settings, run_steps=False) as app:
        campaign = await app.service.cancel(ctx.args.id)
        ctx.out.print(f"campaign {campaign.id}: {campaign.status.value}")
    return EXIT_OK


async def spend(ctx: Context) -> int:
    """`usage [--days N]`: spend per user, channel and server."""
    async with ctx.build(ctx.settings, run_steps=False) as app:
        return await usage(app.store, as_json=ctx.args.json, out=ctx.out, days=ctx.args.days)


COMMANDS: dict[str, Command] = {
    "run": run_new,
    "demo": run_new,
    "retry": retry,
    "resume": resume_orphans,
    "history": history,
    "show": show,
    "cancel": cancel,
    "usage": spend,
}


async def dispatch(
    args: argparse.Namespace,
    settings: Settings,
    build: Build,
    front_ends: Mapping[str, Command],
) -> int:
    """Run one command; those that run campaigns do it under StopSignals."""
    command = {**COMMANDS, **front_ends}[args.command]
    runs = args.command in RUNS_CAMPAIGNS
    # Through the shutdown: a second signal exits at once.
    with StopSignals() if runs else contextlib.nullcontext() as stop:
        return await command(Context(args, settings, build, Console(), stop))
