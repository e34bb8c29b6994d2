"""Ken Burns clips: an H.264 MP4 pan/zoom over a still image (bundled ffmpeg).

`render_ken_burns` is picklable, synchronous and top-level, for a process
pool or Ray tasks; it writes its output atomically and returns the path.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import tempfile
from collections.abc import Iterator
from typing import IO

import imageio_ffmpeg
from PIL import Image

from adapters.files import atomic_path
from adapters.pictures.text import READ_ERRORS

Rect = tuple[float, float, float, float]
_FFMPEG_TIMEOUT_S = 300.0


def _load_rgb(image_path: str) -> Image.Image:
    if not os.path.isfile(image_path):
        raise FileNotFoundError(f"input image not found: {image_path!r}")
    try:
        with Image.open(image_path) as im:
            return im.convert("RGB")
    except READ_ERRORS as exc:
        raise ValueError(f"cannot read image {image_path!r}: {exc}") from exc


def _ken_burns_rects(width: int, height: int, seed: int) -> tuple[Rect, Rect]:
    """Start and end crop rectangles: one wide shot, one zoomed in near an edge."""
    rng = random.Random(seed)
    side = float(min(width, height))
    wide_s, close_s = side / rng.uniform(1.0, 1.06), side / rng.uniform(1.25, 1.45)
    wide = ((width - wide_s) * rng.random(), (height - wide_s) * rng.random(), wide_s)
    fx, fy = rng.choice((0.1, 0.9)), rng.uniform(0.1, 0.9)
    close = ((width - close_s) * fx, (height - close_s) * fy, close_s)
    a, b = (wide, close) if rng.random() < 0.5 else (close, wide)
    return ((a[0], a[1], a[0] + a[2], a[1] + a[2]), (b[0], b[1], b[0] + b[2], b[1] + b[2]))


def _lerp_rect(a: Rect, b: Rect, t: float) -> Rect:
    x0, y0, x1, y1 = (p + (q - p) * t for p, q in zip(a, b, strict=True))
    return (x0, y0, x1, y1)


def _frames(img: Image.Image, size: int, count: int, seed: int) -> Iterator[bytes]:
    """Raw RGB frames easing (smoothstep) from the start to the end rectangle."""
    if min(img.size) > size * 1.5:
        scale = size * 1.5 / min(img.size)
        new_size = (round(img.width * scale), round(img.height * scale))
        img = img.resize(new_size, Image.Resampling.BILINEAR)
    start, end = _ken_burns_rects(img.width, img.height, seed)
    for i in range(count):
        t = i / (count - 1) if count > 1 else 0.0
        box = _lerp_rect(start, end, t * t * (3 - 2 * t))
        yield img.resize((size, size), Image.Resampling.BILINEAR, box=box).tobytes()


def _ffmpeg_cmd(size: int, fps: int, out: str) -> list[str]:
    raw_in = f"-f rawvideo -pix_fmt rgb24 -s {size}x{size} -r {fps} -i -"
    h264_out = "-an -c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p -movflags +faststart"
    args = f"-y -hide_banner -loglevel error {raw_in} {h264_out} -f mp4".split()
    return [imageio_ffmpeg.get_ffmpeg_exe(), *args, out]


def _feed(stdin: IO[bytes], frames: Iterator[bytes]) -> None:
    """Write frames until done or ffmpeg hangs up (its exit code tells why)."""
    try:
        for frame in frames:
            stdin.write(frame)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdin.close()


def _stderr_tail(err: IO[bytes], lines: int = 8) -> str:
    err.seek(0)
    text = err.read().decode("utf-8", "replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(no output)"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


def _encode(frames: Iterator[bytes], size: int, fps: int, out: str) -> None:
    """Pipe raw frames into ffmpeg; RuntimeError with the stderr tail on failure."""
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                _ffmpeg_cmd(size, fps, out),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        except OSError as exc:
            raise RuntimeError(f"cannot start ffmpeg: {exc}") from exc
        assert proc.stdin is not None
        try:
            _feed(proc.stdin, frames)
            code = proc.wait(timeout=_FFMPEG_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            _kill(proc)
            raise RuntimeError(f"ffmpeg timed out: {_stderr_tail(err)}") from exc
        except BaseException:
            _kill(proc)  # e.g. a frame failed to render: do not leave ffmpeg waiting
            raise
        if code != 0:
            raise RuntimeError(f"ffmpeg failed (exit {code}): {_stderr_tail(err)}")


def render_ken_burns(
    image_path: str,
    out_path: str,
    *,
    seconds: float = 3.0,
    fps: int = 24,
    size: int = 720,
    seed: int = 0,
) -> str:
    """Encode a Ken Burns pan/zoom over the image as an H.264 MP4 (yuv420p, faststart).

    An odd ``size`` is rounded down to even (yuv420p needs even dimensions).
    """
    if seconds <= 0 or fps <= 0 or size < 16:
        raise ValueError(f"need seconds > 0, fps > 0, size >= 16 (got {seconds}, {fps}, {size})")
    img = _load_rgb(image_path)
    size -= size % 2
    count = max(1, round(seconds * fps))
    with atomic_path(out_path) as tmp:
        _encode(_frames(img, size, count, seed), size, fps, tmp)
    return out_path


# ---------------------------------------------------------------- contact sheet
