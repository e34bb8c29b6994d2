"""Hostile output URLs: the token-free Downloader against local aiohttp servers.

Any chat user can pick the model, so the model picks the output URL. Downloads
go only to allowed host names, never to loopback/private/link-local/metadata
addresses (every redirect hop included), and connect to the address that was
checked. The servers below count the requests they see: a refused download must
leave them at zero. REPLICATE_ALLOW_PRIVATE_OUTPUTS stays off here unless a test
says otherwise (then only for 127.0.0.1/32, to reach a first hop at all).
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import web

from adapters.replicate_api.downloads import (
    OUTPUT_HOSTS,
    Downloader,
    UnsafeOutput,
    host_allowed,
    host_patterns,
    unsafe_address,
)
from adapters.replicate_api.generator import ReplicateGenerator
from bot.settings import AppSettings
from core.errors import ConfigError
from core.model import CampaignStatus, StepName
from core.planner import OfflinePlanner
from core.request import CampaignRequest
from core.scheduler import Limits
from core.settings import CoreSettings
from tests.fakes import fake_sheet
from tests.fakes.replicate import (
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)
from tests.fakes.replicate_parts import png

PNG = png()


@dataclass
class FileServer:
    """An aiohttp server on one loopback address that records every request."""

    host: str
    redirect_to: str | None = None
    seen: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append({"path": request.path, "host": request.headers.get("Host", "")})
        if self.redirect_to is not None and request.path == "/hop.png":
            raise web.HTTPFound(self.redirect_to)
        return web.Response(body=PNG, content_type="image/png")

    def url(self, path: str = "/x.png", name: str | None = None) -> str:
        return f"http://{name or self.host}:{self.port}{path}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., object]]:
    """Factory: start a FileServer on a loopback address; all stopped at the end."""
    runners: list[web.AppRunner] = []

    async def start(host: str = "127.0.0.1", redirect_to: str | None = None) -> FileServer:
        server = FileServer(host, redirect_to)
        app = web.Application()
        app.router.add_get("/{tail:.*}", server.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        server.port = int(runner.addresses[0][1])
        runners.append(runner)
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


class Resolver:
    """A DNS stand-in: fixed answers per name, and a log of what was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"no such name {host}")
        return self.answers[host]


@pytest.fixture
async def downloader() -> AsyncIterator[Callable[..., Downloader]]:
    made: list[Downloader] = []

    def make(**options: object) -> Downloader:
        d = Downloader(max_bytes=1_000_000, **options)  # type: ignore[arg-type]
        made.append(d)
        return d

    yield make
    for d in made:
        await d.aclose()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "169.254.170.2",
        "100.100.100.200",
        "168.63.129.16",  # Azure's, a "public" address
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert unsafe_address(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert unsafe_address(address) is None


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("replicate.delivery", True),
        ("pbxt.replicate.delivery", True),
        ("PBXT.Replicate.Delivery.", True),
        ("a.b.replicate.delivery", True),
        ("replicate.delivery.evil.example", False),
        ("evilreplicate.delivery", False),
        ("delivery", False),
        ("127.0.0.1", False),
        ("localhost", False),
        ("api.replicate.com", False),
    ],
)
def test_output_hosts_are_matched_by_name(host: str, allowed: bool) -> None:
    assert host_allowed(host, OUTPUT_HOSTS) is allowed


@pytest.mark.parametrize("bad", ["http://x.com", "x.com:443", "*", "*.", "a b", "[::1]"])
def test_bad_host_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        host_patterns([bad])


def test_settings_extend_the_hosts_and_keep_private_outputs_off() -> None:
    s = AppSettings.from_mapping(
        {"REPLICATE_OUTPUT_HOSTS": "cdn.example.com, *.files.example"}
    ).replicate
    assert s.allow_private_outputs is False
    assert s.download_hosts() == (*OUTPUT_HOSTS, "cdn.example.com", "*.files.example")
    proxied = AppSettings.from_mapping({"REPLICATE_BASE_URL": "https://proxy.internal/r"}).replicate
    assert "proxy.internal" in proxied.download_hosts()
    on = AppSettings.from_mapping({"REPLICATE_ALLOW_PRIVATE_OUTPUTS": "1"}).replicate
    assert on.allow_private_outputs is True
    with pytest.raises(ConfigError, match="REPLICATE_OUTPUT_HOSTS"):
        AppSettings.from_mapping({"REPLICATE_OUTPUT_HOSTS": "https://cdn.example.com/"})


async def test_loopback_is_refused_before_any_request(
    serve: Callable[..., object], downloader: Callable[..., Downloader], tmp_path: Path
) -> None:
    server = await serve()  # type: ignore[misc]
    d = downloader(allow_http=True, hosts=["localhost", "127.0.0.1"])
    for name in ("localhost", "127.0.0.1"):
        with pytest.raises(UnsafeOutput, match="loopback"):
            await d.fetch(server.url(name=name), tmp_path / name, "image")
    assert server.seen == []
    assert not list(tmp_path.iterdir())


async def test_hosts_off_the_allowlist_are_refused_before_any_lookup(
    serve: Callable[..., object], downloader: Callable[..., Downloader], tmp_path: Path
) -> None:
    server = await serve()  # type: ignore[misc]
    resolver = Resolver({})
    d = downloader(allow_http=True, resolve=resolver, allow_private=True)
    urls = [
        server.url(),  # an IP literal is not an output host
        server.url(name="localhost"),
        "https://replicate.delivery.evil.example/x.png",
        "https://replicate.delivery@127.0.0.1/x.png",  # userinfo: the host is 127.0.0.1
        "https://evil.example/x.png#.replicate.delivery",
    ]
    for url in urls:
        with pytest.raises(UnsafeOutput, match="not an output host"):
            await d.fetch(url, tmp_path / "x", "image")
    with pytest.raises(UnsafeOutput, match="refusing to download output from a ftp URL"):
        await d.fetch("ftp://replicate.delivery/x.png", tmp_path / "x", "image")
    assert resolver.asked == [] and server.seen == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (["169.254.169.254"], "metadata"),
        (["10.0.0.7"], "private"),
        (["::ffff:127.0.0.1"], "loopback"),
        (["93.184.216.34", "127.0.0.1"], "loopback"),  # one bad answer is enough
        (["fe80::1%eth0"], "link-local"),
    ],
)
async def test_allowed_names_resolving_inside_are_refused(
    downloader: Callable[..., Downloader], tmp_path: Path, answer: list[str], reason: str
) -> None:
    resolver = Resolver({"pbxt.replicate.delivery": answer})
    d = downloader(resolve=resolver)
    with pytest.raises(UnsafeOutput, match=reason):
        await d.fetch("https://pbxt.replicate.delivery/x/out.png", tmp_path / "x", "image")
    assert resolver.asked == ["pbxt.replicate.delivery"]


async def test_the_checked_address_is_the_one_connected_to(
    serve: Callable[..., object], downloader: Callable[..., Downloader], tmp_path: Path
) -> None:
    """The name is looked up once and the connection goes to that answer (no second
    lookup a rebinding DNS could change); the Host header still names the host."""
    server = await serve()  # type: ignore[misc]
    resolver = Resolver({"cdn.replicate.delivery": ["127.0.0.1"]})  # not in real DNS
    d = downloader(allow_http=True, resolve=resolver, allow_private=["127.0.0.1/32"])
    path = await d.fetch(server.url(name="cdn.replicate.delivery"), tmp_path / "a", "image")
    assert Path(path).read_bytes() == PNG
    assert resolver.asked == ["cdn.replicate.delivery"]
    assert server.seen == [{"path": "/x.png", "host": f"cdn.replicate.delivery:{server.port}"}]


async def test_an_output_served_compressed_is_saved_as_the_file_it_is(
    downloader: Callable[..., Downloader], tmp_path: Path
) -> None:
    async def gzipped(_request: web.Request) -> web.Response:
        body = gzip.compress(PNG)
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip"}, content_type="image/png"
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", gzipped)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = int(runner.addresses[0][1])
        d = downloader(allow_http=True, hosts=["127.0.0.1"], allow_private=["127.0.0.1/32"])
        path = await d.fetch(f"http://127.0.0.1:{port}/x.png", tmp_path / "x", "image")
    finally:
        await runner.cleanup()
    assert Path(path).read_bytes() == PNG


async def test_redirects_are_checked_at_every_hop(
    serve: Callable[..., object], downloader: Callable[..., Downloader], tmp_path: Path
) -> None:
    inside = await serve("127.0.0.2")  # type: ignore[misc]
    hops = {
        f"http://127.0.0.2:{inside.port}/x.png": "loopback",  # allowed name, refused address
        "http://169.254.169.254/latest/meta-data/": "not an output host",
        "https://evil.example/x.png": "not an output host",
    }
    for target, reason in hops.items():
        first = await serve(redirect_to=target)  # type: ignore[misc]
        d = downloader(
            allow_http=True,
            hosts=["127.0.0.1", "127.0.0.2"],
            allow_private=["127.0.0.1/32"],  # the first hop only
        )
        with pytest.raises(UnsafeOutput, match=reason):
            await d.fetch(first.url("/hop.png"), tmp_path / "x", "image")
        assert [s["path"] for s in first.seen] == ["/hop.png"]
    assert inside.seen == []  # no hop ever reached the inside server
    assert not list(tmp_path.iterdir())


async def test_a_campaign_with_a_loopback_output_fails_that_step_cleanly(
    fake: FakeReplicate, bot_main: ModuleType, tmp_path: Path
) -> None:
    """The fake serves outputs on 127.0.0.1: without the test-only setting, refused."""
    generator = ReplicateGenerator(fast_settings(fake, allow_private_outputs=False))
    settings = CoreSettings(
        data_dir=tmp_path / "data",
        db_path=tmp_path / "campaigns.db",
        executor="local",
        limits=Limits(text=1, image=2, video=1, cpu=1),
    )
    try:
        async with bot_main.build(
            AppSettings.of(core=settings),
            generator=generator,
            planner=OfflinePlanner(),
            sheet=fake_sheet,
        ) as app:
            campaign = await app.service.run(CampaignRequest(theme="cats", products=1))
    finally:
        await generator.aclose()
    assert campaign.status is CampaignStatus.FAILED
    step = campaign.products[0].step(StepName.IMAGE)
    assert step is not None and step.output is None
    assert "refusing to download output from 127.0.0.1" in (step.error or "")
    assert len(fake.created("black-forest-labs/flux-schnell")) == 1
    assert fake.file_headers == []  # the output URL was never requested
