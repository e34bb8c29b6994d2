"""One handler per CLI command, and the table `dispatch` picks them from.

The handlers only translate: arguments in, a use case of the service, output
and an exit code out. The service comes from the `build` bot.py hands over,
so nothing here knows which adapters it runs on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console

from bot.cli import console
from bot.cli.exits import EXIT_OK
from bot.cli.export import export_zip
from bot.cli.follow import Start, follow, print_estimate
from bot.cli.parser import model_flags
from bot.cli.resume import resume
from bot.cli.usage import usage
from bot.signals import StopSignals
from core import uploads
from core.errors import InvalidRequest
from core.request import parse_request
from core.service import CampaignService
from core.store_ports import SpendLedger

if TYPE_CHECKING:  # the settings (and the adapters' sections) load when main reads them
    from bot.settings import AppSettings

DEMO_REQUEST = 'theme:"retro cats" products:4 videos:yes style:neon audience:"indie gamers"'
RUNS_CAMPAIGNS = ("run", "demo", "retry", "reroll", "animate", "resume", "slack", "discord")


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
        settings: AppSettings,
        *,
        run_steps: bool = True,
        models: Mapping[str, str | None] | None = None,
        hand_over: bool = False,
    ) -> AbstractAsyncContextManager[Built]: ...


@dataclass(frozen=True)
class Context:
    """One command's inputs: its arguments, settings, the builder and where output goes."""

    args: argparse.Namespace
    settings: AppSettings
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
    request = parse_request(text, max_products=ctx.settings.core.max_products)
    async with ctx.build(ctx.settings, models=model_flags(ctx.args)) as app:
        service = app.service
        print_estimate(service, request, ctx.args.json)
        return await _follow(ctx, service, lambda sinks: service.submit(request, sinks))


async def retry(ctx: Context) -> int:
    """`retry ID`: re-run a campaign's failed or canceled steps and follow it."""
    async with ctx.build(ctx.settings, models=model_flags(ctx.args)) as app:
        service = app.service
        return await _follow(ctx, service, lambda sinks: service.retry(ctx.args.id, sinks))


async def reroll(ctx: Context) -> int:
    """`reroll ID N`: product N again with a new seed, as a new attempt; follow it."""
    async with ctx.build(ctx.settings) as app:
        service = app.service
        start = functools.partial(service.reroll, ctx.args.id, ctx.args.product)
        return await _follow(ctx, service, start)


async def animate(ctx: Context) -> int:
    """`animate IMAGE | ID [N]`: a video of an image file (a new one-product campaign),
    of product N, or of every product of a campaign that has none yet; follow it."""
    target, number, prompt = ctx.args.target, ctx.args.product, ctx.args.prompt
    path = Path(target)
    data = await asyncio.to_thread(_read_image, path)
    if data is not None and number is not None:
        raise InvalidRequest("product", "is not taken with an image file", "IMAGE or ID [N]")
    async with ctx.build(ctx.settings) as app:
        service = app.service
        if data is not None:
            start: Start = functools.partial(
                service.animate_image, data, path.name, prompt, requester="cli"
            )
        else:
            start = functools.partial(service.animate, target, number, prompt)
        return await _follow(ctx, service, start)


def _read_image(path: Path) -> bytes | None:
    """The file's bytes (None if there is no such file: then it names a campaign)."""
    if not path.is_file():
        return None
    uploads.check_size(path.stat().st_size)  # refused before it is read
    return path.read_bytes()


async def _follow(ctx: Context, service: CampaignService, start: Start) -> int:
    return await follow(
        service,
        start,
        as_json=ctx.args.json,
        out=ctx.out,
        interval_s=ctx.settings.core.progress_interval_s,
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


async def export(ctx: Context) -> int:
    """`export ID [--out FILE]`: the campaign's files and campaign.json in one zip."""
    async with ctx.build(ctx.settings, run_steps=False) as app:
        campaign = await app.service.get(ctx.args.id)
    out = ctx.args.out or Path(f"campaign-{campaign.id}.zip")
    folder = ctx.settings.core.data_dir / "campaigns" / campaign.id
    done = await asyncio.to_thread(export_zip, campaign, console.details(campaign), folder, out)
    if ctx.args.json:
        print(json.dumps({"zip": str(done.path), "files": done.files, "skipped": done.skipped}))
    else:
        ctx.out.print(f"wrote {done.path} ({len(done.files)} files)")
        for stored in done.skipped:
            ctx.out.print(f"[yellow]skipped (missing or outside the campaign folder):[/] {stored}")
    return EXIT_OK


async def spend(ctx: Context) -> int:
    """`usage [--days N]`: spend per user, channel and server."""
    async with ctx.build(ctx.settings, run_steps=False) as app:
        return await usage(app.store, as_json=ctx.args.json, out=ctx.out, days=ctx.args.days)


COMMANDS: dict[str, Command] = {
    "run": run_new,
    "demo": run_new,
    "retry": retry,
    "reroll": reroll,
    "animate": animate,
    "export": export,
    "resume": resume_orphans,
    "history": history,
    "show": show,
    "cancel": cancel,
    "usage": spend,
}


async def dispatch(
    args: argparse.Namespace,
    settings: AppSettings,
    build: Build,
    front_ends: Mapping[str, Command],
) -> int:
    """Run one command; those that run campaigns do it under StopSignals."""
    command = {**COMMANDS, **front_ends}[args.command]
    runs = args.command in RUNS_CAMPAIGNS
    # Through the shutdown: a second signal exits at once.
    with StopSignals() if runs else contextlib.nullcontext() as stop:
        return await command(Context(args, settings, build, Console(), stop))
