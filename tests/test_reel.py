"""The campaign reel: after the summary, bounded, prepared as clips arrive, joined by copy.

Service tests hand the reel fake renderers (tests/fakes: a part is a line of
text, the join their lines) or the real ones at a small frame (ffmpeg, fast);
adapter tests run the real ones and read the files back with ffmpeg.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import imageio_ffmpeg
import pytest

from adapters.pictures import reel
from bot.settings import AppSettings
from core.model import CampaignStatus, StepName
from core.pictures import Pictures, ReelFns
from core.ports import StepContext, StepJob, StepOutput
from core.progress import EventKind, ProgressEvent
from core.reel import CLIP_MAX_S, REEL_CLIPS, REEL_MAX_S, TITLE_S
from core.request import CampaignRequest
from core.scheduler import Limits
from core.settings import CoreSettings
from tests.fakes import (
    FAKE_REEL,
    GatedGenerator,
    fake_card,
    fake_clip,
    fake_sheet,
    fake_timeline,
    gated_join,
)

SMALL = (160, 90)  # the real renderers at a frame small enough for tests
SMALL_REEL = ReelFns(
    card=functools.partial(reel.prepare_card, size=SMALL),
    clip=functools.partial(reel.prepare_clip, size=SMALL),
    join=reel.join_parts,
)


class Events:
    """A sink keeping every event."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    async def publish(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]


class ClipGenerator(GatedGenerator):
    """GatedGenerator whose videos are a real MP4 (a copy of `clip`)."""

    def __init__(self, clip: Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.clip = clip

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        done = await super().run(job, ctx)
        if job.step is not StepName.VIDEO:
            return done
        out = Path(job.out_dir) / f"{job.plan.index}-video.mp4"
        await asyncio.to_thread(shutil.copyfile, self.clip, out)
        return StepOutput(path=str(out), provider_id=done.provider_id, cost_usd=0.01)


def _make_clip(out: Path, seconds: float, size: str = "96x96") -> Path:
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out),
        ],
        check=True, timeout=60,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 s clip: longer than a reel's share of 60 s."""
    return _make_clip(tmp_path_factory.mktemp("clips") / "long.mp4", 6.0)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s clip of another size (as an image-to-video model makes)."""
    return _make_clip(tmp_path_factory.mktemp("clips") / "short.mp4", 2.0, "128x72")


@contextlib.asynccontextmanager
async def _service(
    bot_main: ModuleType, folder: Path, generator: Any, reel_fns: ReelFns
) -> AsyncIterator[Any]:
    settings = CoreSettings(
        data_dir=folder / "data",
        db_path=folder / "campaigns.db",
        executor="local",
        generator="offline",
        limits=Limits(text=2, image=4, video=4, cpu=2),
    )
    pictures = Pictures(sheet=fake_sheet, timeline=fake_timeline, reel=reel_fns)
    async with bot_main.build(
        AppSettings.of(core=settings), generator=generator, sheet=pictures
    ) as app:
        yield app.service


def _request(products: int) -> CampaignRequest:
    return CampaignRequest(theme="retro cats", products=products, videos=True)


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a condition on files a worker process writes (generous limit)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.01)


# --- after the last product: the summary, then the reel --------------------------------


async def test_the_campaign_is_finished_and_summarised_before_its_reel_is_made(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    gate = tmp_path / "join-gate"
    held = ReelFns(fake_card, fake_clip, functools.partial(gated_join, gate=str(gate)))
    sink = Events()
    async with _service(bot_main, tmp_path, GatedGenerator(open_all=True), held) as service:
        campaign = await service.submit(_request(3), [sink])
        finished = await service.wait(campaign.id)
        # finished at its last product, while the reel's join is held
        stored = await service.get(campaign.id)
        assert stored.status is CampaignStatus.SUCCEEDED and stored.reel is None
        assert stored.finished_at is not None and stored.contact_sheet and stored.timeline
        assert stored.finished_at >= max(s.finished_at or 0 for s in stored.steps())
        assert sink.kinds()[-1] is EventKind.CAMPAIGN_FINISHED
        assert sink.events[-1].reel_follows and EventKind.REEL_READY not in sink.kinds()
        gate.touch()
        done = await service.wait_reel(campaign.id)
    last = sink.events[-1]
    assert last.kind is EventKind.REEL_READY and last.status == "succeeded"
    assert done.reel is not None and last.output == done.reel and Path(done.reel).exists()
    assert done.finished_at == finished.finished_at == stored.finished_at  # not moved by it
    assert stored.finished_at < last.at
    assert sink.kinds().count(EventKind.CAMPAIGN_FINISHED) == 1


async def test_a_failed_reel_is_its_own_event_and_leaves_the_outcome(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    sink = Events()
    broken = ReelFns(fake_card, fake_clip, reel.join_parts)  # text "parts" ffmpeg cannot join
    async with _service(bot_main, tmp_path, GatedGenerator(open_all=True), broken) as service:
        done = await service.run(_request(2), [sink])
    assert done.status is CampaignStatus.SUCCEEDED and done.reel is None
    finished, ready = sink.events[-2:]
    assert (finished.kind, ready.kind) == (EventKind.CAMPAIGN_FINISHED, EventKind.REEL_READY)
    assert ready.status == "failed" and ready.output is None and "ffmpeg" in ready.message


async def test_no_reel_follows_a_campaign_without_videos(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    sink = Events()
    async with _service(bot_main, tmp_path, GatedGenerator(open_all=True), FAKE_REEL) as service:
        done = await service.run(CampaignRequest(theme="cats", products=2, videos=False), [sink])
    assert done.reel is None and not sink.events[-1].reel_follows
    assert EventKind.REEL_READY not in sink.kinds()


# --- bounded: 12 clips at most, each cut to fit 60 s -------------------------------------


async def test_the_reel_shows_the_first_12_clips_in_product_order_each_cut_to_fit(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    gen = GatedGenerator(open_all=True, fail={(2, "video")})
    async with _service(bot_main, tmp_path, gen, FAKE_REEL) as service:
        done = await service.run(_request(14))
    assert done.reel is not None
    card, *shown = Path(done.reel).read_text().splitlines()
    assert card.startswith("card\tretro cats\t14 products")
    clips = [(p.plan.name, p.output(StepName.VIDEO)) for p in done.current()]
    with_clips = [(name, path) for name, path in clips if path]
    assert len(with_clips) == 13  # one video failed: the 13th product's clip is the 12th shown
    assert shown == [f"{name}\t{path}\t{CLIP_MAX_S}" for name, path in with_clips[:REEL_CLIPS]]
    assert TITLE_S + REEL_CLIPS * CLIP_MAX_S <= REEL_MAX_S


async def test_a_real_reel_of_14_long_clips_lasts_at_most_60_seconds(
    bot_main: ModuleType, tmp_path: Path, long_clip: Path
) -> None:
    async with _service(bot_main, tmp_path, ClipGenerator(long_clip, open_all=True),
                        SMALL_REEL) as service:  # fmt: skip
        done = await service.run(_request(14))
    assert done.reel is not None
    seconds = reel.video_seconds(done.reel)
    assert REEL_MAX_S - 0.1 <= seconds <= REEL_MAX_S  # the card and 12 clips of 4.875 s
    assert len(_frame_hashes(done.reel)) == round(REEL_MAX_S * reel.FPS)


async def test_clips_are_prepared_as_their_videos_arrive(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    gen = GatedGenerator()
    async with _service(bot_main, tmp_path, gen, FAKE_REEL) as service:
        campaign = await service.submit(_request(2))
        gen.open((0, "image"), (0, "video"), (1, "image"))
        parts = tmp_path / "data" / "campaigns" / campaign.id / "reel-parts"
        # product 1's video is still held: product 0's clip is prepared all the same
        await _until(lambda: (parts / "0-video.txt.txt").exists(), "the first clip's part")
        assert (parts / "card.txt").exists()
        assert not gen.finished[(1, "video")].is_set()
        gen.open((1, "video"))
        done = await _finish(service, campaign.id)
    assert done.reel is not None and len(Path(done.reel).read_text().splitlines()) == 3


async def _finish(service: Any, campaign_id: str) -> Any:
    await service.wait(campaign_id)
    return await service.wait_reel(campaign_id)


# --- a reel lost to a crash --------------------------------------------------------------


async def test_resume_makes_the_reel_a_stopped_process_owed_without_running_a_step(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    gate = tmp_path / "join-gate"
    held = ReelFns(fake_card, fake_clip, functools.partial(gated_join, gate=str(gate)))
    async with _service(bot_main, tmp_path, GatedGenerator(open_all=True), held) as first:
        campaign = await first.submit(_request(2))
        await first.wait(campaign.id)
        await first.stop_campaigns(hand_over=True)  # stopped between summary and reel
        gate.touch()  # lets the abandoned worker call end
    assert (await _stored(bot_main, tmp_path, campaign.id)).reel is None
    again = GatedGenerator(open_all=True)
    sink = Events()
    async with _service(bot_main, tmp_path, again, FAKE_REEL) as second:
        report = await second.resume_orphans(lambda _c: [sink])
        assert [c.id for c in report.reels] == [campaign.id] and report.resumed == []
        done = await second.wait_reel(campaign.id)
        assert (await second.resume_orphans()).nothing_to_do  # made once, not owed any more
    assert done.reel is not None and Path(done.reel).read_text().startswith("card")
    assert again.calls == []  # no step ran again
    assert [e.kind for e in sink.events] == [EventKind.REEL_READY]


async def _stored(bot_main: ModuleType, folder: Path, campaign_id: str) -> Any:
    async with _service(bot_main, folder, GatedGenerator(), FAKE_REEL) as service:
        return await service.get(campaign_id)


# --- the real renderers: parts and their join ---------------------------------------------


def _frame_hashes(path: str) -> list[str]:
    """The MD5 of every decoded frame (ffmpeg's framemd5)."""
    out = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", path,
         "-map", "0:v", "-f", "framemd5", "-"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if not line.startswith("#")]


def _stream(path: str) -> str:
    """The video stream's description as ffmpeg reads it (codec, profile, frame, rate)."""
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", path],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    line = next(x for x in done.stderr.splitlines() if "Video:" in x)
    return ", ".join(p for p in line.split("Video:")[1].split(", ") if "kb/s" not in p)


def test_a_clip_is_letterboxed_to_the_frame_and_cut_to_its_share(
    tmp_path: Path, long_clip: Path, short_clip: Path
) -> None:
    cut = reel.prepare_clip(str(long_clip), str(tmp_path), caption="Mug", max_s=CLIP_MAX_S,
                            size=SMALL)  # fmt: skip
    whole = reel.prepare_clip(str(short_clip), str(tmp_path), caption="Tee", max_s=CLIP_MAX_S,
                              size=SMALL)  # fmt: skip
    assert abs(reel.video_seconds(cut) - CLIP_MAX_S) < 0.05
    assert abs(reel.video_seconds(whole) - 2.0) < 0.05  # shorter than its share: whole
    assert "160x90" in _stream(cut) and _stream(cut) == _stream(whole)
    again = reel.prepare_clip(str(long_clip), str(tmp_path), caption="Mug", max_s=CLIP_MAX_S,
                              size=SMALL)  # fmt: skip
    assert again == cut  # made once: a second run of the campaign reuses it


def test_the_join_is_a_stream_copy_of_the_prepared_parts(
    tmp_path: Path, long_clip: Path, short_clip: Path
) -> None:
    folder = str(tmp_path / "parts")
    parts = [
        reel.prepare_card(folder, title="retro cats", subtitle="2 products", size=SMALL),
        reel.prepare_clip(str(long_clip), folder, caption="Mug", max_s=CLIP_MAX_S, size=SMALL),
        reel.prepare_clip(str(short_clip), folder, caption="Tee", max_s=CLIP_MAX_S, size=SMALL),
    ]
    out = reel.join_parts(parts, str(tmp_path / "reel.mp4"))
    assert _stream(out) == _stream(parts[0])  # the parts' codec parameters, kept
    # every frame decodes to exactly the parts' frames: copied, not encoded again
    assert _frame_hashes(out) == [h for part in parts for h in _frame_hashes(part)]
    assert abs(reel.video_seconds(out) - (1.5 + CLIP_MAX_S + 2.0)) < 0.1
