"""Account benchmark: a small Replicate account, and one account shared by two campaigns.

Replicate lets an account with little credit create about 6 predictions a
minute with a burst of 1. Scaled 1:100 like the speed benchmark (the fake
allows 600 creates/min, burst 1; its language model writes 10,000 tokens/s
after 0.05 s, image 0.35 s, video 3.2 s), with the bot at its default
ceiling (REPLICATE_CREATE_RATE=600 real, 60,000 scaled: it is not told the
account is small):

1. Six products with videos (at least 13 creates): how many 429s, and the
   makespan against the account's bound (one product's plan, then 12 creates
   0.1 s apart, the last one a video).
2. Fair sharing: a 1-product campaign (images only) submitted as soon as a
   10-product one has planned (its ten image creates are in line): its
   makespan against its bound alone (plan, then its image: 2 creates 0.1 s
   apart plus their latencies), and where its creates fell in the account's
   order.

The fake runs in its own process (`python -m tests.fakes.replicate`); every
bot is built as `bot.py run` builds it. Writes docs/ACCOUNTS.md; reports,
never asserts.

    python -m benchmarks.account_bench [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.speed_bench import (
    IMAGE_S,
    PLAN_S,
    SCALED_RATES,
    VIDEO_S,
    build,
    fake_api,
    fake_stats,
    markdown_table,
    operator_env,
)
from bot import event_loop
from bot.settings import AppSettings
from core.request import parse_request
from core.service import CampaignService

ROOT = Path(__file__).resolve().parent.parent
SMALL_PER_MIN = 600.0  # Replicate's ~6 creates/min for a small account, scaled 1:100
SMALL_RATE_S = 60.0 / SMALL_PER_MIN


@dataclass(frozen=True)
class SmallRun:
    makespan: float
    bound: float
    creates: int
    throttled: int
    status: str


@dataclass(frozen=True)
class FairRun:
    small_makespan: float
    small_bound: float
    big_makespan: float
    places: tuple[int, ...]  # the small campaign's creates, 1-based, among all after it came
    throttled: int
    status: str


def small_bound_s(products: int) -> float:
    """Plan, then the other creates one rate interval apart, the last a video."""
    creates = 1 + 2 * products
    return PLAN_S + (creates - 2) * SMALL_RATE_S + VIDEO_S


@contextlib.asynccontextmanager
async def on_small_account() -> AsyncIterator[tuple[CampaignService, str]]:
    """A bot built as `bot.py run` builds it, on a fresh fake small account: (service, url)."""
    with tempfile.TemporaryDirectory(prefix="account-bench-") as data:
        async with fake_api(SMALL_PER_MIN, SCALED_RATES[1], False, burst=1) as url:
            env = operator_env(url, Path(data), SCALED_RATES)
            async with build(AppSettings.from_mapping(env)) as app:
                yield app.service, url


async def small_account(products: int) -> SmallRun:
    request = parse_request(f"theme:mugs products:{products} videos:yes")
    async with on_small_account() as (service, url):
        started = time.perf_counter()
        final = await service.wait((await service.submit(request)).id)
        makespan = time.perf_counter() - started
        stats = await fake_stats(url)
    return SmallRun(
        makespan,
        small_bound_s(products),
        int(stats.get("creates", 0)),
        int(stats.get("throttled", 0)),
        final.status.value,
    )


async def fair_share(big_products: int) -> FairRun:
    async with on_small_account() as (service, url):
        t0 = time.perf_counter()
        big = await service.submit(parse_request(f"theme:zebras products:{big_products}"))
        before = await _creates_reach(url, 2)  # planned: its images are in line
        t1 = time.perf_counter()
        small = await service.submit(parse_request("theme:koalas products:1"))
        small_done = await service.wait(small.id)
        t2 = time.perf_counter()
        big_done = await service.wait(big.id)
        t3 = time.perf_counter()
        stats = await fake_stats(url)
    order = list(stats.get("predictions", []))[before:]
    places = tuple(i + 1 for i, p in enumerate(order) if "koala" in p["input_key"].lower())
    return FairRun(
        small_makespan=t2 - t1,
        small_bound=PLAN_S + SMALL_RATE_S + IMAGE_S,
        big_makespan=t3 - t0,
        places=places,
        throttled=int(stats.get("throttled", 0)),
        status=f"{big_done.status.value} / {small_done.status.value}",
    )


async def _creates_reach(url: str, count: int) -> int:
    """Wait until the fake has taken `count` creates; returns how many it has."""
    for _ in range(2000):  # polls another process: no event to wait on
        if (made := int((await fake_stats(url)).get("creates", 0))) >= count:
            return made
        await asyncio.sleep(0.005)
    raise TimeoutError(f"the fake never took {count} creates")


def report(smalls: Sequence[SmallRun], fairs: Sequence[FairRun]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    small_rows = [
        [
            str(i + 1),
            f"{r.makespan:.2f} s",
            f"{r.bound:.2f} s",
            f"{r.bound / r.makespan:.3f}",
            str(r.creates),
            str(r.throttled),
            r.status,
        ]
        for i, r in enumerate(smalls)
    ]
    fair_rows = [
        [
            str(i + 1),
            f"{r.small_makespan:.2f} s",
            f"{r.small_bound:.2f} s",
            f"{r.small_makespan / r.small_bound:.2f}x",
            ", ".join(map(str, r.places)),
            f"{r.big_makespan:.2f} s",
            str(r.throttled),
            r.status,
        ]
        for i, r in enumerate(fairs)
    ]
    median_429 = statistics.median(r.throttled for r in smalls) if smalls else 0
    return "\n".join(
        [
            "# Account benchmark",
            "",
            "Written by `python -m benchmarks.account_bench` (`make bench`); overwritten on"
            f" every run. {when}, {len(smalls)} runs each.",
            "",
            "A small Replicate account (about 6 creates a minute, burst 1) scaled 1:100: the"
            " fake allows 600 creates/min with a burst of 1; one product's plan"
            f" {PLAN_S:g} s (its model's first token, then 150 tokens), image {IMAGE_S} s, video"
            f" {VIDEO_S} s. The bot runs at its default"
            " ceiling (600/min real, 60,000 scaled): nobody told it the account is small.",
            "",
            "## 1. Six products with videos (at least 13 creates)",
            "",
            "Bound: one product's plan, then 12 creates one rate interval (0.1 s) apart, the"
            f" last a video: {PLAN_S:g} + 11 x 0.1 + 3.2 s. Efficiency = bound / makespan."
            " The planning calls beyond one are the bot's choice: they count against it.",
            "",
            markdown_table(
                ["run", "makespan", "bound", "efficiency", "creates", "429s", "outcome"],
                small_rows,
            ),
            "",
            f"Median 429s: {median_429:g} (before the learning bucket: one per create).",
            "",
            "## 2. A 1-product campaign right behind a 10-product one",
            "",
            "The small campaign's bound alone: its plan, then its image one rate interval"
            f" later: {PLAN_S:g} + 0.1 + 0.35 s. Places: where its creates fell among the"
            " account's creates from the moment it was submitted (1 = next).",
            "",
            markdown_table(
                [
                    "run",
                    "small makespan",
                    "its bound",
                    "ratio",
                    "its creates' places",
                    "big makespan",
                    "429s",
                    "outcome (big / small)",
                ],
                fair_rows,
            ),
            "",
            "Left out: real network latency and Replicate's own queueing; the fake's limit"
            " is a token bucket (Replicate's exact algorithm is not published); one process.",
            "",
        ]
    )


async def bench(runs: int) -> str:
    smalls = [await small_account(6) for _ in range(runs)]
    for r in smalls:
        print(f"[small] {r.makespan:.2f} s, {r.throttled} 429s, {r.status}", flush=True)
    fairs = [await fair_share(10) for _ in range(runs)]
    for f in fairs:
        print(f"[fair] small {f.small_makespan:.2f} s at {f.places}, {f.status}", flush=True)
    return report(smalls, fairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    text = event_loop.run(bench(args.runs))
    (ROOT / "docs" / "ACCOUNTS.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
