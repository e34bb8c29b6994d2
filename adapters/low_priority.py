"""Imported first by the CPU pool's forkserver: it, and every worker forked from it, run only
when a core is otherwise idle (Linux `SCHED_IDLE`; elsewhere nice +10), as do the ffmpeg
processes they start.

Pictures (the contact sheet, reel parts, Ken Burns clips) are background work; the bot's
event loop, which creates predictions and delivers products, must never wait behind them
for a core. Nice +10 was not enough: on a 2-core machine two workers drawing a contact
sheet still delayed the loop's wake-ups by several milliseconds while twenty products
handed their images on to their videos. A `SCHED_IDLE` process takes a core only when no
ordinary process wants it. Only the forkserver imports this module (it is named in its
preload list): importing it anywhere else would lower that process's priority too.
"""

from __future__ import annotations

import contextlib
import os

NICE = 10  # where SCHED_IDLE is missing


try:  # Linux only
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
except (OSError, AttributeError):
    with contextlib.suppress(OSError, AttributeError):  # not on every platform
        os.nice(NICE)
