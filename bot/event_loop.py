"""The event loop the bot runs on: uvloop's where it is installed, else asyncio's.

Everything the bot does waits on the network or the database, and in a burst (twenty
products handing their images on to their videos at once) what the last product waits
behind is the loop's own work: callbacks, socket reads and writes, timers. uvloop does
that work in C. The code is the same on either loop: the tests run on asyncio's, and on
uvloop's wherever they start bot.py as a process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop maker, or None (asyncio's default) where uvloop is missing."""
    try:
        import uvloop
    except ImportError:  # not on every platform (Windows): asyncio's loop does the same work
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new loop (see the module doc), like `asyncio.run`."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
