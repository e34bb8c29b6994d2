#!/usr/bin/env python3
"""Composition root and command line of the campaign bot.

    python bot.py run "<request>" [--json]   one campaign with live progress
    python bot.py demo [--json]               a sample campaign on the offline generator
    python bot.py history [--json]            recent campaigns
    python bot.py show ID [--json]            one campaign in full
    python bot.py cancel ID                   stop a running campaign
    python bot.py retry ID [--json]           re-run its failed or canceled steps
    python bot.py resume [--json] [--wait]    finish campaigns a stopped process left
    python bot.py slack [--port 3000] [--host 127.0.0.1] [--socket]   the Slack front end
    python bot.py discord [--sync]            the Discord front end (DISCORD_TOKEN)

This is the only module that wires adapters to the core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web
from rich.console import Console
from rich.markup import escape

from adapters.local_executor import LocalExecutor
from adapters.offline.generator import OfflineGenerator
from adapters.pictures.sheet import render_contact_sheet
from adapters.ray_exec.connect import RaySettings, open_ray_executor
from adapters.replicate_api.generator import ReplicateGenerator
from adapters.replicate_api.models import KNOWN
from adapters.replicate_api.planner import LlmPlanner
from adapters.replicate_api.settings import ReplicateSettings
from adapters.replicate_api.webhooks import WebhookReceiver
from bot.cli import console
from bot.cli.usage import usage
from bot.gallery import GallerySettings
from bot.health import (
    Check,
    add_health_routes,
    database_check,
    http_listen_address,
    project_version,
    provider_check,
    serve_http,
)
from bot.signals import StopSignals
from core import logs
from core.dotenv import env_file, load_dotenv
from core.errors import (
    CampaignError,
    CampaignStateError,
    ConfigError,
    InvalidRequest,
    QuotaExceeded,
    RequestBlocked,
)
from core.lease import Held
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
    hand_over: bool = False,
) -> AsyncIterator[CampaignService]:
    """Build store, generator, executor and service; close them all on exit.

    `run_steps=False` (commands that only read or flag campaigns) skips
    starting Ray: the local executor is never used and starts nothing.
    With REPLICATE_WEBHOOK_URL set, steps that run start the webhook listener
    (`webhook_listener=False`: the caller mounts `webhooks(...)` itself).
    On exit, campaigns still running here are cancelled, or with `hand_over`
    released for the next process (nothing is cancelled at the provider).
    """
    owned = None if generator else make_generator(settings, models)  # closed here at the end
    generator = generator or owned
    assert generator is not None
    if isinstance(generator, ReplicateGenerator):
        await generator.warm()  # clients and TLS made now, not on the first campaign's path
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
            lease_s=settings.lease_s,
            quotas=settings.quotas,
            blocklist=settings.blocklist,
            priced_models=priced_models(generator),
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
        await service.aclose(hand_over=hand_over)  # a no-op if the caller already closed it
        await executor.aclose()
        await store.close()
        if isinstance(owned, ReplicateGenerator):
            await owned.aclose()


def priced_models(generator: Generator) -> dict[str, frozenset[str]]:
    """The models Replicate's price table knows, per kind; {} for a free generator."""
    if not isinstance(generator, ReplicateGenerator):
        return {}
    kinds = ("text", "image", "video")
    return {k: frozenset(r for r, s in KNOWN.items() if s.output.value == k) for k in kinds}


def webhooks(generator: Generator) -> WebhookReceiver | None:
    """The webhook receiver when Replicate generates and REPLICATE_WEBHOOK_URL is set."""
    if isinstance(generator, ReplicateGenerator) and generator.settings.webhook_url:
        return WebhookReceiver(generator.runtime)
    return None


# Options every command takes, before or after the subcommand: (flags, argparse keywords).
GLOBAL_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--db",), {"type": Path, "help": "SQLite file (env CAMPAIGN_DB)"}),
    (("--data-dir",), {"type": Path, "help": "output folder (env CAMPAIGN_DATA_DIR)"}),
    (("--executor",), {"choices": EXECUTORS, "help": "env CAMPAIGN_EXECUTOR"}),
    (("--generator",), {"choices": GENERATORS, "help": "env CAMPAIGN_GENERATOR"}),
    (("--json",), {"action": "store_true", "help": "print JSON on stdout"}),
    (("-v", "--verbose"), {"action": "store_true", "help": "log to stderr"}),
)


def add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The GLOBAL_OPTIONS; without `defaults` an option absent here leaves the value alone.

    The main parser sets the defaults; a subcommand's copies use SUPPRESS, so
    `bot.py --json run x` is not undone by the subcommand's own (absent) --json.
    """
    extra: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    for flags, options in GLOBAL_OPTIONS:
        parser.add_argument(*flags, **options, **extra)


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse.ArgumentParser:
    """A subcommand that takes the global options too; add its own arguments to the result."""
    command = sub.add_parser(name, help=help, description=help)
    add_global_options(command, defaults=False)
    return command


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments; global options work before or after the subcommand."""
    parser = argparse.ArgumentParser(prog="bot.py", description="Campaign bot")
    parser.add_argument("--version", action="version", version=f"%(prog)s {project_version()}")
    add_global_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True)
    run = add_command(sub, "run", "run one campaign")
    run.add_argument("request", help="e.g. 'theme:\"retro cats\" products:5 videos:yes'")
    _model_options(run)
    add_command(sub, "demo", "run a sample campaign offline")
    history = add_command(sub, "history", "list recent campaigns")
    history.add_argument("--limit", type=int, default=20)
    for name, text in (
        ("show", "show one campaign"),
        ("cancel", "cancel a campaign"),
        ("retry", "re-run failed or canceled steps"),
    ):
        command = add_command(sub, name, text)
        command.add_argument("id")
        if name == "retry":
            _model_options(command)
    resume = add_command(sub, "resume", "finish campaigns a stopped process left")
    resume.add_argument(
        "--wait",
        action="store_true",
        help="also wait for campaigns a live process holds, and finish them once it lets go",
    )
    slack = add_command(sub, "slack", "serve the Slack front end")
    slack.add_argument("--port", type=int, default=3000, help="HTTP port (path /slack/events)")
    slack.add_argument("--host", default="127.0.0.1", help="address to bind in HTTP mode")
    slack.add_argument("--socket", action="store_true", help="Socket Mode (SLACK_APP_TOKEN)")
    discord = add_command(sub, "discord", "run the Discord front end")
    discord.add_argument(
        "--sync",
        action="store_true",
        help="upload the slash commands first (to DISCORD_GUILD_IDS, or globally)",
    )
    usage_cmd = add_command(sub, "usage", "spend per user, channel and server")
    usage_cmd.add_argument("--days", type=float, help="only the last N days (default: all time)")
    gallery = add_command(sub, "gallery", "serve the read-only campaign gallery")
    gallery.add_argument("--host", default="127.0.0.1", help="address to bind")
    gallery.add_argument("--port", type=int, default=8081, help="HTTP port")
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
            f" on {service.generator_name} (plus planning)",
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
RUNS_CAMPAIGNS = ("run", "demo", "retry", "resume", "slack", "discord")
MIN_WAIT_STEP_S = 0.2
CHECKS_PER_LEASE = 5  # resume --wait looks this often per lease (a dead holder is seen at once)


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
            await service.aclose(hand_over=True)
            handed_over = not (await service.get(campaign.id)).status.done
        elif interrupted is not None:
            with contextlib.suppress(CampaignStateError):  # it finished meanwhile
                await service.cancel(campaign.id)
        campaign = await service.wait(campaign.id)
        await sink.aclose()
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
    if interrupted is not None:
        return EXIT_INTERRUPTED
    ok = campaign.status in (CampaignStatus.SUCCEEDED, CampaignStatus.PARTIAL)
    return EXIT_OK if ok else EXIT_FAILED


async def resume(
    service: CampaignService, *, as_json: bool, wait: bool, out: Console, stop: StopSignals
) -> int:
    """Take over every orphan (of any front end), say what is held elsewhere, finish them.

    With `wait`, the campaigns a live process holds are checked a few times a
    lease until each has finished there or been let go (its lease expired, its
    process is gone, or it handed them over) and resumed here. That lasts as
    long as their holder runs them; a signal ends the wait. A signal also hands
    the campaigns resumed here over again (nothing is cancelled).
    """
    report = await service.resume_orphans()
    resumed = list(report.resumed)
    held = [h for h in report.held if h.campaign.id not in {c.id for c in resumed}]
    nothing_to_do = not resumed and not held
    elsewhere: list[Campaign] = []  # held ones that ended in their own process
    if not as_json:
        _print_found(out, resumed, held, wait=wait)
    if wait:
        held = await _wait_for_held(
            service, held, resumed, elsewhere, out=None if as_json else out, stop=stop
        )
    interrupted = stop.signal
    if interrupted is None and resumed:
        interrupted = await stop.until(asyncio.gather(*(service.wait(c.id) for c in resumed)))
    if interrupted is not None:
        await service.aclose(hand_over=True)  # nothing cancelled: the next resume goes on
    finished = [await service.get(c.id) for c in resumed]
    if as_json:
        print(json.dumps(_resume_json(finished, held, elsewhere, nothing_to_do), indent=2))
    else:
        for campaign in finished:
            out.print(console.files_table(campaign))
    left = [c.id for c in finished if not c.status.done]
    if left:
        print(
            f"stopped: campaign(s) {' '.join(left)} handed over;"
            ' run "python bot.py resume" to finish them',
            file=sys.stderr,
            flush=True,
        )
    if interrupted is not None:
        return EXIT_INTERRUPTED
    failed = any(c.status in (CampaignStatus.FAILED, CampaignStatus.CANCELED) for c in finished)
    return EXIT_FAILED if failed else EXIT_OK


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
    said_at = -service.config.lease_s
    while held and not stop.requested:
        if out is not None and time.monotonic() - said_at >= service.config.lease_s:
            out.print(_waiting_line(held))  # about once a lease
            said_at = time.monotonic()
        step = max(MIN_WAIT_STEP_S, min(h.free_in_s for h in held) + 0.1)
        if await stop.sleep(min(service.config.lease_s / CHECKS_PER_LEASE, step)):
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


async def _ignore(_snapshot: object) -> None:
    return None


async def run_slack(args: argparse.Namespace, settings: Settings, stop: StopSignals) -> int:
    """Serve the Slack front end (HTTP, or Socket Mode) until SIGINT or SIGTERM.

    Stopping hands the campaigns running here over to the next process.
    """
    from bot.slack_ui import (
        app as slack_app,  # imported here: other commands need not load slack-bolt
    )
    from bot.slack_ui.settings import SlackSettings

    slack = SlackSettings.from_env()
    socket = args.socket or slack.app_token is not None
    slack.check(socket_mode=socket)
    async with open_service(settings, webhook_listener=socket, hand_over=True) as service:
        front = slack_app.SlackFrontEnd(
            service, slack, max_products=settings.max_products, gallery=GallerySettings.from_env()
        )
        receiver = None if socket else webhooks(service.generator)
        checks = readiness_checks(settings, service.generator)

        def mount(app: web.Application) -> None:
            if receiver is not None:
                receiver.add_to(app)
            add_health_routes(app, checks)

        async with health_listener(checks, busy_port=None if socket else args.port):
            await slack_app.serve_until_stopped(
                front, socket=socket, host=args.host, port=args.port, mount=mount, stop=stop
            )
    return EXIT_OK


def readiness_checks(settings: Settings, generator: Generator) -> dict[str, Check]:
    """/readyz: the database takes the write lock; Replicate answers (or the offline generator)."""
    ping = None
    if isinstance(generator, ReplicateGenerator):
        ping = functools.partial(_replicate_account, generator)
    return {"database": database_check(settings.database), "provider": provider_check(ping)}


async def _replicate_account(generator: ReplicateGenerator) -> object:
    """One authenticated GET /v1/account (3 s): the token is accepted, the API answers."""
    return await generator.runtime.current().api.http.send("GET", "/v1/account", timeout_s=3.0)


def health_listener(
    checks: Mapping[str, Check], busy_port: int | None = None
) -> contextlib.AbstractAsyncContextManager[int | None]:
    """The CAMPAIGN_HTTP_PORT listener with /healthz and /readyz, or a no-op when unset."""
    address = http_listen_address()
    if address is None or address[1] == busy_port:
        return contextlib.nullcontext()
    return serve_http(lambda app: add_health_routes(app, checks), *address)


async def run_gallery(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the gallery (with /healthz, /readyz) until SIGINT or SIGTERM; prints a signed link."""
    from bot.gallery import serve_gallery

    gallery = GallerySettings.from_env()  # a bad secret or URL: exit 2 before serving
    store = await SqliteStore.open(settings.database)
    try:
        return await serve_gallery(
            store, settings, args.host, args.port, sys.stdout, gallery=gallery
        )
    finally:
        await store.close()


async def run_discord(settings: Settings, stop: StopSignals, *, sync: bool = False) -> int:
    """Run the Discord front end until SIGINT or SIGTERM; stopping hands campaigns over."""
    from bot.discord_ui import (
        app as discord_app,  # imported here: other commands need not load discord.py
    )
    from bot.discord_ui.settings import DiscordSettings, endpoints

    config = DiscordSettings.from_env()
    with endpoints(config.api_base_url, config.gateway_url):
        async with open_service(settings, hand_over=True) as service:
            bot = discord_app.CampaignBot(
                service,
                config,
                max_products=settings.max_products,
                progress_interval_s=settings.progress_interval_s,
                gallery=GallerySettings.from_env(),
                sync_commands=sync,
            )
            async with health_listener(readiness_checks(settings, service.generator)):
                await discord_app.serve_until_stopped(bot, config.token, stop=stop)
    return EXIT_OK


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run one CLI command."""
    if args.command in RUNS_CAMPAIGNS:
        with StopSignals() as stop:  # through the shutdown: a second signal exits at once
            return await run_campaigns(args, settings, stop)
    if args.command == "gallery":
        return await run_gallery(args, settings)
    out = Console()
    async with open_service(settings, run_steps=False) as service:
        if args.command == "usage":
            return await usage(service, as_json=args.json, out=out, days=args.days)
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
        elif args.command == "cancel":
            campaign = await service.cancel(args.id)
            out.print(f"campaign {campaign.id}: {campaign.status.value}")
    return EXIT_OK


async def run_campaigns(args: argparse.Namespace, settings: Settings, stop: StopSignals) -> int:
    """The commands that run campaigns: run, demo, retry, resume, slack, discord."""
    out = Console()
    if args.command == "slack":
        return await run_slack(args, settings, stop)
    if args.command == "discord":
        return await run_discord(settings, stop, sync=args.sync)
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
                stop=stop,
            )
    if args.command == "resume":
        async with open_service(settings, hand_over=True) as service:
            return await resume(service, as_json=args.json, wait=args.wait, out=out, stop=stop)
    async with open_service(settings, models=model_flags(args)) as service:
        return await follow(
            service,
            lambda sinks: service.retry(args.id, sinks),
            as_json=args.json,
            out=out,
            interval_s=settings.progress_interval_s,
            stop=stop,
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, run the command, map errors to exit codes."""
    try:
        dotenv = env_file()
        if dotenv is not None:
            load_dotenv(dotenv, os.environ)  # fills only unset variables: the environment wins
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(argv)
    logs.configure("text", verbose=args.verbose)
    try:
        settings = settings_from(args, Settings.from_env())
        logs.configure(settings.log_format, verbose=args.verbose)
        return asyncio.run(dispatch(args, settings))
    except (InvalidRequest, ConfigError, RequestBlocked, QuotaExceeded) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CampaignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
