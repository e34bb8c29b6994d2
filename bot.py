#!/usr/bin/env python3
"""Composition root and command line of the campaign bot.

    python bot.py run "<request>" [--json]   one campaign with live progress
    python bot.py demo [--json]               a sample campaign on the offline generator
    python bot.py history [--json]            recent campaigns
    python bot.py show ID [--json]            one campaign in full
    python bot.py cancel ID                   stop a running campaign
    python bot.py retry ID [--json]           re-run its failed or canceled steps
    python bot.py resume [--json]             finish campaigns a crashed process left running
    python bot.py slack [--port 3000] [--host 127.0.0.1] [--socket]   the Slack front end
    python bot.py discord                     the Discord front end (DISCORD_TOKEN)

This is the only module that wires adapters to the core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from adapters.downloads import shared_tls
from adapters.llm_planner import LlmPlanner
from adapters.local_executor import LocalExecutor
from adapters.offline_generator import OfflineGenerator
from adapters.ray_connect import RaySettings, open_ray_executor
from adapters.render import render_contact_sheet
from adapters.replicate_generator import ReplicateGenerator
from adapters.replicate_settings import ReplicateSettings
from adapters.replicate_webhooks import WebhookReceiver
from bot import console
from core.errors import CampaignError, ConfigError, InvalidRequest
from core.model import Campaign, CampaignStatus
from core.planner import OfflinePlanner
from core.ports import Executor, Generator, Planner, ProgressSink
from core.progress import CoalescingSink
from core.request import CampaignRequest, parse_request
from core.scheduler import Scheduler
from core.service import CampaignService, ServiceConfig
from core.settings import EXECUTORS, GENERATORS, Settings
from storage.sqlite_store import SqliteStore

DEMO_REQUEST = 'theme:"retro cats" products:4 videos:yes style:neon audience:"indie gamers"'
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

log = logging.getLogger("campaign-bot")


def make_generator(settings: Settings, models: Mapping[str, str | None] | None = None) -> Generator:
    """The generator the settings ask for; `models` overrides Replicate's per kind."""
    name = settings.generator
    if name == "auto":
        name = "replicate" if settings.replicate_api_token else "offline"
    if name == "replicate":
        if not settings.replicate_api_token:
            raise ConfigError(
                "--generator replicate needs REPLICATE_API_TOKEN (or use --generator offline)"
            )
        replicate = ReplicateSettings.from_env().with_models(models or {})
        return ReplicateGenerator(replace(replicate, api_token=settings.replicate_api_token))
    return OfflineGenerator(video_seconds=settings.video_seconds)


def make_planner(generator: Generator) -> Planner:
    """The LLM planner when Replicate generates, else the offline templates."""
    if isinstance(generator, ReplicateGenerator):
        return LlmPlanner(generator.runtime)
    return OfflinePlanner()


async def make_executor(settings: Settings, generator: Generator) -> Executor:
    """The executor the settings ask for; auto means Ray when RAY_ADDRESS is set.

    Ray missing or unreachable: one line on stderr, and the local executor.
    """
    ray = RaySettings.from_env()
    name = settings.executor
    if name == "auto":
        name = "ray" if ray.address else "local"
    if name == "ray":
        return await open_ray_executor(generator, settings.limits, ray, _warn)
    return LocalExecutor(generator, settings.limits)


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


@contextlib.asynccontextmanager
async def open_service(
    settings: Settings,
    *,
    generator: Generator | None = None,
    planner: Planner | None = None,
    run_steps: bool = True,
    models: Mapping[str, str | None] | None = None,
    webhook_listener: bool = True,
) -> AsyncIterator[CampaignService]:
    """Build store, generator, executor and service; close them all on exit.

    `run_steps=False` (commands that only read or flag campaigns) skips
    starting Ray: the local executor is never used and starts nothing.
    With REPLICATE_WEBHOOK_URL set, steps that run start the webhook listener
    (`webhook_listener=False`: the caller mounts `webhooks(...)` itself).
    """
    owned = None if generator else make_generator(settings, models)  # closed here at the end
    generator = generator or owned
    assert generator is not None
    if isinstance(generator, ReplicateGenerator):
        await asyncio.to_thread(shared_tls)  # ~50 ms once: not on the first campaign's path
    if run_steps:
        executor = await make_executor(settings, generator)
    else:
        executor = LocalExecutor(generator, settings.limits)
    store = await SqliteStore.open(settings.database)
    service = CampaignService(
        store=store,
        planner=planner or make_planner(generator),
        generator=generator,
        executor=executor,
        scheduler=Scheduler(settings.limits),
        sheet=render_contact_sheet,
        config=ServiceConfig(
            data_dir=settings.data_dir,
            max_products=settings.max_products,
        ),
    )
    receiver = webhooks(generator) if run_steps and webhook_listener else None
    try:
        async with contextlib.AsyncExitStack() as stack:
            if receiver is not None:
                await stack.enter_async_context(
                    receiver.listen(*receiver.runtime.settings.listen_address())
                )
            yield service
    finally:
        await service.aclose()
        await executor.aclose()
        await store.close()
        if isinstance(owned, ReplicateGenerator):
            await owned.aclose()


def webhooks(generator: Generator) -> WebhookReceiver | None:
    """The webhook receiver when Replicate generates and REPLICATE_WEBHOOK_URL is set."""
    if isinstance(generator, ReplicateGenerator) and generator.settings.webhook_url:
        return WebhookReceiver(generator.runtime)
    return None


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, help="SQLite file (env CAMPAIGN_DB)")
    common.add_argument("--data-dir", type=Path, help="output folder (env CAMPAIGN_DATA_DIR)")
    common.add_argument("--executor", choices=EXECUTORS, help="env CAMPAIGN_EXECUTOR")
    common.add_argument("--generator", choices=GENERATORS, help="env CAMPAIGN_GENERATOR")
    common.add_argument("--json", action="store_true", help="print JSON on stdout")
    common.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    parser = argparse.ArgumentParser(prog="bot.py", description="Campaign bot", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="run one campaign")
    run.add_argument("request", help="e.g. 'theme:\"retro cats\" products:5 videos:yes'")
    _model_options(run)
    sub.add_parser("demo", parents=[common], help="run a sample campaign offline")
    history = sub.add_parser("history", parents=[common], help="list recent campaigns")
    history.add_argument("--limit", type=int, default=20)
    for name, text in (
        ("show", "show one campaign"),
        ("cancel", "cancel a campaign"),
        ("retry", "re-run failed or canceled steps"),
    ):
        command = sub.add_parser(name, parents=[common], help=text)
        command.add_argument("id")
        if name == "retry":
            _model_options(command)
    sub.add_parser("resume", parents=[common], help="finish campaigns a stopped process left")
    slack = sub.add_parser("slack", parents=[common], help="serve the Slack front end")
    slack.add_argument("--port", type=int, default=3000, help="HTTP port (path /slack/events)")
    slack.add_argument("--host", default="127.0.0.1", help="address to bind in HTTP mode")
    slack.add_argument("--socket", action="store_true", help="Socket Mode (SLACK_APP_TOKEN)")
    sub.add_parser("discord", parents=[common], help="run the Discord front end")
    return parser


def _model_options(command: argparse.ArgumentParser) -> None:
    for kind in ("text", "image", "video"):
        command.add_argument(
            f"--{kind}-model", help=f"Replicate {kind} model, owner/name[:version]"
        )


def model_flags(args: argparse.Namespace) -> dict[str, str | None]:
    """The --text-model/--image-model/--video-model options given."""
    return {kind: getattr(args, f"{kind}_model", None) for kind in ("text", "image", "video")}


def print_estimate(service: CampaignService, request: CampaignRequest, as_json: bool) -> None:
    """Show what a paid campaign will cost before it starts (stderr under --json)."""
    estimate = service.estimate(request)
    if estimate.cost_usd > 0:
        print(
            f"estimated cost: ${estimate.cost_usd:.3f} for {estimate.steps} steps"
            f" on {service.generator.name} (plus planning)",
            file=sys.stderr if as_json else sys.stdout,
            flush=True,
        )


def settings_from(args: argparse.Namespace, base: Settings) -> Settings:
    """Settings with the command line's overrides applied."""
    changes: dict[str, Any] = {}
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    if args.db:
        changes["db_path"] = args.db
    for name in ("executor", "generator"):
        if getattr(args, name):
            changes[name] = getattr(args, name)
    if args.command == "demo":
        changes["generator"] = "offline"
    return replace(base, **changes)


Start = Callable[[Sequence[ProgressSink]], Awaitable[Campaign]]


async def follow(
    service: CampaignService, start: Start, *, as_json: bool, out: Console, interval_s: float
) -> int:
    """Start a campaign, show its progress, print the result; returns the exit code."""
    live = None if as_json else console.LiveProgress(out, service.executor.describe())
    sink = CoalescingSink(live.deliver if live else _ignore, min_interval_s=interval_s)
    with live or contextlib.nullcontext():
        campaign = await start([sink])
        interrupted = await _wait_or_interrupt(service, campaign.id)
        if interrupted:
            await service.cancel(campaign.id)
        campaign = await service.wait(campaign.id)
        await sink.aclose()
    if as_json:
        print(json.dumps(console.summary(campaign), indent=2))
    else:
        out.print()
        out.print(console.files_table(campaign))
        out.print(f"[dim]See it again with: python bot.py show {campaign.id}[/dim]")
    if interrupted:
        return EXIT_INTERRUPTED
    ok = campaign.status in (CampaignStatus.SUCCEEDED, CampaignStatus.PARTIAL)
    return EXIT_OK if ok else EXIT_FAILED


async def resume(service: CampaignService, *, as_json: bool, out: Console) -> int:
    """Take over every orphaned campaign, wait for all, print their outcomes."""
    campaigns = await service.resume_orphans()
    if not as_json:
        out.print(f"resuming {len(campaigns)} campaign(s): {' '.join(c.id for c in campaigns)}")
    finished = [await service.wait(c.id) for c in campaigns]
    if as_json:
        print(json.dumps([console.summary(c) for c in finished], indent=2))
    else:
        for campaign in finished:
            out.print(console.files_table(campaign))
    failed = any(c.status in (CampaignStatus.FAILED, CampaignStatus.CANCELED) for c in finished)
    return EXIT_FAILED if failed else EXIT_OK


async def _ignore(_snapshot: object) -> None:
    return None


async def _wait_or_interrupt(service: CampaignService, campaign_id: str) -> bool:
    """Wait for the campaign; True if Ctrl-C or SIGTERM came first."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    done = asyncio.ensure_future(service.wait(campaign_id))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([done, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stopped.cancel()
    return not done.done()


async def run_slack(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the Slack front end (HTTP, or Socket Mode) until SIGINT or SIGTERM."""
    from bot import slack_app  # imported here: other commands need not load slack-bolt
    from bot.slack_settings import SlackSettings

    slack = SlackSettings.from_env()
    socket = args.socket or slack.app_token is not None
    slack.check(socket_mode=socket)
    async with open_service(settings, webhook_listener=socket) as service:
        front = slack_app.SlackFrontEnd(service, slack, max_products=settings.max_products)
        receiver = None if socket else webhooks(service.generator)
        await slack_app.serve_until_stopped(
            front,
            socket=socket,
            host=args.host,
            port=args.port,
            mount=receiver.add_to if receiver else None,
        )
    return EXIT_OK


async def run_discord(settings: Settings) -> int:
    """Run the Discord front end until SIGINT or SIGTERM."""
    from bot import discord_app  # imported here: other commands need not load discord.py
    from bot.discord_settings import DiscordSettings, endpoints

    config = DiscordSettings.from_env()
    with endpoints(config.api_base_url, config.gateway_url):
        async with open_service(settings) as service:
            bot = discord_app.CampaignBot(
                service,
                config,
                max_products=settings.max_products,
                progress_interval_s=settings.progress_interval_s,
            )
            await discord_app.serve_until_stopped(bot, config.token)
    return EXIT_OK


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run one CLI command."""
    out = Console()
    if args.command == "slack":
        return await run_slack(args, settings)
    if args.command == "discord":
        return await run_discord(settings)
    if args.command in ("run", "demo"):
        text = DEMO_REQUEST if args.command == "demo" else args.request
        request = parse_request(text, max_products=settings.max_products)
        async with open_service(settings, models=model_flags(args)) as service:
            print_estimate(service, request, args.json)
            return await follow(
                service,
                lambda sinks: service.submit(request, sinks),
                as_json=args.json,
                out=out,
                interval_s=settings.progress_interval_s,
            )
    runs = args.command in ("retry", "resume")
    async with open_service(settings, run_steps=runs, models=model_flags(args)) as service:
        if args.command == "history":
            campaigns = list(await service.history(args.limit))
            if args.json:
                print(json.dumps([console.summary(c) for c in campaigns], indent=2))
            else:
                out.print(console.history_table(campaigns))
        elif args.command == "show":
            campaign = await service.get(args.id)
            if args.json:
                print(json.dumps(console.details(campaign), indent=2))
            else:
                out.print(console.files_table(campaign))
        elif args.command == "resume":
            return await resume(service, as_json=args.json, out=out)
        elif args.command == "cancel":
            campaign = await service.cancel(args.id)
            out.print(f"campaign {campaign.id}: {campaign.status.value}")
        elif args.command == "retry":
            return await follow(
                service,
                lambda sinks: service.retry(args.id, sinks),
                as_json=args.json,
                out=out,
                interval_s=settings.progress_interval_s,
            )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, run the command, map errors to exit codes."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = settings_from(args, Settings.from_env())
        return asyncio.run(dispatch(args, settings))
    except (InvalidRequest, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CampaignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
