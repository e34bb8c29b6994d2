"""A finished campaign's pictures: contact sheet marks, timeline and reel, as finalize makes them.

Most tests hand finalize fake renderers and read what it gave them; a few
run the real ones (Pillow, the bundled ffmpeg) on small offline campaigns.

    python -m tests.test_finish_pictures   # writes docs/contact-sheet.png and docs/timeline.png
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from adapters.offline.generator import OfflineGenerator
from adapters.pictures import reel, sheet, timeline
from bot.settings import AppSettings
from core.errors import PermanentStepError
from core.model import Campaign, CampaignStatus, StepName
from core.pictures import Pictures, SheetFn
from core.ports import StepContext, StepJob, StepOutput
from core.progress import EventKind, ProgressEvent
from core.request import CampaignRequest
from core.scheduler import Limits
from core.settings import CoreSettings
from tests.fakes import BROKEN_REEL, FAKE_PICTURES, GatedGenerator, fake_sheet, fake_timeline

ROOT = Path(__file__).resolve().parent.parent


class FailingOffline(OfflineGenerator):
    """The offline generator, failing the steps named (product index, step name)."""

    def __init__(self, fail: set[tuple[int, str]], video_seconds: float = 0.5) -> None:
        super().__init__(video_seconds=video_seconds)
        self.fail = fail

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        if (job.plan.index, job.step.value) in self.fail:
            raise PermanentStepError(f"the model refused this {job.step.value}")
        return await super().run(job, ctx)


class Finished:
    """A sink keeping the campaign record the CAMPAIGN_FINISHED event carried."""

    def __init__(self) -> None:
        self.campaign: Campaign | None = None

    async def publish(self, event: ProgressEvent) -> None:
        if event.kind is EventKind.CAMPAIGN_FINISHED:
            self.campaign = event.campaign


def _settings(folder: Path) -> CoreSettings:
    return CoreSettings(
        data_dir=folder / "data",
        db_path=folder / "campaigns.db",
        executor="local",
        generator="offline",
        limits=Limits(text=2, image=4, video=4, cpu=2),
    )


@contextlib.asynccontextmanager
async def _service(
    bot_main: ModuleType, folder: Path, generator: Any, sheet: SheetFn | None = None
) -> AsyncIterator[Any]:
    more = {"sheet": sheet} if sheet is not None else {}  # None: bot.py's real renderers
    async with bot_main.build(
        AppSettings.of(core=_settings(folder)), generator=generator, **more
    ) as app:
        yield app.service


def _request(products: int, videos: bool = True, theme: str = "retro cats") -> CampaignRequest:
    return CampaignRequest(theme=theme, products=products, videos=videos)


def _sheet_rows(path: str) -> tuple[str, list[list[str]]]:
    """The fake sheet's subtitle and its item lines."""
    _title, subtitle, *rows = Path(path).read_text().splitlines()
    return subtitle, [row.split("\t") for row in rows]


# --- what finalize hands the renderers (fakes) -----------------------------------------


async def test_failed_products_are_on_the_sheet_marked_and_videos_flagged(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    gen = GatedGenerator(open_all=True, fail={(1, "image"), (2, "video")})
    finished = Finished()
    async with _service(bot_main, tmp_path, gen, FAKE_PICTURES) as service:
        done = await service.run(_request(3), [finished])
    assert done.status is CampaignStatus.PARTIAL
    assert done.contact_sheet is not None
    subtitle, rows = _sheet_rows(done.contact_sheet)
    assert subtitle == f"Campaign {done.id} · ${done.cost_usd:.3f}"
    names = [p.plan.name for p in done.products]
    image = [p.output(StepName.IMAGE) for p in done.products]
    assert rows == [
        [names[0], str(image[0]), "succeeded", "True"],
        [names[1], "None", "failed", "False"],  # no image: kept, marked failed
        [names[2], str(image[2]), "video failed", "False"],  # its image, its video failed
    ]
    assert finished.campaign is not None  # the summary event carries every picture
    assert finished.campaign.timeline == done.timeline
    assert done.timeline is not None and Path(done.timeline).name == "timeline.png"
    assert Path(done.timeline).exists()
    assert done.reel is not None and Path(done.reel).read_text().splitlines()[1:] == [
        f"{names[0]}\t{done.products[0].output(StepName.VIDEO)}\t4.875"  # only the clips there are
    ]


async def test_the_timeline_has_a_bar_per_step_that_ran_with_failures(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    gen = GatedGenerator(open_all=True, fail={(0, "image")})
    async with _service(bot_main, tmp_path, gen, FAKE_PICTURES) as service:
        done = await service.run(_request(2))
    assert done.timeline is not None
    title, *lines = Path(done.timeline).read_text().splitlines()
    assert done.id in title and "retro cats" in title
    bars = [line.split("\t") for line in lines]
    steps = [(row, kind, status) for row, kind, _, _, status in bars if kind != "plan"]
    first, second = (f"{p.plan.index + 1}. {p.plan.name}" for p in done.products)
    assert steps == [  # the skipped video never ran: no bar
        (first, "image", "failed"),
        (second, "image", "succeeded"),
        (second, "video", "succeeded"),
    ]
    for _, _, start, end, _ in bars:
        assert 0 <= float(start) <= float(end)


async def test_attempts_get_their_own_timeline_rows_and_the_current_one_is_on_the_sheet(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    gen = GatedGenerator(open_all=True)
    async with _service(bot_main, tmp_path, gen, FAKE_PICTURES) as service:
        first = await service.run(_request(2, videos=False))
        await service.reroll(first.id, 1)
        done = await service.wait(first.id)
    assert done.timeline is not None and done.contact_sheet is not None
    rows = [line.split("\t")[0] for line in Path(done.timeline).read_text().splitlines()[1:]]
    name = done.products[0].plan.name
    assert [r for r in rows if r != "plan"] == [
        f"1. {name}",
        f"3. reroll of 1: {name}",  # under its slot, numbered as `show` numbers it
        f"2. {done.products[1].plan.name}",
    ]
    _subtitle, items = _sheet_rows(done.contact_sheet)
    assert [item[1] for item in items] == [  # the sheet shows each slot's current image
        str(done.products[2].output(StepName.IMAGE)),
        str(done.products[1].output(StepName.IMAGE)),
    ]


async def test_a_campaign_without_videos_has_no_reel_and_keeps_its_early_sheet(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    gen = GatedGenerator(open_all=True)
    async with _service(bot_main, tmp_path, gen, FAKE_PICTURES) as service:
        done = await service.run(_request(2, videos=False))
    assert done.status is CampaignStatus.SUCCEEDED and done.reel is None
    assert not (tmp_path / "data" / "campaigns" / done.id / "reel.mp4").exists()
    assert done.contact_sheet is not None and done.timeline is not None
    head = Path(done.contact_sheet).read_text().splitlines()[0]
    assert not head.endswith("\tbase")  # rendered once, when the images were done


async def test_a_reel_that_fails_leaves_the_campaign_succeeded_without_one(
    bot_main: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gen = GatedGenerator(open_all=True)
    pictures = Pictures(sheet=fake_sheet, timeline=fake_timeline, reel=BROKEN_REEL)
    async with _service(bot_main, tmp_path, gen, pictures) as service:
        done = await service.run(_request(2))
    assert done.status is CampaignStatus.SUCCEEDED
    assert done.reel is None and done.contact_sheet and done.timeline
    assert any("no reel" in r.getMessage() and "broken" in r.getMessage() for r in caplog.records)


async def test_a_bare_sheet_renderer_renders_the_sheet_alone(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    async with _service(bot_main, tmp_path, GatedGenerator(open_all=True), fake_sheet) as svc:
        done = await svc.run(_request(1))
    assert done.contact_sheet and done.timeline is None and done.reel is None


# --- the real renderers ----------------------------------------------------------------


async def test_real_pictures_of_an_offline_campaign_with_videos(
    bot_main: ModuleType, tmp_path: Path
) -> None:
    gen = FailingOffline({(1, "image")}, video_seconds=0.5)
    async with _service(bot_main, tmp_path, gen) as service:
        done = await service.run(_request(3))
    assert done.status is CampaignStatus.PARTIAL
    clips = [p.output(StepName.VIDEO) for p in done.current()]
    assert clips[1] is None and clips[0] and clips[2]
    assert done.reel is not None and Path(done.reel).name == "reel.mp4"
    expected = 1.5 + sum(reel.video_seconds(c) for c in clips if c)  # title card + clips
    assert abs(reel.video_seconds(done.reel) - expected) < 0.3  # and ffmpeg reads it
    assert done.contact_sheet is not None and done.timeline is not None
    with Image.open(done.contact_sheet) as img:
        red = sum(
            n for n, c in img.convert("RGB").getcolors(1 << 22) or [] if c == sheet.MARKS["failed"]
        )
        assert red > 1000  # the failed product's band
    with Image.open(done.timeline) as img:
        colors = {c: n for n, c in img.convert("RGB").getcolors(1 << 22) or []}
        assert colors.get(timeline.FAILED, 0) > 100  # its failed image bar
        assert colors.get(timeline.KIND_COLORS["video"], 0) > 100


# --- the docs' pictures -------------------------------------------------------------


async def make_screenshots(bot_main: ModuleType, folder: Path, out: Path) -> list[Path]:
    """docs/contact-sheet.png and docs/timeline.png from a real offline campaign."""
    gen = FailingOffline({(2, "image"), (4, "video")}, video_seconds=1.0)
    async with _service(bot_main, folder, gen) as service:
        done = await service.run(_request(6, theme="retro cats"))
    assert done.contact_sheet and done.timeline, done
    written = []
    for source, name in (
        (done.contact_sheet, "contact-sheet.png"),
        (done.timeline, "timeline.png"),
    ):
        with Image.open(source) as img:
            small = img.convert("RGB")
            if name == "contact-sheet.png":
                small.thumbnail((720, 720), Image.Resampling.LANCZOS)
            small = small.quantize(256, dither=Image.Dither.NONE)
            target = out / name
            small.save(target, optimize=True)
            written.append(target)
    return written


def main() -> int:
    import importlib.util
    import tempfile

    spec = importlib.util.spec_from_file_location("bot_main", ROOT / "bot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bot_main"] = module
    spec.loader.exec_module(module)
    with tempfile.TemporaryDirectory() as tmp:
        for path in asyncio.run(make_screenshots(module, Path(tmp), ROOT / "docs")):
            print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
