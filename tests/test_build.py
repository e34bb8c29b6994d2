"""bot.py's build(): the one wiring the CLI, the front ends, tests and benchmarks use.

Real SQLite files in tmp_path, the real local executor, the real Replicate
HTTP client against a local aiohttp server; the CLI's table is checked
against its real parser.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import web

from adapters.replicate_api.planner import LlmPlanner
from adapters.replicate_api.settings import ReplicateSettings
from adapters.replicate_api.webhooks import WebhookReceiver
from bot.cli.commands import COMMANDS
from bot.cli.parser import build_parser
from bot.health import serve_http
from bot.settings import AppSettings
from core.model import CampaignStatus
from core.planner import OfflinePlanner
from core.request import CampaignRequest
from core.scheduler import Limits
from core.settings import CoreSettings
from tests.fakes import GatedGenerator, fake_sheet
from tests.fakes.model_schemas import LATEST_VERSION, SCHEMAS
from tests.fakes.replicate_parts import model_json, version_json

ROOT = Path(__file__).resolve().parent.parent


def settings_in(folder: Path, **changes: object) -> CoreSettings:
    """Settings for a build in `folder`: local executor unless told otherwise."""
    base = CoreSettings(
        data_dir=folder / "data",
        db_path=folder / "campaigns.db",
        executor="local",
        limits=Limits(text=1, image=2, video=1, cpu=1),
    )
    return base.model_copy(update=changes)


class CountingGenerator(GatedGenerator):
    """A gated generator that records whether anyone warmed or closed it."""

    def __init__(self, **options: bool) -> None:
        super().__init__(**options)
        self.lifecycle: list[str] = []

    async def warm(self) -> None:
        self.lifecycle.append("warm")

    async def aclose(self) -> None:
        self.lifecycle.append("aclose")


async def test_a_generator_handed_in_stays_the_callers_and_the_rest_is_closed(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    generator = CountingGenerator(open_all=True)
    async with bot_main.build(
        AppSettings.of(core=settings_in(tmp_path)), generator=generator, sheet=fake_sheet
    ) as app:
        done = await app.service.run(CampaignRequest(theme="cats", products=1, videos=False))
        assert done.status is CampaignStatus.SUCCEEDED
        assert app.webhooks is None
        assert sorted(app.checks) == ["database", "provider"]
        assert await app.checks["provider"]() == "offline generator"
        assert await app.checks["database"]() == "writable"
    assert generator.lifecycle == []  # neither warmed nor closed: it is the caller's
    with pytest.raises(ValueError, match="no active connection"):
        await app.store.recent(1)  # the store build() opened is closed


@pytest.mark.parametrize(("hand_over", "after"), [(False, "canceled"), (True, "running")])
async def test_leaving_build_cancels_or_hands_over_what_still_runs(
    bot_main: ModuleType, tmp_path: Path, hand_over: bool, after: str
) -> None:
    generator = GatedGenerator()  # its steps wait for gates nobody opens
    settings = settings_in(tmp_path)
    async with bot_main.build(
        AppSettings.of(core=settings), generator=generator, sheet=fake_sheet, hand_over=hand_over
    ) as app:
        campaign = await app.service.submit(CampaignRequest(theme="cats", products=1))
        await generator.wait_started(1)
    async with bot_main.build(
        AppSettings.of(core=settings), generator=GatedGenerator(open_all=True)
    ) as app:
        left = await app.service.get(campaign.id)
        assert left.status.value == after
        if hand_over:  # released, not cancelled: the next process finishes it
            report = await app.service.resume_orphans()
            assert [c.id for c in report.resumed] == [campaign.id]
            finished = await app.service.wait(campaign.id)
            assert finished.status is CampaignStatus.SUCCEEDED


async def test_settings_and_overrides_reach_the_service(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    settings = settings_in(tmp_path, max_products=7, lease_s=3.0, generator="offline")
    async with bot_main.build(
        AppSettings.of(core=settings), cancel_poll_s=0.05, lease_s=4.0
    ) as app:
        config = app.service.config
        core = config.settings
        assert (core.max_products, core.lease_s, core.cancel_poll_s) == (7, 4.0, 0.05)
        assert core.data_dir == tmp_path / "data"
        assert config.priced_models == {}  # the offline generator is free
        assert isinstance(app.service.planner, OfflinePlanner)
        assert app.service.generator_name == "offline"


async def test_read_only_commands_never_start_ray(bot_main: ModuleType, tmp_path: Path) -> None:
    settings = settings_in(tmp_path, executor="ray", generator="offline")
    async with bot_main.build(AppSettings.of(core=settings), run_steps=False) as app:
        assert app.service.describe_executor() == "local pool: 1 CPU workers"


async def test_with_replicate_build_wires_its_planner_prices_webhooks_and_ping(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    seen: list[str | None] = []

    async def account(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"type": "user", "username": "someone"})

    async def model(request: web.Request) -> web.Response:  # read at start for the estimates
        name = f"{request.match_info['owner']}/{request.match_info['name']}"
        version = version_json(LATEST_VERSION[name], SCHEMAS[name], "2025-11-01T00:00:00Z")
        return web.json_response(model_json(name, name, 1, version))

    def mount(app: web.Application) -> None:
        app.router.add_get("/v1/account", account)
        app.router.add_get("/v1/models/{owner}/{name}", model)

    async with serve_http(mount, "127.0.0.1", 0) as port:
        replicate = ReplicateSettings(
            api_token="r8_good",
            base_url=f"http://127.0.0.1:{port}",
            allow_http=True,
            webhook_url="https://bot.example.com/replicate/webhook",
        )
        settings = AppSettings.of(
            core=settings_in(tmp_path, generator="replicate"), replicate=replicate
        )
        async with bot_main.build(settings, webhook_listener=False) as app:
            assert isinstance(app.webhooks, WebhookReceiver)  # mounted by the caller
            assert isinstance(app.service.planner, LlmPlanner)
            assert "black-forest-labs/flux-schnell" in app.service.config.priced_models["image"]
            assert app.service.generator_name == "replicate"
            assert await app.checks["provider"]() == "replicate: reachable"
    assert seen == ["Bearer r8_good"]


async def test_commands_that_only_read_use_no_generator_of_their_own(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    settings = AppSettings.of(
        core=settings_in(tmp_path, generator="replicate"),
        replicate=ReplicateSettings(api_token="r8_unused"),
    )
    async with bot_main.build(settings, run_steps=False) as app:
        assert app.service.generator_name == "offline" and app.webhooks is None


def test_every_subcommand_has_exactly_one_handler(bot_main: ModuleType) -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert sub.choices is not None
    assert set(sub.choices) == set(COMMANDS) | set(bot_main.FRONT_ENDS)
    assert not set(COMMANDS) & set(bot_main.FRONT_ENDS)


def test_the_cli_package_loads_no_adapter_storage_or_provider_library() -> None:
    code = (
        "import sys, bot.cli.main, bot.cli.commands; "
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'adapters', 'storage', 'ray', 'replicate', 'discord', 'slack_bolt', 'aiosqlite'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
