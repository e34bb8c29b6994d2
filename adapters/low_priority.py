"""Imported first by the CPU pool's forkserver: it, and every worker forked from it, run at
a lower CPU priority (nice +10), as do the ffmpeg processes they start.

Pictures (the contact sheet, reel parts, Ken Burns clips) are background work; the bot's
event loop, which creates predictions and delivers products, must never wait behind them
for a core. Only the forkserver imports this module (it is named in its preload list):
importing it anywhere else would lower that process's priority too.
"""

from __future__ import annotations

import contextlib
import os

NICE = 10

with contextlib.suppress(OSError, AttributeError):  # not on every platform
    os.nice(NICE)
