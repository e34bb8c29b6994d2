#!/usr/bin/env python3
"""Composition root of the campaign bot: settings in, the wired service out.

    python bot.py --help       every command (docs/commands.md has them in full)

This is the only module that wires adapters to the core: `build()` makes the
service and its resources for every command, front end, test and benchmark;
the commands themselves live in bot/cli/.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.cli.exits import EXIT_OK
from bot.cli.main import main as cli_main
from bot.health import (
    Check,
    add_health_routes,
    database_check,
    provider_check,
    serve_http,
)
from core.errors import ConfigError
from core.pictures import Pictures, Renderers
from core.planner import OfflinePlanner
from core.ports import Executor, Generator, Planner
from core.scheduler import Scheduler
from core.service import CampaignService, ServiceConfig
from storage.open import Store, open_store

# Adapters and chat libraries are imported by the functions that use them, so that
# commands which only read (`--version`, `history`, `show`, ...) load none of them.
if TYPE_CHECKING:
    from aiohttp import web

    from adapters.offline.generator import OfflineGenerator
    from adapters.replicate_api.generator import ReplicateGenerator
    from adapters.replicate_api.webhooks import WebhookReceiver
    from bot.cli.commands import Command, Context
    from bot.settings import AppSettings, HttpSettings
    from core.settings import CoreSettings


def pictures() -> Pictures:
    """Contact sheet, timeline and reel renderers (Pillow, ffmpeg load when they draw)."""
    from adapters.pictures.on_demand import PICTURES

    return PICTURES


@dataclass(frozen=True)
class App:
    """What build() made: the service, its store, and the optional HTTP parts.

    `webhooks` is the Replicate webhook receiver (REPLICATE_WEBHOOK_URL set),
    `checks` the /readyz checks; the store is here for reports that read the
    ledger (`usage`), not for front ends.
    """

    service: CampaignService
    store: Store
    checks: Mapping[str, Check]
    webhooks: WebhookReceiver | None


@contextlib.asynccontextmanager
async def build(
    settings: AppSettings,
    *,
    generator: Generator | None = None,
    planner: Planner | None = None,
    sheet: Renderers | None = None,
    clock: Callable[[], float] | None = None,
    run_steps: bool = True,
    models: Mapping[str, str | None] | None = None,
    webhook_listener: bool = True,
    hand_over: bool = False,
    **config: Any,
) -> AsyncIterator[App]:
    """Store, generator, planner, executor, scheduler and service; all closed on exit.

    A `generator` handed in is the caller's to warm and close; the one made here (from
    the settings, `models` overriding Replicate's) is warmed now, and the CPU workers
    start in the background. `run_steps=False` (commands that only read or flag
    campaigns) starts neither them nor Ray. With REPLICATE_WEBHOOK_URL set, steps
    that run start the webhook listener (`webhook_listener=False`: the caller mounts
    `App.webhooks` itself). `config` overrides ServiceConfig fields (lease_s, ...).
    On exit, campaigns still running here are cancelled, or with `hand_over`
    released for the next process (nothing is cancelled at the provider).
    """
    async with contextlib.AsyncExitStack() as stack:
        if generator is None:
            # Commands that only read or flag campaigns generate nothing: the free
            # offline generator stands in (no clients, no Replicate adapter loaded).
            generator = make_generator(settings, models) if run_steps else offline(settings.core)
            stack.push_async_callback(generator.aclose)
            await generator.warm()
        replicate = as_replicate(generator)
        store = await open_store(settings.core)
        stack.push_async_callback(store.close)
        if replicate is not None:
            await attach_store(replicate, store, read_now=run_steps)
        executor = await make_executor(settings, generator, run_steps=run_steps)
        stack.push_async_callback(executor.aclose)
        if run_steps:
            executor.warm()
        if planner is None:
            planner = llm_planner(replicate) if replicate else OfflinePlanner()
        priced = {"priced_models": replicate.settings.models.requestable()} if replicate else {}
        service = wire(
            settings.core,
            store=store,
            generator=generator,
            executor=executor,
            planner=planner,
            sheet=sheet,
            clock=clock,
            **{**priced, **config},
        )
        stack.push_async_callback(functools.partial(service.aclose, hand_over=hand_over))
        if (receiver := webhooks(replicate)) is not None:  # for another replica's step: tell it
            receiver.announce = store.announce_prediction
        if receiver is not None and run_steps and webhook_listener:
            address = receiver.runtime.settings.listen_address()
            await stack.enter_async_context(receiver.listen(*address))
        yield App(service, store, readiness_checks(store, replicate), receiver)


async def attach_store(replicate: ReplicateGenerator, store: Store, *, read_now: bool) -> None:
    """Share through the store Replicate's schemas, the account's create schedule and the
    webhooks of other replicas' steps; `read_now`: the defaults' schemas now."""
    from adapters.replicate_api.models import KINDS

    replicate.runtime.catalog.cache = store
    await replicate.runtime.share(store, store.create_schedule())  # one budget, Ray actors too
    store.on_predictions(replicate.runtime.nudge)  # a webhook another replica received
    if read_now:
        await replicate.check_models(dict.fromkeys(KINDS))


def wire(
    settings: CoreSettings,
    *,
    store: Store,
    generator: Generator,
    executor: Executor,
    planner: Planner | None = None,
    sheet: Renderers | None = None,
    clock: Callable[[], float] | None = None,
    **config: Any,
) -> CampaignService:
    """The one place a CampaignService is made, over resources that are already open.

    build() calls it; so does a test factory that must hand a service back
    without awaiting (it owns and closes the store and executor it passes).
    `sheet`: the picture renderers (a `Pictures`: sheet, timeline, reel), or a
    bare contact-sheet renderer, which then renders the sheet alone.
    """
    return CampaignService(
        store=store,
        planner=planner or OfflinePlanner(),
        generator=generator,
        executor=executor,
        scheduler=Scheduler(settings.limits),
        sheet=sheet or pictures(),
        config=service_config(settings, config),
        **({"clock": clock} if clock else {}),
    )


def service_config(settings: CoreSettings, overrides: Mapping[str, Any]) -> ServiceConfig:
    """The service's knobs: the core settings, with `overrides` of their fields (lease_s,
    cancel_poll_s, quotas, ...) or of ServiceConfig's own (priced_models)."""
    core = {k: v for k, v in overrides.items() if k in type(settings).model_fields}
    own = {k: v for k, v in overrides.items() if k not in core}
    return ServiceConfig(settings.model_copy(update=core), **own)


def make_generator(
    settings: AppSettings, models: Mapping[str, str | None] | None = None
) -> Generator:
    """The generator the settings ask for; `models` overrides Replicate's per kind."""
    name = settings.core.generator
    if name == "auto":
        name = "replicate" if settings.replicate.api_token else "offline"
    if name == "replicate":
        if not settings.replicate.api_token:
            raise ConfigError(
                "--generator replicate needs REPLICATE_API_TOKEN (or use --generator offline)"
            )
        from adapters.replicate_api.generator import ReplicateGenerator

        return ReplicateGenerator(settings.replicate.with_models(models or {}))
    return offline(settings.core)


def offline(settings: CoreSettings) -> OfflineGenerator:
    """The embedded default generator: Pillow images and Ken Burns clips, no network."""
    from adapters.offline.generator import OfflineGenerator

    return OfflineGenerator(video_seconds=settings.video_seconds)


def as_replicate(generator: Generator) -> ReplicateGenerator | None:
    """`generator` if it is the Replicate one (its module is loaded only if it was made)."""
    module = sys.modules.get("adapters.replicate_api.generator")
    if module is not None and isinstance(generator, module.ReplicateGenerator):
        replicate: ReplicateGenerator = generator
        return replicate
    return None


def llm_planner(replicate: ReplicateGenerator) -> Planner:
    """Plans from Replicate's language model, sharing the generator's clients and limits."""
    from adapters.replicate_api.planner import LlmPlanner

    return LlmPlanner(replicate.runtime)


async def make_executor(
    settings: AppSettings, generator: Generator, *, run_steps: bool
) -> Executor:
    """The executor the settings ask for; auto means Ray when RAY_ADDRESS is set.

    Ray missing or unreachable: one line on stderr, and the local executor.
    Without `run_steps` the local one, which is never used and starts nothing.
    """
    from adapters.local_executor import LocalExecutor

    limits = settings.core.limits
    name = settings.core.executor if run_steps else "local"
    if name == "auto":
        name = "ray" if settings.ray.address else "local"
    if name == "ray":
        from adapters.ray_exec.connect import open_ray_executor

        return await open_ray_executor(generator, limits, settings.ray, _warn)
    return LocalExecutor(generator, limits)


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def webhooks(replicate: ReplicateGenerator | None) -> WebhookReceiver | None:
    """The webhook receiver when Replicate generates and REPLICATE_WEBHOOK_URL is set."""
    if replicate is not None and replicate.settings.webhook_url:
        from adapters.replicate_api.webhooks import WebhookReceiver

        return WebhookReceiver(replicate.runtime)
    return None


def readiness_checks(store: Store, replicate: ReplicateGenerator | None) -> dict[str, Check]:
    """/readyz: the database is writable; Replicate answers (or the offline generator)."""
    ping = replicate.ping if replicate else None
    return {"database": database_check(store.ping), "provider": provider_check(ping)}


def health_listener(
    http: HttpSettings, checks: Mapping[str, Check], busy_port: int | None = None
) -> contextlib.AbstractAsyncContextManager[int | None]:
    """The CAMPAIGN_HTTP_PORT listener with /healthz and /readyz, or a no-op when unset."""
    address = http.address()
    if address is None or address[1] == busy_port:
        return contextlib.nullcontext()
    return serve_http(lambda app: add_health_routes(app, checks), *address)


async def run_slack(ctx: Context) -> int:
    """Serve the Slack front end (HTTP, or Socket Mode) until SIGINT or SIGTERM.

    Stopping hands the campaigns running here over to the next process.
    """
    from bot.slack_ui import app as slack_app  # here: other commands need not load slack-bolt

    args, settings = ctx.args, ctx.settings
    socket = args.socket or settings.slack.app_token is not None
    settings.slack.check(socket_mode=socket)
    async with build(settings, webhook_listener=socket, hand_over=True) as app:
        front = slack_app.SlackFrontEnd(
            app.service,
            settings.slack,
            max_products=settings.core.max_products,
            gallery=settings.gallery,
            replays=app.store,  # a request delivered to two replicas starts nothing twice
        )
        receiver = None if socket else app.webhooks

        def mount(web_app: web.Application) -> None:
            if receiver is not None:
                receiver.add_to(web_app)
            add_health_routes(web_app, app.checks)

        busy = None if socket else args.port
        async with health_listener(settings.http, app.checks, busy_port=busy):
            await slack_app.serve_until_stopped(
                front, socket=socket, host=args.host, port=args.port, mount=mount, stop=ctx.signals
            )
    return EXIT_OK


async def run_discord(ctx: Context) -> int:
    """Run the Discord front end until SIGINT or SIGTERM; stopping hands campaigns over."""
    from bot.discord_ui import (
        app as discord_app,  # imported here: other commands need not load discord.py
    )
    from bot.discord_ui.seams import endpoints

    settings = ctx.settings
    config = settings.discord
    token = config.bot_token()  # a ConfigError before anything starts
    with endpoints(config.api_base_url, config.gateway_url):
        async with build(settings, hand_over=True) as app:
            bot = discord_app.CampaignBot(
                app.service,
                config,
                max_products=settings.core.max_products,
                progress_interval_s=settings.core.progress_interval_s,
                gallery=settings.gallery,
                sync_commands=ctx.args.sync,
                replays=app.store,  # an interaction delivered to two processes runs once
            )
            async with health_listener(settings.http, app.checks):
                await discord_app.serve_until_stopped(bot, token, stop=ctx.signals)
    return EXIT_OK


async def run_gallery(ctx: Context) -> int:
    """Serve the gallery (with /healthz, /readyz) until SIGINT or SIGTERM; prints a signed link."""
    from bot.gallery import serve_gallery

    settings = ctx.settings
    store = await open_store(settings.core)
    try:
        return await serve_gallery(
            store,
            settings.core,
            ctx.args.host,
            ctx.args.port,
            sys.stdout,
            gallery=settings.gallery,
            database=database_check(store.ping),
        )
    finally:
        await store.close()


async def run_models(ctx: Context) -> int:
    """The Replicate model of each kind: version, inputs as mapped, unit, price, estimate."""
    from adapters.replicate_api.catalog import ModelCatalog
    from adapters.replicate_api.http import ReplicateHttp
    from adapters.replicate_api.report import describe_models
    from bot.cli.models import print_models

    replicate = ctx.settings.replicate
    store = await open_store(ctx.settings.core)
    catalog = ModelCatalog(replicate.models, cache=store)
    http = ReplicateHttp(replicate) if replicate.api_token else None
    try:
        rows = await describe_models(catalog, http)
    finally:
        if http is not None:
            await http.aclose()
        await store.close()
    print_models(rows, sys.stdout, as_json=ctx.args.json)
    return EXIT_OK


FRONT_ENDS: dict[str, Command] = {
    "models": run_models,
    "slack": run_slack,
    "discord": run_discord,
    "gallery": run_gallery,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: the CLI, with the settings, build() and the front ends served from here."""
    return cli_main(argv, load=read_settings, build=build, front_ends=FRONT_ENDS)


def read_settings() -> AppSettings:
    """The one settings model, read once from the environment and .env (its module loads
    when the CLI asks, after the arguments: `--version` reads nothing)."""
    from bot.settings import load_settings

    return load_settings()


if __name__ == "__main__":
    sys.exit(main())
