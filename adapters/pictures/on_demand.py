"""The picture renderers, loading Pillow and ffmpeg only when one runs.

Each is a top-level function (picklable for the CPU pool and Ray) that imports
its renderer when called, in the worker that draws; wiring them, as every
command does, loads nothing. Arguments are those of the renderer named.
"""

from __future__ import annotations

from typing import Any


def render_contact_sheet(*args: Any, **kwargs: Any) -> str:
    """`adapters.pictures.sheet.render_contact_sheet`."""
    from adapters.pictures.sheet import render_contact_sheet as render

    return render(*args, **kwargs)


def render_timeline(*args: Any, **kwargs: Any) -> str:
    """`adapters.pictures.timeline.render_timeline`."""
    from adapters.pictures.timeline import render_timeline as render

    return render(*args, **kwargs)


def render_reel(*args: Any, **kwargs: Any) -> str:
    """`adapters.pictures.reel.render_reel`."""
    from adapters.pictures.reel import render_reel as render

    return render(*args, **kwargs)
