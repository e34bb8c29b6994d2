"""The contact sheet: a grid PNG of a campaign's products under a title bar.

Every product gets a cell, whatever became of it: a failed or canceled one is
marked with a coloured band (and a placeholder when it has no image), a
product with a video carries a play badge. `render_contact_sheet` is
picklable, synchronous and top-level, for a process pool or Ray tasks; it
writes its output atomically and returns the path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw

from adapters.pictures.text import (
    READ_ERRORS,
    RGB,
    Font,
    draw_lines,
    ellipsize,
    font_size,
    load_font,
    save_png,
)

PLACEHOLDER_COLOR: RGB = (150, 150, 150)
BACKGROUND: RGB = (245, 245, 242)
TITLE_BAR: RGB = (30, 34, 48)
# Band colour per step status that is not a success (the status words of core.model.StepStatus).
MARKS: dict[str, RGB] = {
    "failed": (200, 40, 50),
    "canceled": (110, 110, 118),
    "skipped": (110, 110, 118),
    "pending": (200, 150, 30),
    "running": (40, 110, 200),
}
VIDEO_BADGE: RGB = (20, 20, 24)

Item = tuple[str, str | None] | tuple[str, str | None, str, bool]
"""(name, image path) or (name, image path or None, status, has a video)."""


def _thumbnail(path: str | None, thumb: int) -> Image.Image | None:
    if path is None:
        return None
    try:
        with Image.open(path) as im:
            im.draft("RGB", (thumb, thumb))
            small = im.convert("RGB")
    except READ_ERRORS:
        return None
    small.thumbnail((thumb, thumb), Image.Resampling.BILINEAR)
    return small


def _placeholder(thumb: int, word: str = "missing") -> Image.Image:
    img = Image.new("RGB", (thumb, thumb), PLACEHOLDER_COLOR)
    draw = ImageDraw.Draw(img)
    font = load_font(max(10, thumb // 8))
    draw.line((0, 0, thumb, thumb), fill=(170, 170, 170), width=2)
    draw.line((0, thumb, thumb, 0), fill=(170, 170, 170), width=2)
    draw_lines(draw, [word], font, thumb / 2, thumb / 2 - thumb / 16, (60, 60, 60))
    return img


def _unpack(item: Item) -> tuple[str, str | None, str, bool]:
    if len(item) == 2:
        return item[0], item[1], "succeeded", False
    return item


def _mark(draw: ImageDraw.ImageDraw, x: int, y: int, thumb: int, status: str) -> None:
    """A band across the bottom of the thumbnail saying what became of the product."""
    color = MARKS.get(status.split()[-1]) if status else None
    if color is None:
        return
    band = max(14, thumb // 7)
    top = y + thumb - band
    draw.rectangle((x, top, x + thumb - 1, y + thumb - 1), fill=color)
    draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), outline=color, width=max(2, thumb // 64))
    font = load_font(max(9, band * 5 // 8))
    draw_lines(draw, [status.upper()], font, x + thumb / 2, top + band / 8, (255, 255, 255))


def _video_badge(draw: ImageDraw.ImageDraw, x: int, y: int, thumb: int) -> None:
    """A round play badge in the thumbnail's top-right corner."""
    r = max(8, thumb // 12)
    cx, cy = x + thumb - r - thumb // 32, y + r + thumb // 32
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=VIDEO_BADGE, outline=(255, 255, 255))
    s = r * 0.5
    draw.polygon([(cx - s * 0.7, cy - s), (cx - s * 0.7, cy + s), (cx + s, cy)], fill="white")


def _title(
    draw: ImageDraw.ImageDraw, width: int, title_h: int, pad: int, texts: tuple[str, str]
) -> None:
    """Title (and an optional smaller subtitle) on the dark bar."""
    draw.rectangle((0, 0, width, title_h), fill=TITLE_BAR)
    title, subtitle = texts
    big: Font = load_font(max(12, title_h // (3 if subtitle else 2)))
    top = (title_h - font_size(big) * 1.2 * (1.8 if subtitle else 1)) / 2
    draw.text((pad, top), ellipsize(title, big, width - 2 * pad), font=big, fill=(255, 255, 255))
    if subtitle:
        small = load_font(max(10, title_h // 5))
        top += font_size(big) * 1.3
        line = ellipsize(subtitle, small, width - 2 * pad)
        draw.text((pad, top), line, font=small, fill=(200, 205, 220))


def _base(path: str | None, size: tuple[int, int]) -> Image.Image | None:
    """An earlier sheet of the same layout to draw over, if it can be read and fits."""
    if path is None:
        return None
    try:
        with Image.open(path) as im:
            if im.size != size:
                return None
            return im.convert("RGB")
    except READ_ERRORS:
        return None


def render_contact_sheet(
    items: Sequence[Item],
    out_path: str,
    *,
    title: str,
    subtitle: str = "",
    thumb: int = 256,
    base: str | None = None,
) -> str:
    """Grid PNG of the products with their names under each thumbnail and a title bar.

    `items`: (name, image path) pairs, or (name, image path or None, status,
    has video) for every product of a campaign: a product that did not succeed
    gets a band naming its status (the colour from its last word: "failed",
    "video failed"); one without a readable image a grey placeholder.
    `subtitle` (e.g. campaign id and cost) goes under the title.
    `base`: a sheet this function rendered earlier from the same items and
    `thumb` (with a subtitle if this one has one): its cells are kept and only
    the title bar is drawn again (no image is read); anything else about it
    (unreadable, another size) falls back to a full render.
    Columns: ceil(sqrt(n)).
    """
    if not items:
        raise ValueError("contact sheet needs at least one item")
    if thumb < 32:
        raise ValueError(f"thumb must be at least 32 px, got {thumb}")
    cols = math.ceil(math.sqrt(len(items)))
    rows = math.ceil(len(items) / cols)
    pad, label_h = thumb // 16, max(16, thumb // 8)
    title_h = max(40, thumb // 4) + (max(14, thumb // 10) if subtitle else 0)
    cell_w, cell_h = thumb + pad, thumb + label_h + pad
    size = (cols * cell_w + pad, title_h + rows * cell_h + pad)
    kept = _base(base, size)
    sheet = kept or Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    _title(draw, sheet.width, title_h, pad, (title, subtitle))
    if kept is not None:
        return save_png(sheet, out_path)
    label_font = load_font(max(10, label_h * 5 // 8))
    for i, item in enumerate(items):
        name, path, status, video = _unpack(item)
        x = pad + (i % cols) * cell_w
        y = title_h + pad + (i // cols) * cell_h
        word = "missing" if status == "succeeded" else "no image"
        img = _thumbnail(path, thumb) or _placeholder(thumb, word)
        draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=(225, 225, 222))
        sheet.paste(img, (x + (thumb - img.width) // 2, y + (thumb - img.height) // 2))
        _mark(draw, x, y, thumb, status)
        if video:
            _video_badge(draw, x, y, thumb)
        label = ellipsize(name, label_font, thumb)
        draw_lines(draw, [label], label_font, x + thumb / 2, y + thumb + label_h / 8, (30, 30, 30))
    return save_png(sheet, out_path)
