"""The picture renderers, loading Pillow and ffmpeg only when one runs.

Each is a top-level function (picklable for the CPU pool and Ray) that imports
its renderer when called, in the worker that draws; wiring them, as every
command does, loads nothing. Arguments are those of the renderer named.
`PICTURES` is the bundle bot.py hands the service.
"""

from __future__ import annotations

from typing import Any

from core.pictures import Pictures, ReelFns


def render_contact_sheet(*args: Any, **kwargs: Any) -> str:
    """`adapters.pictures.sheet.render_contact_sheet`."""
    from adapters.pictures.sheet import render_contact_sheet as render

    return render(*args, **kwargs)


def render_timeline(*args: Any, **kwargs: Any) -> str:
    """`adapters.pictures.timeline.render_timeline`."""
    from adapters.pictures.timeline import render_timeline as render

    return render(*args, **kwargs)


def prepare_card(*args: Any, **kwargs: Any) -> str:
    """`adapters.pictures.reel.prepare_card`."""
    from adapters.pictures.reel import prepare_card as render

    return render(*args, **kwargs)


def prepare_clip(*args: Any, **kwargs: Any) -> str:
    """`adapters.pictures.reel.prepare_clip`."""
    from adapters.pictures.reel import prepare_clip as render

    return render(*args, **kwargs)


def join_parts(*args: Any, **kwargs: Any) -> str:
    """`adapters.pictures.reel.join_parts`."""
    from adapters.pictures.reel import join_parts as render

    return render(*args, **kwargs)


PICTURES = Pictures(
    sheet=render_contact_sheet,
    timeline=render_timeline,
    reel=ReelFns(card=prepare_card, clip=prepare_clip, join=join_parts),
)
