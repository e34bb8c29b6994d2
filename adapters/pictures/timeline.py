"""Timeline pictures: one row per product, one bar per step, coloured by kind.

The same renderer draws a finished campaign's timeline (posted with its
summary, saved in its folder) and the benchmark's Gantt chart (several
panels on one time axis, a marker line for the critical path).
`render_timeline` is picklable, synchronous and top-level, for a process pool
or Ray tasks; it writes its output atomically and returns the path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw

from adapters.pictures.text import (
    RGB,
    Font,
    ellipsize,
    font_size,
    load_font,
    save_png,
    text_w,
)

Bar = tuple[str, str, float, float, str]
"""(row label, kind, start s, end s, status): kind is plan/text, image, video or finalize/cpu."""
Panel = tuple[str, Sequence[Bar]]
"""(panel title, its bars); rows appear in the order their first bar does."""

KIND_COLORS: dict[str, RGB] = {
    "plan": (148, 103, 189),
    "text": (148, 103, 189),
    "image": (31, 119, 180),
    "video": (255, 127, 14),
    "finalize": (44, 160, 44),
    "cpu": (44, 160, 44),
}
OTHER: RGB = (127, 127, 127)
FAILED: RGB = (214, 39, 40)
MARKER: RGB = (60, 60, 60)  # not the failed red: a line, not an outcome
INK: RGB = (30, 30, 30)
GRID: RGB = (225, 225, 225)
WIDTH, ROW_H, LABEL_W, PAD = 1100, 22, 190, 14


def _ticks(span: float) -> list[float]:
    """About eight round tick positions from 0 to span (1, 2 or 5 times a power of ten)."""
    raw = max(span, 1e-9) / 8
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(span / step) + 1)]


def _tick_text(t: float) -> str:
    if t >= 120:
        return f"{t / 60:.0f} min" if t % 60 == 0 else f"{t / 60:.1f} min"
    return f"{t:g} s"


def _legend(draw: ImageDraw.ImageDraw, kinds: list[str], y: int, marker: str) -> None:
    font = load_font(12)
    x = LABEL_W
    entries = [(k, KIND_COLORS.get(k, OTHER)) for k in kinds] + [("failed", FAILED)]
    if marker:
        entries.append((marker, MARKER))
    for label, color in entries:
        draw.rectangle((x, y + 3, x + 12, y + 15), fill=color)
        draw.text((x + 17, y + 1), label, font=font, fill=INK)
        x += 17 + int(text_w(font, label)) + 18


def render_timeline(
    panels: Sequence[Panel],
    out_path: str,
    *,
    title: str,
    axis_label: str = "seconds since the campaign started",
    marker: tuple[float, str] | None = None,
) -> str:
    """PNG of every panel's bars on one shared time axis; returns `out_path`.

    A bar whose status is failed (or canceled) is drawn in red (or hollow).
    `marker`: (seconds, label) of a dashed vertical line, e.g. the critical path.
    """
    bars = [bar for _, panel in panels for bar in panel]
    if not bars:
        raise ValueError("a timeline needs at least one bar")
    span = max(max(b[3] for b in bars), marker[0] if marker else 0.0) * 1.04 or 1.0
    rows = [list(dict.fromkeys(b[0] for b in panel)) for _, panel in panels]
    head, panel_head, axis_h, legend_h = 44, 26, 40, 26
    height = head + legend_h + sum(panel_head + len(r) * ROW_H + 8 for r in rows) + axis_h
    img = Image.new("RGB", (WIDTH, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    big, small = load_font(18), load_font(12)
    draw.text((PAD, 12), ellipsize(title, big, WIDTH - 2 * PAD), font=big, fill=INK)
    kinds = list(dict.fromkeys(b[1] for b in bars))
    _legend(draw, kinds, head, marker[1] if marker else "")
    plot_w = WIDTH - LABEL_W - PAD

    def x_of(t: float) -> float:
        return LABEL_W + t / span * plot_w

    y = top = head + legend_h
    titles: list[tuple[int, int]] = []  # the panels' title bands: no grid or marker over them
    for (panel_title, panel), names in zip(panels, rows, strict=True):
        line = ellipsize(panel_title, small, WIDTH - 2 * PAD)
        draw.text((PAD, y + 6), line, font=small, fill=(90, 90, 90))
        titles.append((y, y + panel_head))
        y += panel_head
        _rows(draw, names, y, small)
        _bars(draw, panel, names, y, x_of)
        y += len(names) * ROW_H + 8
    _axis(draw, span, top, y, x_of, small)
    if marker:
        _marker(draw, x_of(marker[0]), top, y, titles)
    draw.text((LABEL_W, y + 20), axis_label, font=small, fill=(90, 90, 90))
    return save_png(img, out_path)


def _rows(draw: ImageDraw.ImageDraw, names: Sequence[str], y: int, font: Font) -> None:
    """A panel's row labels, every other row shaded."""
    for i, name in enumerate(names):
        row_y = y + i * ROW_H
        if i % 2 == 0:
            draw.rectangle((LABEL_W, row_y, WIDTH - PAD, row_y + ROW_H - 1), fill=(248, 248, 248))
        label = ellipsize(name, font, LABEL_W - 2 * PAD)
        draw.text((PAD, row_y + (ROW_H - font_size(font)) / 2 - 1), label, font=font, fill=INK)


def _bars(
    draw: ImageDraw.ImageDraw,
    panel: Sequence[Bar],
    names: Sequence[str],
    y: int,
    x_of: Callable[[float], float],
) -> None:
    """A panel's bars: filled by kind, red when failed, hollow when canceled or skipped."""
    for row, kind, start, end, status in panel:
        row_y = y + names.index(row) * ROW_H
        box = (x_of(start), row_y + 4, max(x_of(end), x_of(start) + 2), row_y + ROW_H - 4)
        color = KIND_COLORS.get(kind, OTHER)
        if status == "failed":
            draw.rectangle(box, fill=FAILED)
        elif status in ("canceled", "skipped"):
            draw.rectangle(box, outline=color, width=2)
        else:
            draw.rectangle(box, fill=color)


def _axis(
    draw: ImageDraw.ImageDraw,
    span: float,
    top: int,
    bottom: int,
    x_of: Callable[[float], float],
    font: Font,
) -> None:
    """The time grid and its tick labels under the last panel."""
    for t in _ticks(span):
        x = x_of(t)
        draw.line((x, top, x, bottom), fill=GRID)
        text = _tick_text(t)
        draw.text((x - text_w(font, text) / 2, bottom + 4), text, font=font, fill=INK)


def _marker(
    draw: ImageDraw.ImageDraw, x: float, top: int, bottom: int, titles: Sequence[tuple[int, int]]
) -> None:
    """A dashed vertical line at `x`, kept off the panels' title bands."""
    for dash in range(top, bottom, 8):
        if not any(low <= dash < high for low, high in titles):
            draw.line((x, dash, x, min(dash + 4, bottom)), fill=MARKER, width=2)
