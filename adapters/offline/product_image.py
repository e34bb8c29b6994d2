"""Offline product mock-ups: a deterministic PNG per product (Pillow).

`render_product_image` is picklable, synchronous and top-level, for a process
pool or Ray tasks; it writes its output atomically and returns the path.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

from adapters.pictures.text import (
    RGB,
    Box,
    Ink,
    draw_lines,
    ellipsize,
    fit_text,
    load_font,
    save_png,
    text_w,
)


@dataclass(frozen=True)
class Palette:
    """Colours of one style: gradient ends, shape accents, product and text colours."""

    top: RGB
    bottom: RGB
    accents: tuple[RGB, ...]
    products: tuple[RGB, ...]
    ink: RGB
    panel: tuple[int, int, int, int]
    blur: float = 0.0


# fmt: off
PALETTES: dict[str, Palette] = {
    "photo": Palette((232, 235, 240), (140, 150, 166),
                     ((255, 255, 255), (200, 210, 225), (120, 135, 160), (250, 230, 200)),
                     ((38, 70, 115), (180, 40, 50), (30, 30, 34), (235, 235, 235)),
                     (20, 24, 32), (255, 255, 255, 190), 8.0),
    "minimal": Palette((250, 250, 248), (228, 228, 224),
                       ((20, 20, 20), (200, 200, 196), (230, 90, 60)),
                       ((25, 25, 25), (240, 240, 240), (230, 90, 60)),
                       (15, 15, 15), (255, 255, 255, 220)),
    "vintage": Palette((243, 226, 190), (196, 150, 100),
                       ((200, 140, 50), (160, 70, 45), (60, 110, 110), (110, 80, 55)),
                       ((150, 60, 40), (45, 95, 95), (210, 160, 60)),
                       (60, 35, 20), (250, 238, 210, 200)),
    "neon": Palette((10, 8, 30), (60, 10, 80),
                    ((255, 40, 170), (0, 240, 255), (170, 255, 0), (255, 220, 0)),
                    ((255, 40, 170), (0, 240, 255), (170, 255, 0)),
                    (245, 245, 255), (15, 10, 40, 200)),
    "watercolor": Palette((235, 244, 250), (250, 228, 236),
                          ((120, 180, 230), (240, 150, 180), (170, 220, 170), (250, 210, 140)),
                          ((90, 140, 200), (220, 110, 150), (110, 170, 120)),
                          (50, 60, 80), (255, 255, 255, 170), 14.0),
}
DEFAULT_PALETTE = Palette((70, 110, 200), (240, 120, 110),
                          ((255, 255, 255), (255, 210, 90), (40, 50, 90), (120, 220, 200)),
                          ((250, 250, 250), (35, 40, 70), (255, 200, 60)),
                          (20, 22, 40), (255, 255, 255, 200))
# fmt: on


def _gradient(size: int, top: RGB, bottom: RGB, flip: bool) -> Image.Image:
    mask = Image.linear_gradient("L").resize((size, size), Image.Resampling.BILINEAR)
    if flip:
        mask = mask.transpose(Image.Transpose.ROTATE_90)
    return Image.composite(
        Image.new("RGB", (size, size), bottom), Image.new("RGB", (size, size), top), mask
    )


def _draw_shape(draw: ImageDraw.ImageDraw, rng: random.Random, size: int, fill: Ink) -> None:
    kind = rng.choice(("circle", "rect", "polygon", "stripes"))
    cx, cy = rng.uniform(0, size), rng.uniform(0, size)
    r = rng.uniform(0.04, 0.22) * size
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif kind == "rect":
        draw.rounded_rectangle(
            (cx - r, cy - r * 0.6, cx + r, cy + r * 0.6), radius=r * rng.uniform(0, 0.3), fill=fill
        )
    elif kind == "polygon":
        draw.regular_polygon(
            (cx, cy, r), rng.randint(3, 7), rotation=rng.uniform(0, 360), fill=fill
        )
    else:
        step, band = rng.uniform(0.06, 0.12) * size, rng.uniform(0.015, 0.04) * size
        for i in range(rng.randint(2, 5)):
            x = cx + i * step - size
            draw.polygon(
                [(x, 0), (x + band, 0), (x + band + size, size), (x + size, size)], fill=fill
            )


def _shapes_layer(size: int, palette: Palette, rng: random.Random) -> Image.Image:
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.randint(8, 16)):
        _draw_shape(draw, rng, size, (*rng.choice(palette.accents), rng.randint(50, 150)))
    if not palette.blur:
        return layer
    # Blur premultiplied at half size: no dark fringes, and about 4x cheaper.
    half = layer.convert("RGBa").resize((size // 2, size // 2), Image.Resampling.BILINEAR)
    half = half.filter(ImageFilter.GaussianBlur(palette.blur / 2))
    return half.resize((size, size), Image.Resampling.BILINEAR).convert("RGBA")


def _pts(b: Box, xy: tuple[float, ...]) -> list[tuple[float, float]]:
    """Map flat normalised (x, y, x, y, ...) into the box."""
    return [(b[0] + x * b[2], b[1] + y * b[3]) for x, y in zip(xy[::2], xy[1::2], strict=True)]


# (kind, "f"ill or "d"etail colour, normalised coords, extra) - extra is a radius or
# line width as a fraction of the box, or (start, end[, width]) angles for arcs.
Op = tuple[str, str, tuple[float, ...], tuple[float, ...]]
# fmt: off
_SHAPES: dict[str, tuple[Op, ...]] = {
    "tshirt": (("poly", "f", (.35, .08, .05, .22, .15, .42, .25, .36, .25, .95, .75, .95, .75,
                              .36, .85, .42, .95, .22, .65, .08, .58, .15, .5, .17, .42, .15), ()),
               ("arc", "d", (.38, -.02, .62, .2), (20, 160, .015))),
    "hoodie": (("ellipse", "f", (.32, 0, .68, .3), ()),
               ("poly", "f", (.35, .12, .12, .22, .04, .85, .16, .87, .24, .42, .24, .95, .76,
                              .95, .76, .42, .84, .87, .96, .85, .88, .22, .65, .12), ()),
               ("rect", "d", (.35, .64, .65, .82), (.03,)),
               ("line", "d", (.45, .2, .45, .4), (.01,)),
               ("line", "d", (.55, .2, .55, .4), (.01,))),
    "mug": (("ring", "f", (.58, .33, .92, .73), (.07,)),
            ("rect", "f", (.15, .2, .7, .92), (.06,)),
            ("ellipse", "d", (.15, .16, .7, .26), ())),
    "poster": (("rect", "f", (.16, .04, .84, .96), (0,)),
               ("rect", "d", (.22, .1, .78, .9), (0,)),
               ("poly", "f", (.22, .9, .42, .55, .55, .72, .64, .6, .78, .9), ()),
               ("ellipse", "f", (.6, .2, .72, .32), ())),
    "tote": (("arc", "f", (.28, .06, .66, .62), (180, 360, .035)),
             ("arc", "f", (.34, .06, .72, .62), (180, 360, .035)),
             ("poly", "f", (.15, .34, .85, .34, .9, .95, .1, .95), ()),
             ("line", "d", (.15, .42, .85, .42), (.01,))),
    "phone": (("rect", "f", (.3, .03, .7, .97), (.08,)),
              ("rect", "d", (.35, .08, .52, .25), (.035,)),
              ("ellipse", "f", (.38, .1, .44, .16), ()),
              ("ellipse", "f", (.38, .17, .44, .23), ())),
    "sticker": (("ellipse", "d", (.08, .08, .92, .92), ()),
                ("ellipse", "f", (.12, .12, .88, .88), ()),
                ("poly", "d", (.5, .28, .7, .5, .5, .72, .3, .5), ()),
                ("poly", "d", (.72, .72, .88, .6, .62, .88), ())),
    "cap": (("pie", "f", (.12, .22, .82, .92), (180, 360)),
            ("ellipse", "f", (.4, .5, 1, .64), ()),
            ("line", "d", (.12, .57, .82, .57), (.015,)),
            ("ellipse", "d", (.44, .19, .5, .25), ())),
    "notebook": (("rect", "f", (.22, .05, .8, .95), (.03,)),
                 *(("ring", "d", (.19, .1 + i * .095, .25, .14 + i * .095), (.008,))
                   for i in range(9)),
                 ("rect", "d", (.7, .05, .73, .95), (0,))),
    "socks": (("poly", "f", (.32, .05, .6, .05, .6, .58, .88, .72, .9, .88, .8, .95, .45, .95,
                             .32, .84), ()),
              ("rect", "d", (.32, .05, .6, .16), (0,)),
              ("pie", "d", (.76, .72, .94, .95), (270, 90))),
    "generic": (("rect", "f", (.14, .14, .86, .86), (.1,)),
                ("rect", "d", (.26, .4, .74, .6), (.05,))),
}
# Word starts that pick a shape, most specific first ("sweatshirt" is a hoodie).
_KEYWORDS: dict[str, str] = {
    "hood": "hoodie", "sweat": "hoodie", "tshirt": "tshirt", "shirt": "tshirt", "tee": "tshirt",
    "mug": "mug", "cup": "mug", "poster": "poster", "print": "poster", "tote": "tote",
    "bag": "tote", "phone": "phone", "case": "phone", "sticker": "sticker", "decal": "sticker",
    "cap": "cap", "hat": "cap", "notebook": "notebook", "journal": "notebook", "sock": "socks",
}
# fmt: on


def shape_kind(product_type: str) -> str:
    """Silhouette used for a product type; unknown types get "generic" (a rounded rect)."""
    text = re.sub(r"[^a-z]+", " ", product_type.lower())
    return next(
        (kind for word, kind in _KEYWORDS.items() if re.search(rf"(?<![a-z]){word}", text)),
        "generic",
    )


def _draw_op(d: ImageDraw.ImageDraw, op: Op, b: Box, ink: Ink) -> None:
    kind, _, xy, extra = op
    pts = _pts(b, xy)
    box = (*pts[0], *pts[-1])
    width = max(2, int(b[2] * extra[-1])) if extra else 0
    if kind == "poly":
        d.polygon(pts, fill=ink)
    elif kind == "line":
        d.line(pts, fill=ink, width=width)
    elif kind == "ellipse":
        d.ellipse(box, fill=ink)
    elif kind == "ring":
        d.ellipse(box, outline=ink, width=width)
    elif kind == "rect":
        d.rounded_rectangle(box, radius=b[2] * extra[0], fill=ink)
    elif kind == "arc":
        d.arc(box, extra[0], extra[1], fill=ink, width=width)
    else:
        d.pieslice(box, extra[0], extra[1], fill=ink)


def _draw_shape_ops(d: ImageDraw.ImageDraw, kind: str, b: Box, fill: Ink, detail: Ink) -> None:
    for op in _SHAPES[kind]:
        _draw_op(d, op, b, fill if op[1] == "f" else detail)


def _draw_product(
    img: Image.Image, product_type: str, palette: Palette, rng: random.Random
) -> None:
    size = img.width
    side = size * 0.5
    box: Box = ((size - side) / 2 + rng.uniform(-0.04, 0.04) * size, size * 0.13, side, side)
    kind = shape_kind(product_type)
    shadow = Image.new("L", (size, size), 0)
    sbox: Box = (box[0] + size * 0.02, box[1] + size * 0.025, side, side)
    _draw_shape_ops(ImageDraw.Draw(shadow), kind, sbox, 255, 255)
    small = shadow.resize((size // 4, size // 4)).filter(ImageFilter.GaussianBlur(4))
    shadow = small.resize((size, size), Image.Resampling.BILINEAR)
    shadow = shadow.point([v * 90 // 255 for v in range(256)])  # soft, ~35% dark
    img.paste((0, 0, 0), (0, 0), shadow)
    fill = rng.choice(palette.products)
    detail = rng.choice([c for c in (*palette.accents, palette.ink) if c != fill])
    _draw_shape_ops(ImageDraw.Draw(img), kind, box, fill, detail)


def _draw_texts(
    img: Image.Image, name: str, product_type: str, tagline: str, palette: Palette
) -> None:
    size = img.width
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    odraw = ImageDraw.Draw(overlay)
    odraw.rounded_rectangle(
        (size * 0.05, size * 0.7, size * 0.95, size * 0.96), radius=size * 0.03, fill=palette.panel
    )
    label_font = load_font(max(10, size // 34))
    label = ellipsize(product_type.strip().upper() or "PRODUCT", label_font, size * 0.4)
    lw = text_w(label_font, label)
    odraw.rounded_rectangle(
        (size * 0.04, size * 0.035, size * 0.04 + lw + size * 0.04, size * 0.085),
        radius=size * 0.025,
        fill=palette.panel,
    )
    img.paste(Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB"))
    draw = ImageDraw.Draw(img)
    draw.text((size * 0.06, size * 0.045), label, font=label_font, fill=palette.ink)
    name_font, name_lines = fit_text(name, size * 0.84, size * 0.15, (size // 10, size // 20), 2)
    y = draw_lines(draw, name_lines, name_font, size / 2, size * 0.72, palette.ink)
    tag_font, tag_lines = fit_text(
        tagline, size * 0.84, size * 0.94 - y, (size // 26, size // 48), 2
    )
    draw_lines(draw, tag_lines, tag_font, size / 2, y + size * 0.01, palette.ink)


def render_product_image(
    out_path: str,
    *,
    name: str,
    product_type: str,
    tagline: str,
    style: str,
    seed: int,
    size: int = 1024,
) -> str:
    """Draw a size x size PNG product mock-up.

    Layout comes from a ``random.Random`` seeded with seed and the other arguments, so the
    same arguments give byte-identical files. Unknown styles use ``DEFAULT_PALETTE``.
    """
    if size < 64:
        raise ValueError(f"size must be at least 64 px, got {size}")
    palette = PALETTES.get(style.strip().lower(), DEFAULT_PALETTE)
    rng = random.Random(f"{seed}|{name}|{product_type}|{style}")
    img = _gradient(size, palette.top, palette.bottom, rng.random() < 0.5)
    img = Image.alpha_composite(img.convert("RGBA"), _shapes_layer(size, palette, rng))
    img = img.convert("RGB")
    _draw_product(img, product_type, palette, rng)
    _draw_texts(img, name, product_type, tagline, palette)
    return save_png(img, out_path)
