"""The campaign reel: one promo MP4 joining every product's clip, in order.

A short title card with the theme comes first; each clip follows, letterboxed
to one frame size, with its product name as a caption. Captions and the card
are drawn with Pillow (no ffmpeg font support needed) and laid over the clips
by the bundled ffmpeg in one run. `render_reel` is picklable, synchronous and
top-level, for a process pool or Ray tasks (never the event loop); it writes
its output atomically and returns the path.

The frame is 960x540 by default: a 20-clip reel then stays well under
Discord's 10 MiB default upload limit for typical clips, and renders in about
0.4 s per 3 s clip on 2 cores (8.4 s for 20; 720p takes ~1.7x as long).
ffmpeg is the binary of the pinned imageio-ffmpeg wheel
(`imageio_ffmpeg.get_ffmpeg_exe()`; `IMAGEIO_FFMPEG_EXE` overrides it).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence

import imageio_ffmpeg
from PIL import Image, ImageDraw

from adapters.files import atomic_path
from adapters.pictures.text import draw_lines, fit_text

TIMEOUT_S = 600.0
PRESET = "veryfast"  # x264: ~2x slower than ultrafast, files ~2x smaller
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


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


def _filter(count: int, size: tuple[int, int], fps: int) -> str:
    """Scale and pad every clip, lay its caption over it, then concatenate after the card."""
    w, h = size
    fit = (
        f"scale={w}:{h}:force_original_aspect_ratio=decrease,"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,fps={fps}"
    )
    parts = [f"[0:v]scale={w}:{h},setsar=1,fps={fps},format=yuv420p[v0]"]
    for i in range(1, count + 1):
        clip, caption = 2 * i - 1, 2 * i
        parts.append(f"[{clip}:v]{fit}[s{i}]")
        parts.append(f"[s{i}][{caption}:v]overlay=0:0,format=yuv420p[v{i}]")
    joined = "".join(f"[v{i}]" for i in range(count + 1))
    parts.append(f"{joined}concat=n={count + 1}:v=1:a=0[out]")
    return ";".join(parts)


def render_reel(
    clips: Sequence[tuple[str, str]],
    out_path: str,
    *,
    title: str,
    subtitle: str = "",
    title_s: float = 1.5,
    size: tuple[int, int] = (960, 540),
    fps: int = 24,
) -> str:
    """Join (caption, clip path) pairs after a title card into one H.264 MP4.

    The reel lasts about `title_s` plus the clips' own durations. A missing
    clip raises FileNotFoundError; ffmpeg failing, RuntimeError with its output.
    """
    if not clips:
        raise ValueError("a reel needs at least one clip")
    if size[0] % 2 or size[1] % 2 or title_s <= 0 or fps <= 0:
        raise ValueError(f"need even frame sizes, title_s > 0, fps > 0 (got {size}, {title_s})")
    for _, path in clips:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"clip not found: {path!r}")
        if not _playable(path):
            raise ValueError(f"not a playable MP4 (no moov box): {path!r}")
    with tempfile.TemporaryDirectory() as work, atomic_path(out_path) as tmp:
        card = os.path.join(work, "card.png")
        _card(card, size, title, subtitle)
        inputs = ["-loop", "1", "-framerate", str(fps), "-t", f"{title_s:.3f}", "-i", card]
        for i, (caption, path) in enumerate(clips):
            overlay = os.path.join(work, f"caption{i}.png")
            _caption(overlay, size, caption)
            inputs += ["-i", path, "-i", overlay]
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
            *inputs, "-filter_complex", _filter(len(clips), size, fps), "-map", "[out]", "-an",
            "-c:v", "libx264", "-preset", PRESET, "-crf", "23", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", "-f", "mp4", tmp,
        ]  # fmt: skip
        _run(command)
    return out_path


def _playable(path: str) -> bool:
    """False for an ISO media file (MP4, MOV) without a `moov` box: nothing ffmpeg can play.

    Reads the top-level box headers only, so a broken download fails here in
    microseconds rather than after the title card and an ffmpeg start. A file
    that does not start with an `ftyp` box (WebM, ...) is left to ffmpeg.
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
