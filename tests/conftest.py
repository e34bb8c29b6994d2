"""Shared fixtures: real SQLite files in tmp_path, services built with fakes."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.local_executor import LocalExecutor
from adapters.replicate_api.generator import ReplicateGenerator
from adapters.replicate_api.planner import LlmPlanner
from bot.settings import AppSettings
from core.pictures import Renderers
from core.ports import Planner
from core.scheduler import Limits
from core.service import CampaignService
from core.settings import CoreSettings
from storage.open import Store
from storage.sqlite_store import SqliteStore
from tests.fakes import GatedGenerator, fake_sheet
from tests.postgres import pg_server, pg_url  # noqa: F401 (PostgreSQL fixtures)
from tests.ray_fixtures import (  # noqa: F401 (Ray fixtures)
    _no_stray_ray_workers,
    _ray_for_session,
    ray_local,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def bot_main() -> ModuleType:
    """The composition root (bot.py; `import bot` would find the bot/ package)."""
    spec = importlib.util.spec_from_file_location("bot_main", ROOT / "bot.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bot_main"] = module
    spec.loader.exec_module(module)
    return module


STORES = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    """The markers that choose which stores a test runs against."""
    config.addinivalue_line(
        "markers", "both_stores: run the test's `store` on SQLite and on PostgreSQL"
    )
    config.addinivalue_line("markers", "sqlite_only: a `both_stores` test that is SQLite's alone")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_stores` (a module's pytestmark, say) that use the `store` run twice."""
    marked = metafunc.definition.get_closest_marker("both_stores")
    alone = metafunc.definition.get_closest_marker("sqlite_only")
    if marked and not alone and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", STORES, indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store `store` is: "sqlite" unless the test is parametrised over both."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
async def store(
    tmp_path: Path, store_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[Store]:
    """A migrated store: a real SQLite file, or a fresh database of the session's PostgreSQL."""
    if store_kind == "postgres":
        from storage.postgres_store import PostgresStore

        db: Store = await PostgresStore.open(request.getfixturevalue("pg_url"))
    else:
        db = await SqliteStore.open(tmp_path / "campaigns.db")
    yield db
    await db.close()


ServiceFactory = Callable[..., Any]
TEST_LIMITS = Limits(text=2, image=4, video=2, cpu=1)


def fixture_settings(
    tmp_path: Path, limits: Limits | None = None, database_url: str | None = None
) -> CoreSettings:
    """Settings of the services the fixtures build: local executor, files in tmp_path, the
    database in a SQLite file there (or at `database_url`, a PostgreSQL one)."""
    return CoreSettings(
        data_dir=tmp_path / "data",
        db_path=tmp_path / "campaigns.db",
        database_url=SecretStr(database_url) if database_url else None,
        executor="local",
        limits=limits or TEST_LIMITS,
    )


@pytest.fixture
async def make_service(
    tmp_path: Path, store: Store, bot_main: ModuleType
) -> AsyncIterator[ServiceFactory]:
    """Factory: a CampaignService on the real store and LocalExecutor with a fake generator
    (and the fake contact-sheet renderer alone, unless `sheet` names others).

    The factory hands the service back without awaiting, so it uses bot.py's
    `wire` over the fixture's open store rather than the async `build`.
    """
    built: list[tuple[CampaignService, LocalExecutor]] = []

    def factory(
        generator: GatedGenerator,
        limits: Limits | None = None,
        sheet: Renderers = fake_sheet,
        **config: Any,
    ) -> CampaignService:
        settings = fixture_settings(tmp_path, limits)
        executor = LocalExecutor(generator, settings.limits)
        service: CampaignService = bot_main.wire(
            settings,
            store=store,
            generator=generator,
            executor=executor,
            sheet=sheet,
            **config,
        )
        built.append((service, executor))
        return service

    yield factory
    for service, executor in built:
        await service.aclose()
        await executor.aclose()


ReplicateFactory = Callable[..., tuple[CampaignService, ReplicateGenerator]]


@pytest.fixture
async def replicate_service(
    make_service: ServiceFactory, store: Store
) -> AsyncIterator[ReplicateFactory]:
    """Factory: `service, generator = replicate_service(fake, **settings)`, a service on the
    real Replicate generator against a fake API (`tests.fakes.replicate`).

    `planner`: the LLM planner unless given; `limits`: TEST_LIMITS unless given; every
    other keyword is a ReplicateSettings field (`models=ModelTable(...)` and so on). The
    store caches the schemas, and a request may name only the offered models, as in bot.py.
    """
    from tests.fakes.replicate import fast_settings

    built: list[tuple[CampaignService, ReplicateGenerator]] = []

    def factory(
        fake: Any, *, planner: Planner | None = None, limits: Limits | None = None, **changes: Any
    ) -> tuple[CampaignService, ReplicateGenerator]:
        generator = ReplicateGenerator(fast_settings(fake, **changes))
        generator.runtime.catalog.cache = store
        service = make_service(
            generator,
            limits,
            planner=planner or LlmPlanner(generator.runtime),
            priced_models=generator.settings.models.requestable(),
        )
        built.append((service, generator))
        return service, generator

    yield factory
    for service, generator in built:  # this teardown runs before make_service's
        await service.aclose()  # (idempotent: make_service closes it again, then its executor)
        await generator.aclose()


ServiceOpener = Callable[..., contextlib.AbstractAsyncContextManager[CampaignService]]


@pytest.fixture
def service_on(
    tmp_path: Path, bot_main: ModuleType, store_kind: str, request: pytest.FixtureRequest
) -> ServiceOpener:
    """Factory: `async with service_on(generator, clock=..., **config) as service:`.

    Every service it opens uses the same database file in tmp_path (its own
    connection), so opening a second one after the first closed is a restart,
    and two open at once are two processes sharing the database (on PostgreSQL, when
    the test runs on both stores: one database of the session's server).
    """
    url = request.getfixturevalue("pg_url") if store_kind == "postgres" else None

    @contextlib.asynccontextmanager
    async def open_one(generator: Any, **overrides: Any) -> AsyncIterator[CampaignService]:
        settings = fixture_settings(tmp_path, database_url=url)
        async with bot_main.build(
            AppSettings.of(core=settings), generator=generator, sheet=fake_sheet, **overrides
        ) as app:
            yield app.service

    return open_one
