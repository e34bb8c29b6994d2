"""The contact sheet: a grid PNG of a campaign's product thumbnails under a title bar.

`render_contact_sheet` is picklable, synchronous and top-level, for a process
pool or Ray tasks; it writes its output atomically and returns the path.
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from adapters.pictures.text import (
    READ_ERRORS,
    RGB,
    draw_lines,
    ellipsize,
    font_size,
    load_font,
    save_png,
)

PLACEHOLDER_COLOR: RGB = (150, 150, 150)


def _thumbnail(path: str, thumb: int) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            im.draft("RGB", (thumb, thumb))
            small = im.convert("RGB")
    except READ_ERRORS:
        return None
    small.thumbnail((thumb, thumb), Image.Resampling.BILINEAR)
    return small


def _placeholder(thumb: int) -> Image.Image:
    img = Image.new("RGB", (thumb, thumb), PLACEHOLDER_COLOR)
    draw = ImageDraw.Draw(img)
    font = load_font(max(10, thumb // 8))
    draw.line((0, 0, thumb, thumb), fill=(170, 170, 170), width=2)
    draw.line((0, thumb, thumb, 0), fill=(170, 170, 170), width=2)
    draw_lines(draw, ["missing"], font, thumb / 2, thumb / 2 - thumb / 16, (60, 60, 60))
    return img


def render_contact_sheet(
    items: list[tuple[str, str]], out_path: str, *, title: str, thumb: int = 256
) -> str:
    """Grid PNG of (name, image_path) items with their names under each thumbnail and a title bar.

    Columns: ceil(sqrt(n)). Missing or unreadable images become grey "missing" placeholders.
    """
    if not items:
        raise ValueError("contact sheet needs at least one item")
    if thumb < 32:
        raise ValueError(f"thumb must be at least 32 px, got {thumb}")
    cols = math.ceil(math.sqrt(len(items)))
    rows = math.ceil(len(items) / cols)
    pad, label_h, title_h = thumb // 16, max(16, thumb // 8), max(40, thumb // 4)
    cell_w, cell_h = thumb + pad, thumb + label_h + pad
    sheet = Image.new("RGB", (cols * cell_w + pad, title_h + rows * cell_h + pad), (245, 245, 242))
    draw = ImageDraw.Draw(sheet)
    draw.rectangle((0, 0, sheet.width, title_h), fill=(30, 34, 48))
    title_font = load_font(max(12, title_h // 2))
    draw.text(
        (pad, (title_h - font_size(title_font) * 1.2) / 2),
        ellipsize(title, title_font, sheet.width - 2 * pad),
        font=title_font,
        fill=(255, 255, 255),
    )
    label_font = load_font(max(10, label_h * 5 // 8))
    for i, (name, path) in enumerate(items):
        x = pad + (i % cols) * cell_w
        y = title_h + pad + (i // cols) * cell_h
        img = _thumbnail(path, thumb) or _placeholder(thumb)
        draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=(225, 225, 222))
        sheet.paste(img, (x + (thumb - img.width) // 2, y + (thumb - img.height) // 2))
        label = ellipsize(name, label_font, thumb)
        draw_lines(draw, [label], label_font, x + thumb / 2, y + thumb + label_h / 8, (30, 30, 30))
    return save_png(sheet, out_path)
