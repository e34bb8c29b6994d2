"""The campaign reel, in parts: a title card and each clip prepared alone, then one join.

Every part is encoded to the same frame, rate and H.264 settings (x264
`stitchable`, so every part has the same stream headers), which lets the join
be a stream copy (ffmpeg's concat demuxer, `-c copy`): milliseconds, however
many parts, with no second encode. The card and the captions are drawn with
Pillow (no ffmpeg font support needed). A clip is letterboxed to the frame,
captioned with its product name and cut to `max_s`.

`prepare_card`, `prepare_clip` and `join_parts` are picklable, synchronous
and top-level, for a process pool or Ray tasks (never the event loop); each
writes its output atomically and returns the path. A part is named after
what it was made from, so one that exists already (an earlier run of the
same campaign) is used as it is. `render_reel` chains them in one call.

The frame is 960x540 at 24 fps: a 12-clip reel stays well under Discord's
10 MiB default upload limit. Preparing a 2 s clip takes ~0.3 s on one core,
a 5 s one ~0.8 s; joining takes ~20 ms. ffmpeg is the binary of the pinned
imageio-ffmpeg wheel (`imageio_ffmpeg.get_ffmpeg_exe()`; `IMAGEIO_FFMPEG_EXE`
overrides it).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg
from PIL import Image, ImageDraw

from adapters.files import atomic_path
from adapters.pictures.text import draw_lines, fit_text

TIMEOUT_S = 600.0
PRESET = "veryfast"  # x264: ~2x slower than ultrafast, files ~2x smaller
FRAME = (960, 540)
FPS = 24
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_PART = 1  # bump when the encoding below changes: parts made before are not reused


def _card(path: str, size: tuple[int, int], title: str, subtitle: str) -> None:
    """The opening title card: the theme, large, on a dark gradient."""
    w, h = size
    img = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    img = Image.blend(Image.new("RGB", (w, h), (18, 20, 36)), img, 0.18)
    draw = ImageDraw.Draw(img)
    font, lines = fit_text(title, w * 0.84, h * 0.45, (max(24, h // 7), 18), 3)
    bottom = draw_lines(draw, lines, font, w / 2, h * 0.28, (255, 255, 255))
    if subtitle:
        small, sub = fit_text(subtitle, w * 0.84, h * 0.12, (max(14, h // 22), 12), 1)
        draw_lines(draw, sub, small, w / 2, bottom + h * 0.05, (200, 205, 220))
    img.save(path)


def _caption(path: str, size: tuple[int, int], text: str) -> None:
    """A transparent frame with the product name on a translucent band at the bottom."""
    w, h = size
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    band = max(28, h // 9)
    draw.rectangle((0, h - band, w, h), fill=(0, 0, 0, 150))
    font, lines = fit_text(text, w * 0.9, band * 0.8, (max(14, band * 3 // 5), 10), 1)
    draw_lines(draw, lines, font, w / 2, h - band + band * 0.12, (255, 255, 255, 255))
    img.save(path)


def _encode(fps: int, frames: int, out: str) -> list[str]:
    """The output half of every part's command: the same stream settings for all."""
    return [
        "-an", "-frames:v", str(frames), "-c:v", "libx264", "-preset", PRESET, "-crf", "23",
        "-x264-params", "stitchable=1", "-pix_fmt", "yuv420p", "-r", str(fps),
        "-video_track_timescale", str(fps * 512), "-f", "mp4", out,
    ]  # fmt: skip


def _check(size: tuple[int, int], fps: int, seconds: float) -> None:
    if size[0] % 2 or size[1] % 2 or fps <= 0 or seconds <= 0:
        raise ValueError(f"need even frame sizes, fps > 0, seconds > 0 (got {size}, {fps})")


def _part_path(folder: str, stem: str, *facts: object) -> str:
    """Where a part made from `facts` goes: named by a hash of them, so it can be reused."""
    digest = hashlib.sha1(repr((_PART, *facts)).encode()).hexdigest()[:12]
    return os.path.join(folder, f"{stem}-{digest}.mp4")


def _fresh(part: str, source: str | None = None) -> bool:
    """Whether a part exists already (and is newer than its source)."""
    try:
        made = os.path.getmtime(part)
        return source is None or made >= os.path.getmtime(source)
    except OSError:
        return False


def prepare_card(
    folder: str,
    *,
    title: str,
    subtitle: str = "",
    seconds: float = 1.5,
    size: tuple[int, int] = FRAME,
    fps: int = FPS,
) -> str:
    """The title card as a part of `seconds` in `folder`; returns its path."""
    _check(size, fps, seconds)
    out = _part_path(folder, "card", title, subtitle, seconds, size, fps)
    if _fresh(out):
        return out
    with tempfile.TemporaryDirectory() as work, atomic_path(out) as tmp:
        card = os.path.join(work, "card.png")
        _card(card, size, title, subtitle)
        frames = max(1, round(seconds * fps))
        _run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
                "-loop", "1", "-framerate", str(fps), "-i", card,
                "-vf", f"scale={size[0]}:{size[1]},setsar=1,format=yuv420p",
                *_encode(fps, frames, tmp),
            ]
        )  # fmt: skip
    return out


def prepare_clip(
    clip: str,
    folder: str,
    *,
    caption: str,
    max_s: float,
    size: tuple[int, int] = FRAME,
    fps: int = FPS,
) -> str:
    """One clip as a part in `folder`: letterboxed to `size`, captioned, cut to `max_s`.

    A missing clip raises FileNotFoundError, an MP4 that cannot play
    ValueError, ffmpeg failing RuntimeError with its output.
    """
    _check(size, fps, max_s)
    if not os.path.isfile(clip):
        raise FileNotFoundError(f"clip not found: {clip!r}")
    if not _playable(clip):
        raise ValueError(f"not a playable MP4 (no moov box): {clip!r}")
    source = os.path.abspath(clip)
    out = _part_path(folder, Path(clip).stem, source, caption, max_s, size, fps)
    if _fresh(out, source):
        return out
    w, h = size
    fit = (
        f"[0:v]scale={w}:{h}:force_original_aspect_ratio=decrease,"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,fps={fps}[s];"
        "[s][1:v]overlay=0:0,format=yuv420p[out]"
    )
    with tempfile.TemporaryDirectory() as work, atomic_path(out) as tmp:
        overlay = os.path.join(work, "caption.png")
        _caption(overlay, size, caption)
        frames = max(1, math.floor(max_s * fps + 1e-6))
        _run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
                "-i", clip, "-i", overlay, "-filter_complex", fit, "-map", "[out]",
                *_encode(fps, frames, tmp),
            ]
        )  # fmt: skip
    return out


def join_parts(parts: Sequence[str], out_path: str) -> str:
    """Join prepared parts, in order, into one MP4 by stream copy (no encode)."""
    if not parts:
        raise ValueError("a reel needs at least one part")
    for part in parts:
        if not os.path.isfile(part):
            raise FileNotFoundError(f"part not found: {part!r}")
    with tempfile.TemporaryDirectory() as work, atomic_path(out_path) as tmp:
        listing = os.path.join(work, "parts.txt")
        with open(listing, "w", encoding="utf-8") as f:
            for part in parts:  # the concat list quotes with ' (escaped as '\'')
                quoted = os.path.abspath(part).replace("'", "'\\''")
                f.write(f"file '{quoted}'\n")
        _run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
                "-f", "concat", "-safe", "0", "-i", listing, "-map", "0:v", "-c", "copy",
                "-movflags", "+faststart", "-f", "mp4", tmp,
            ]
        )  # fmt: skip
    return out_path


def render_reel(
    clips: Sequence[tuple[str, str]],
    out_path: str,
    *,
    title: str,
    subtitle: str = "",
    title_s: float = 1.5,
    clip_s: float = 4.875,
    size: tuple[int, int] = FRAME,
    fps: int = FPS,
) -> str:
    """(caption, clip path) pairs after a title card, in one call (parts next to the output).

    What the service does in steps, for benchmarks and scripts: the card and
    each clip (cut to `clip_s`) prepared, then joined by stream copy.
    """
    if not clips:
        raise ValueError("a reel needs at least one clip")
    folder = os.path.join(os.path.dirname(os.path.abspath(out_path)), "reel-parts")
    card = prepare_card(folder, title=title, subtitle=subtitle, seconds=title_s, size=size, fps=fps)
    parts = [card]
    for caption, path in clips:
        parts.append(prepare_clip(path, folder, caption=caption, max_s=clip_s, size=size, fps=fps))
    return join_parts(parts, out_path)


def _playable(path: str) -> bool:
    """False for an ISO media file (MP4, MOV) without a `moov` box: nothing ffmpeg can play.

    Reads the top-level box headers only, so a broken download fails here in
    microseconds rather than after an ffmpeg start. A file that does not
    start with an `ftyp` box (WebM, ...) is left to ffmpeg.
    """
    with open(path, "rb") as f:
        end = os.fstat(f.fileno()).st_size
        offset, first = 0, True
        while offset + 8 <= end:
            f.seek(offset)
            head = f.read(16)
            size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if first and kind != b"ftyp":
                return True
            if kind == b"moov":
                return True
            if size == 1 and len(head) == 16:  # a 64-bit size follows the type
                size = int.from_bytes(head[8:16], "big")
            if size < 8:  # 0: to the end of the file; smaller: broken
                return False
            offset, first = offset + size, False
    return False


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"ffmpeg timed out after {TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        tail = " | ".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[-6:])
        raise RuntimeError(f"ffmpeg failed (exit {done.returncode}): {tail or '(no output)'}")


def video_seconds(path: str) -> float:
    """A video's duration as ffmpeg reads it (RuntimeError if it cannot)."""
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", path],
        capture_output=True,
        timeout=60,
        check=False,
    )
    found = _DURATION.search(done.stderr.decode("utf-8", "replace"))
    if found is None:
        raise RuntimeError(f"ffmpeg cannot read {path!r}")
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
