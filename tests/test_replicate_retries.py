"""Retry delays, ambiguous creates and cancelled creates, through the real client and the fake."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.replicate_api.downloads import DECODE_INLINE_MAX, Downloader
from adapters.replicate_api.generator import ReplicateGenerator
from adapters.replicate_api.predict import CREATE_TASK, predict
from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.settings import ReplicateSettings
from core.model import ProductPlan, StepKind, StepName
from core.ports import StepContext, StepHooks, StepJob
from tests.fakes import FakeClock
from tests.fakes.replicate import (
    FakeReplicate,
    Fault,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
    fast_settings,
)

IMAGE = "black-forest-labs/flux-schnell"
INPUT = {"prompt": "a mug", "seed": 1}
CAP = ReplicateSettings().retry_cap_s  # the configured default: 60 s
TOKEN_WAIT_MAX = 0.01  # the create bucket's own waits at the test rate are ~1 ms


class FakeTime(FakeClock):
    """The shared fake clock, plus the waits that were backoffs."""

    def backoffs(self) -> list[float]:
        """The waits between attempts (not the create bucket's token waits)."""
        return [s for s in self.slept if s > TOKEN_WAIT_MAX]


async def _create_with_faults(
    fake: FakeReplicate, faults: list[Fault], **changes: Any
) -> tuple[FakeTime, PredictionApi]:
    time = FakeTime(start=1000.0)
    settings = fast_settings(fake, **{"backoff_s": 1.0, "retry_cap_s": CAP, **changes})
    api = PredictionApi(settings, clock=time, sleep=time.sleep)
    fake.faults.extend(faults)
    try:
        created = await api.create(IMAGE, INPUT)
    finally:
        await api.aclose()
    assert [p["id"] for p in fake.created()] == [created.id]
    return time, api


@pytest.mark.parametrize(
    ("fault", "low", "high"),
    [
        (Fault("429", retry_after="2", resets_in=30), 2.0, 2.1),  # the header wins
        (Fault("429", resets_in=7), 7.0, 7.1),  # no header: the body's "resets in ~7s"
        (Fault("429", retry_after="3600"), CAP, CAP),  # never longer than the cap
        (Fault("429", resets_in=3600), CAP, CAP),
    ],
    ids=["retry-after-2", "resets-in-7", "retry-after-3600", "resets-in-3600"],
)
async def test_429_waits_as_long_as_the_api_says(
    fake: FakeReplicate, fault: Fault, low: float, high: float
) -> None:
    time, api = await _create_with_faults(fake, [fault])
    [delay] = time.backoffs()
    assert low <= delay <= high
    assert api.http.creates._paused_until == pytest.approx(1000.0 + delay)  # held every creator
    assert sum(time.slept) == pytest.approx(delay, abs=TOKEN_WAIT_MAX)  # no second wait on top


async def test_a_429_on_a_create_says_it_waits_for_the_rate_limit(fake: FakeReplicate) -> None:
    time = FakeTime(start=1000.0)
    api = PredictionApi(fast_settings(fake, backoff_s=1.0), clock=time, sleep=time.sleep)
    fake.faults.extend([Fault("429", retry_after="2"), Fault("503")])
    places: list[int] = []

    async def on_place(place: int) -> None:
        places.append(place)

    try:
        await api.create(IMAGE, INPUT, on_place=on_place)
    finally:
        await api.aclose()
    assert places[0] == 1  # told once for the 429's pause; the 503 is no rate wait
    assert places.count(1) == 1


async def test_without_a_hint_backoff_is_exponential_with_jitter(fake: FakeReplicate) -> None:
    faults = [Fault("429"), Fault("429"), Fault("503"), Fault("502")]
    time, _ = await _create_with_faults(fake, faults)
    delays = time.backoffs()
    assert len(delays) == 4
    for attempt, delay in enumerate(delays, start=1):
        base = 1.0 * 2 ** (attempt - 1)  # backoff_s doubles: 1, 2, 4, 8
        assert base / 2 <= delay <= base, (attempt, delay)


async def test_exponential_backoff_is_capped(fake: FakeReplicate) -> None:
    time, _ = await _create_with_faults(fake, [Fault("503"), Fault("503")], backoff_s=45.0)
    first, second = time.backoffs()
    assert 22.5 <= first <= 45.0
    assert CAP / 2 <= second <= CAP  # 90 s would be the next step: the cap holds it at 60


def _job(tmp_path: Path) -> StepJob:
    plan = ProductPlan(0, "Mug", "mug", "t", "a mug", "orbit")
    return StepJob("c1", StepName.IMAGE, plan, "photo", 1, str(tmp_path))


def _context(remembered: list[str]) -> StepContext:
    async def report(_message: str) -> None:
        return None

    async def remember(provider_id: str) -> None:
        remembered.append(provider_id)

    async def no_cpu(*_args: object) -> None:
        raise AssertionError("the Replicate generator needs no CPU work")

    return StepContext(StepHooks(report, remember), no_cpu)


@pytest.mark.parametrize("kind", ["504", "stall_after", "stall_before"])
async def test_step_succeeds_after_an_ambiguous_create(
    fake: FakeReplicate, tmp_path: Path, kind: str
) -> None:
    generator = ReplicateGenerator(fast_settings(fake, read_timeout_s=0.5))
    fake.faults.append(Fault(kind))
    remembered: list[str] = []
    try:
        out = await generator.run(_job(tmp_path), _context(remembered))
    finally:
        await generator.aclose()
    [prediction] = fake.created()  # paid once: adopted, or created after nothing was made
    assert out.provider_id == prediction["id"] and remembered == [prediction["id"]]
    assert Path(out.path).read_bytes()[:4] == b"\x89PNG"
    assert out.predict_time_s == prediction["metrics"]["predict_time"]
    assert fake.posts("/predictions") == (1 if kind == "stall_after" else 2)


async def _quiet(_message: str) -> None:
    return None


def _live_creates() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(CREATE_TASK)]


async def _held_create(fake: FakeReplicate, api: PredictionApi) -> asyncio.Task[Any]:
    """A predict() whose create request has reached the fake and waits at its gate."""
    fake.create_gate = asyncio.Event()
    task = asyncio.create_task(predict(api, IMAGE, INPUT, kind=StepKind.IMAGE, deadline_s=10.0))
    async with asyncio.timeout(10):
        await fake.at_gate.wait()
    return task


async def test_cancel_during_create_cancels_what_it_made(fake: FakeReplicate) -> None:
    api = PredictionApi(fast_settings(fake, cancel_wait_s=5.0))
    try:
        task = await _held_create(fake, api)
        task.cancel()
        await asyncio.sleep(0)  # let the cancel reach predict(): it now waits for the answer
        assert fake.create_gate is not None
        fake.create_gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _live_creates() == []
    finally:
        await api.aclose()
    assert fake.cancels == [p["id"] for p in fake.created()]


async def test_create_that_never_answers_is_not_left_running(fake: FakeReplicate) -> None:
    api = PredictionApi(fast_settings(fake, cancel_wait_s=0.05))
    try:
        task = await _held_create(fake, api)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _live_creates() == []  # cancelled and awaited, not merely asked to stop
    finally:
        await api.aclose()


async def test_second_cancel_while_waiting_still_reaps_the_create(fake: FakeReplicate) -> None:
    api = PredictionApi(fast_settings(fake))
    try:
        task = await _held_create(fake, api)
        task.cancel()
        for _ in range(3):
            await asyncio.sleep(0)  # predict() is now waiting for the create's answer
        assert not task.done()
        task.cancel()  # e.g. shutdown cancels everything again
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _live_creates() == []
    finally:
        await api.aclose()


async def test_large_outputs_are_decoded_and_written_off_the_event_loop(tmp_path: Path) -> None:
    offloaded: list[str] = []

    async def offload(fn: Callable[..., Any], *args: Any) -> Any:
        offloaded.append(fn.__name__)
        return await asyncio.to_thread(fn, *args)

    big = b"\x89PNG\r\n\x1a\n" + bytes(DECODE_INLINE_MAX)
    small = b"\x89PNG\r\n\x1a\n" + bytes(100)
    downloads = Downloader(max_bytes=4 * DECODE_INLINE_MAX, offload=offload)
    try:
        for name, data in (("big", big), ("small", small)):
            url = "data:image/png;base64," + base64.b64encode(data).decode()
            path = await downloads.fetch(url, tmp_path / name, "image")
            assert Path(path).read_bytes() == data
    finally:
        await downloads.aclose()
    # > 1 MiB: decoded and written in a worker thread; a small one is not worth a thread
    assert offloaded == ["_decode_data_uri", "_write"]
