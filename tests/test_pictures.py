"""Contact sheet marks, the timeline and the reel: real Pillow, real ffmpeg."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
from PIL import Image

from adapters.offline import ken_burns
from adapters.pictures import reel, sheet, timeline

RED = sheet.MARKS["failed"]


def _count(img: Image.Image, color: tuple[int, int, int], box: tuple[int, int, int, int]) -> int:
    crop = img.convert("RGB").crop(box)
    return sum(n for n, c in crop.getcolors(maxcolors=crop.width * crop.height) or [] if c == color)


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("src") / "product.png"
    Image.new("RGB", (96, 96), (40, 200, 90)).save(path)
    return str(path)


def _cells(img: Image.Image, thumb: int, count: int) -> list[tuple[int, int, int, int]]:
    """The thumbnail boxes of a sheet of `count` items (its layout: see render_contact_sheet)."""
    cols = math.ceil(math.sqrt(count))
    pad, label_h = thumb // 16, max(16, thumb // 8)
    title_h = img.height - pad - math.ceil(count / cols) * (thumb + label_h + pad)
    return [
        (
            pad + (i % cols) * (thumb + pad),
            title_h + pad + (i // cols) * (thumb + label_h + pad),
            pad + (i % cols) * (thumb + pad) + thumb,
            title_h + pad + (i // cols) * (thumb + label_h + pad) + thumb,
        )
        for i in range(count)
    ]


def test_contact_sheet_marks_failed_and_canceled_products_instead_of_dropping_them(
    tmp_path: Path, picture: str
) -> None:
    items: list[sheet.Item] = [
        ("Mug", picture, "succeeded", True),
        ("Tee", None, "failed", False),
        ("Tote", picture, "canceled", False),
        ("Cap", picture, "succeeded", False),
    ]
    out = sheet.render_contact_sheet(
        items, str(tmp_path / "s.png"), title="cats", subtitle="Campaign ab12cd34 · $0.120"
    )
    with Image.open(out) as img:
        cells = _cells(img, 256, 4)
        assert len(cells) == 4  # every product has its cell
        assert _count(img, RED, cells[1]) > 256 * 20  # the failed one: a red band
        assert _count(img, sheet.PLACEHOLDER_COLOR, cells[1]) > 256 * 100  # and no image
        assert _count(img, sheet.MARKS["canceled"], cells[2]) > 256 * 20
        for ok in (cells[0], cells[3]):
            assert _count(img, RED, ok) == 0
            assert _count(img, sheet.MARKS["canceled"], ok) == 0
        assert _count(img, sheet.VIDEO_BADGE, cells[0]) > 100  # the play badge
        assert _count(img, sheet.VIDEO_BADGE, cells[3]) == 0


def test_contact_sheet_subtitle_makes_the_title_bar_taller(tmp_path: Path, picture: str) -> None:
    plain = sheet.render_contact_sheet([("a", picture)], str(tmp_path / "a.png"), title="t")
    sub = sheet.render_contact_sheet(
        [("a", picture)], str(tmp_path / "b.png"), title="t", subtitle="Campaign x · $1"
    )
    with Image.open(plain) as a, Image.open(sub) as b:
        assert b.height > a.height and b.width == a.width


BARS: list[timeline.Bar] = [
    ("plan", "plan", 0.0, 2.0, "succeeded"),
    ("1. Mug", "image", 2.0, 10.0, "succeeded"),
    ("1. Mug", "video", 10.0, 60.0, "succeeded"),
    ("2. Tee", "image", 2.0, 9.0, "failed"),
    ("3. Tote", "image", 2.0, 11.0, "succeeded"),
    ("3. Tote", "video", 11.0, 40.0, "canceled"),
]


def test_timeline_draws_one_row_per_product_and_failed_steps_in_red(tmp_path: Path) -> None:
    out = timeline.render_timeline([("run", BARS)], str(tmp_path / "t.png"), title="Campaign x")
    more = timeline.render_timeline(
        [("run", [*BARS, ("4. Cap", "image", 2.0, 8.0, "succeeded")])],
        str(tmp_path / "t2.png"),
        title="Campaign x",
    )
    with Image.open(out) as img, Image.open(more) as bigger:
        assert bigger.height - img.height == timeline.ROW_H  # one more product, one more row
        plot = (timeline.LABEL_W, 70, img.width, img.height - 40)
        assert _count(img, timeline.FAILED, plot) > 500  # the failed image bar
        assert _count(img, timeline.KIND_COLORS["video"], plot) > 5000
        assert _count(img, timeline.KIND_COLORS["image"], plot) > 1000


def test_timeline_panels_share_one_axis_and_a_marker(tmp_path: Path) -> None:
    out = timeline.render_timeline(
        [("ours", BARS[:3]), ("old tool", [("1. Mug", "image", 0.0, 200.0, "succeeded")])],
        str(tmp_path / "g.png"),
        title="bench",
        marker=(60.0, "critical path"),
    )
    with Image.open(out) as img:
        assert _count(img, timeline.MARKER, (timeline.LABEL_W, 70, img.width, img.height)) > 50
    with pytest.raises(ValueError, match="at least one bar"):
        timeline.render_timeline([("empty", [])], str(tmp_path / "e.png"), title="x")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, picture: str) -> list[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("clips")
    made = []
    for i, seconds in enumerate((1.0, 1.5)):
        path = ken_burns.render_ken_burns(
            picture, str(folder / f"{i}.mp4"), seconds=seconds, size=96 + 32 * i, seed=i
        )
        made.append((f"Product {i + 1}", path))
    return made


def test_reel_joins_the_clips_after_a_title_card(tmp_path: Path, clips: list[tuple[str, str]]):
    out = reel.render_reel(
        clips, str(tmp_path / "reel.mp4"), title="retro cats", title_s=1.0, size=(320, 180)
    )
    total = reel.video_seconds(out)  # readable by ffmpeg
    expected = 1.0 + sum(reel.video_seconds(path) for _, path in clips)
    assert abs(total - expected) < 0.25, (total, expected)


def test_reel_refuses_nothing_or_a_missing_clip(tmp_path: Path, clips: list[tuple[str, str]]):
    with pytest.raises(ValueError, match="at least one clip"):
        reel.render_reel([], str(tmp_path / "r.mp4"), title="t")
    with pytest.raises(FileNotFoundError):
        reel.render_reel(
            [*clips, ("gone", str(tmp_path / "gone.mp4"))], str(tmp_path / "r.mp4"), title="t"
        )
    assert not (tmp_path / "r.mp4").exists()


@pytest.mark.parametrize(
    "fn", [sheet.render_contact_sheet, timeline.render_timeline, reel.render_reel]
)
def test_picture_functions_pickle_for_the_cpu_pool(fn: object) -> None:
    assert pickle.loads(pickle.dumps(fn)) is fn


def test_a_video_failure_is_marked_by_its_last_word(tmp_path: Path, picture: str) -> None:
    out = sheet.render_contact_sheet(
        [("Mug", picture, "video failed", False)], str(tmp_path / "v.png"), title="t"
    )
    with Image.open(out) as img:
        assert _count(img, RED, _cells(img, 256, 1)[0]) > 256 * 20


def test_a_base_sheet_keeps_its_cells_and_gets_a_new_title_bar(
    tmp_path: Path, picture: str
) -> None:
    items: list[sheet.Item] = [("Mug", picture, "succeeded", True), ("Tee", None, "failed", False)]
    early = sheet.render_contact_sheet(items, str(tmp_path / "s.png"), title="t", subtitle="$0.01")
    with Image.open(early) as img:
        before = img.convert("RGB")
    Path(picture).rename(picture + ".away")  # a redraw over the base reads no image
    try:
        final = sheet.render_contact_sheet(
            items, str(tmp_path / "s.png"), title="t", subtitle="$0.25", base=early
        )
    finally:
        Path(picture + ".away").rename(picture)
    with Image.open(final) as img:
        after = img.convert("RGB")
    cells = _cells(after, 256, 2)
    assert after.size == before.size
    assert after.crop(cells[0]).tobytes() == before.crop(cells[0]).tobytes()
    title_h = cells[0][1] - 256 // 16
    bar = (0, 0, after.width, title_h)
    assert after.crop(bar).tobytes() != before.crop(bar).tobytes()  # the new subtitle
    other = sheet.render_contact_sheet(  # a base of another layout: a full render
        items[:1], str(tmp_path / "o.png"), title="t", subtitle="$1", base=early
    )
    with Image.open(other) as img:
        assert img.size != before.size


def test_a_clip_without_a_moov_box_is_refused_before_ffmpeg(
    tmp_path: Path, clips: list[tuple[str, str]]
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(2048))
    with pytest.raises(ValueError, match="not a playable MP4"):
        reel.render_reel([*clips, ("broken", str(broken))], str(tmp_path / "r.mp4"), title="t")
    assert not (tmp_path / "r.mp4").exists()
