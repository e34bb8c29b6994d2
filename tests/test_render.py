"""Product mock-ups, the contact sheet and Ken Burns clips: real Pillow and bundled ffmpeg."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image, ImageChops, ImageStat

from adapters.offline import ken_burns, product_image
from adapters.pictures import sheet
from adapters.pictures import text as text_fitting

STYLES = ["photo", "minimal", "vintage", "neon", "watercolor"]
PRODUCT_TYPES = [
    "t-shirt", "mug", "poster", "tote", "phone case",
    "hoodie", "sticker", "cap", "notebook", "socks",
]  # fmt: skip


def _product(out: Path, **overrides: str | int) -> Path:
    args: dict[str, str | int] = {
        "name": "Retro Cat Tee",
        "product_type": "t-shirt",
        "tagline": "Purr-fectly vintage",
        "style": "vintage",
        "seed": 7,
    }
    args.update(overrides)
    return Path(product_image.render_product_image(str(out), **args))  # type: ignore[arg-type]


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute per-channel difference, 0..255."""
    stat = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB")))
    return sum(stat.mean) / len(stat.mean)


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def _frame(data: bytes, size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, data)


@pytest.fixture(scope="module")
def product_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _product(tmp_path_factory.mktemp("src") / "product.png")


@pytest.fixture
def small_png(tmp_path: Path) -> Path:
    path = tmp_path / "small.png"
    Image.new("RGB", (120, 80), (200, 30, 30)).save(path)
    return path


def _fake_ffmpeg(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-ffmpeg"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


# ---------------------------------------------------------------- product image


def test_product_image_is_a_1024_rgb_png(tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    result = product_image.render_product_image(
        str(out), name="Cat", product_type="mug", tagline="Hi", style="neon", seed=1
    )
    assert result == str(out)
    with Image.open(out) as im:
        assert (im.format, im.size, im.mode) == ("PNG", (1024, 1024), "RGB")


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    a = _product(tmp_path / "a.png")
    b = _product(tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    "change",
    [
        {"product_type": "mug"},
        {"style": "neon"},
        {"seed": 8},
        {"name": "Galaxy Dog Hoodie"},
    ],
)
def test_changing_one_argument_gives_a_clearly_different_image(
    tmp_path: Path, product_png: Path, change: dict[str, str | int]
) -> None:
    other = _product(tmp_path / "other.png", **change)
    assert _mean_diff(_open(product_png), _open(other)) > 8


def test_every_style_and_product_type_renders_distinctly(tmp_path: Path) -> None:
    digests = set()
    for i, product_type in enumerate(PRODUCT_TYPES):
        style = STYLES[i % len(STYLES)]
        out = tmp_path / f"{i}.png"
        product_image.render_product_image(
            str(out), name="Same", product_type=product_type, tagline="", style=style, seed=1,
            size=256,
        )  # fmt: skip
        digests.add(out.read_bytes())
    assert len(digests) == len(PRODUCT_TYPES)


def test_unknown_style_and_product_type_fall_back(tmp_path: Path) -> None:
    out = _product(tmp_path / "x.png", style="cyberpunk", product_type="spaceship")
    with Image.open(out) as im:
        assert im.size == (1024, 1024)
    assert product_image.shape_kind("spaceship") == "generic"


@pytest.mark.parametrize(
    ("product_type", "kind"),
    [
        ("T-Shirt", "tshirt"),
        ("tshirt", "tshirt"),
        ("Sweatshirt", "hoodie"),
        ("Coffee Mug", "mug"),
        ("Phone Case", "phone"),
        ("baseball cap", "cap"),
        ("Socks", "socks"),
        ("steel bottle", "generic"),
        ("", "generic"),
    ],
)
def test_shape_kind_matches_word_starts(product_type: str, kind: str) -> None:
    assert product_image.shape_kind(product_type) == kind


def test_long_names_taglines_and_types_do_not_crash(tmp_path: Path) -> None:
    out = _product(
        tmp_path / "long.png",
        name="Supercalifragilisticexpialidocious " * 12 + "X" * 300,
        tagline="word " * 500,
        product_type="extremely long product type " * 10,
    )
    with Image.open(out) as im:
        assert im.size == (1024, 1024)
    _product(tmp_path / "empty.png", name="", tagline="", product_type="")


def test_fitted_text_stays_inside_its_box() -> None:
    for text in ("Unbreakable" * 40, "Unbreakable" * 10 + " and more words " * 30):
        font, lines = text_fitting.fit_text(text, 800, 150, (100, 50), 2)
        assert 1 <= len(lines) <= 2
        assert all(0 < font.getlength(line) <= 800 for line in lines)
        assert lines[-1].endswith("…")


def test_creates_parent_folders_and_overwrites_without_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "p.png"
    _product(out)
    _product(out, seed=99)  # replaces the existing file
    assert sorted(p.name for p in out.parent.iterdir()) == ["p.png"]


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(IsADirectoryError):
        _product(target)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    assert list(target.iterdir()) == []


# ---------------------------------------------------------------- Ken Burns video


def test_ken_burns_is_a_three_second_h264_mp4_that_moves(tmp_path: Path, product_png: Path) -> None:
    out = tmp_path / "v" / "clip.mp4"
    assert ken_burns.render_ken_burns(str(product_png), str(out), seed=3) == str(out)
    frames, secs = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == 72
    assert secs == pytest.approx(3.0, abs=0.1)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["codec"] == "h264"
    assert meta["size"] == (720, 720)
    first = last = next(reader)
    for _ in range(frames - 1):
        last = next(reader)
    reader.close()  # before the end: exhausting it leaks ffmpeg's pipes
    assert _mean_diff(_frame(first, (720, 720)), _frame(last, (720, 720))) > 5
    assert sorted(p.name for p in out.parent.iterdir()) == ["clip.mp4"]


def test_ken_burns_rounds_odd_size_down_and_follows_seconds(
    tmp_path: Path, small_png: Path
) -> None:
    out = tmp_path / "short.mp4"
    ken_burns.render_ken_burns(str(small_png), str(out), seconds=1.0, fps=10, size=101)
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    reader.close()
    assert meta["size"] == (100, 100)
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 10


def test_ken_burns_start_and_end_depend_on_seed() -> None:
    assert ken_burns._ken_burns_rects(1024, 1024, 1) != ken_burns._ken_burns_rects(1024, 1024, 2)
    start, end = ken_burns._ken_burns_rects(1024, 768, 5)
    for x0, y0, x1, y1 in (start, end):
        assert 0 <= x0 < x1 <= 1024
        assert 0 <= y0 < y1 <= 768
        assert x1 - x0 == pytest.approx(y1 - y0)


def test_ken_burns_missing_input_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        ken_burns.render_ken_burns(str(tmp_path / "nope.png"), str(tmp_path / "out.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_ken_burns_unreadable_input_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="cannot read image"):
        ken_burns.render_ken_burns(str(bad), str(tmp_path / "out.mp4"))
    assert [p.name for p in tmp_path.iterdir()] == ["bad.png"]


@pytest.mark.skipif(os.name != "posix", reason="fake ffmpeg is a shell script")
@pytest.mark.parametrize(
    "body",
    [
        "echo 'x264 [error]: boom' >&2; exit 3",  # dies before reading: broken pipe
        "cat >/dev/null; echo 'x264 [error]: boom' >&2; exit 3",  # reads everything first
    ],
)
def test_ken_burns_ffmpeg_failure_raises_with_stderr(
    tmp_path: Path, small_png: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    fake = _fake_ffmpeg(tmp_path, body)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: fake)
    out_dir = tmp_path / "out"
    with pytest.raises(RuntimeError, match=r"exit 3.*boom"):
        ken_burns.render_ken_burns(str(small_png), str(out_dir / "clip.mp4"), size=64)
    assert list(out_dir.iterdir()) == []


def test_ken_burns_rejects_bad_numbers(tmp_path: Path, small_png: Path) -> None:
    with pytest.raises(ValueError, match="seconds"):
        ken_burns.render_ken_burns(str(small_png), str(tmp_path / "o.mp4"), seconds=0)


# ---------------------------------------------------------------- contact sheet


def _sheet(out: Path, items: list[tuple[str, str]], thumb: int = 64) -> Image.Image:
    result = sheet.render_contact_sheet(items, str(out), title="Retro cats", thumb=thumb)
    assert result == str(out)
    return _open(out)


def test_contact_sheet_grid_grows_with_item_count(tmp_path: Path, small_png: Path) -> None:
    size = {
        n: _sheet(tmp_path / f"{n}.png", [(f"item {i}", str(small_png)) for i in range(n)]).size
        for n in (1, 2, 4, 5, 9, 10, 50)
    }
    widths = {n: w for n, (w, _) in size.items()}
    heights = {n: h for n, (_, h) in size.items()}
    # columns = ceil(sqrt(n)): 1, 2, 2, 3, 3, 4, 8
    assert widths[1] < widths[2] == widths[4] < widths[5] == widths[9] < widths[10] < widths[50]
    # rows: 1, 1, 2, 2, 3, 3, 7
    assert heights[1] == heights[2] < heights[4] == heights[5] < heights[9] == heights[10]
    assert heights[10] < heights[50]


def test_contact_sheet_thumb_size_scales_the_sheet(tmp_path: Path, small_png: Path) -> None:
    small = _sheet(tmp_path / "a.png", [("x", str(small_png))] * 4, thumb=64)
    big = _sheet(tmp_path / "b.png", [("x", str(small_png))] * 4, thumb=128)
    assert big.width > small.width * 1.8
    assert big.height > small.height * 1.5


def _placeholder_pixels(img: Image.Image) -> int:
    colors = img.getcolors(maxcolors=img.width * img.height) or []
    return sum(count for count, color in colors if color == sheet.PLACEHOLDER_COLOR)


def test_missing_or_broken_image_becomes_a_placeholder(tmp_path: Path, small_png: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    thumb = 128
    sheet = _sheet(
        tmp_path / "sheet.png",
        [("ghost", str(tmp_path / "missing.png")), ("broken", str(broken)), ("ok", str(small_png))],
        thumb=thumb,
    )
    assert _placeholder_pixels(sheet) > 2 * 0.8 * thumb * thumb  # two grey tiles
    real = _sheet(tmp_path / "real.png", [("ok", str(small_png))], thumb=thumb)
    assert _placeholder_pixels(real) == 0


def test_contact_sheet_long_names_and_empty_list(tmp_path: Path, product_png: Path) -> None:
    _sheet(tmp_path / "s.png", [("a very long product name " * 20, str(product_png))], thumb=256)
    with pytest.raises(ValueError, match="at least one"):
        sheet.render_contact_sheet([], str(tmp_path / "empty.png"), title="t")
    assert [p.name for p in tmp_path.iterdir()] == ["s.png"]


# ---------------------------------------------------------------- process pool


@pytest.mark.parametrize(
    "fn",
    [product_image.render_product_image, ken_burns.render_ken_burns, sheet.render_contact_sheet],
)
def test_render_functions_pickle(fn: Callable[..., str]) -> None:
    assert pickle.loads(pickle.dumps(fn)) is fn


def test_runs_in_a_process_pool(tmp_path: Path) -> None:
    out = tmp_path / "pool.png"
    with ProcessPoolExecutor(max_workers=1) as pool:
        future = pool.submit(
            product_image.render_product_image,
            str(out),
            name="Pool",
            product_type="cap",
            tagline="",
            style="minimal",
            seed=3,
            size=256,
        )
        assert future.result(timeout=60) == str(out)
    with Image.open(out) as im:
        assert im.size == (256, 256)
