"""Cancel requests (and webhooks) announced with LISTEN/NOTIFY, so the owning replica acts
at once.

A Replicate webhook may land on any replica; the one that has no step waiting
for it sends NOTIFY on PREDICTIONS with the prediction's id, and the owner's
listener nudges its poll of that prediction (`on_prediction`).

`request_cancel` sets the flag and sends NOTIFY on CHANNEL with the campaign
id as payload (delivered at commit). `CancelNotices` keeps one connection of
its own listening (started on first use, reconnected if it drops) and wakes
whoever waits for that campaign. A notice is lost while the listener is
disconnected, so the keep-alive's poll of the flag stays: `wait_cancel`
returns at its timeout in any case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from storage.postgres.connection import connect, redact, scrub

log = logging.getLogger(__name__)
CHANNEL = "campaign_cancel"
PREDICTIONS = "prediction_done"  # a webhook landed on another replica: poll it now
RECONNECT_S = 1.0
EARLY_KEPT = 1000  # notices that came while nobody waited, kept for the next wait


class CancelNotices:
    """This process's listener on CHANNEL, and the waits it cuts short."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._early: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        # Told the id of a prediction whose webhook another replica received (see PgShared).
        self.on_prediction: Callable[[str], None] | None = None

    async def listen(self) -> None:
        """Start listening (if not yet) and wait until the listener is connected."""
        self._start()
        await self.listening.wait()

    async def wait_cancel(self, campaign_id: str, timeout_s: float) -> None:
        """Return after `timeout_s`, or as soon as a cancel of the campaign is announced."""
        self._start()
        if campaign_id in self._early:
            self._early.discard(campaign_id)
            return
        event = asyncio.Event()
        self._waiters.setdefault(campaign_id, set()).add(event)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await event.wait()
        finally:
            waiting = self._waiters.get(campaign_id, set())
            waiting.discard(event)
            if not waiting:
                self._waiters.pop(campaign_id, None)

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="cancel-notices")

    def _noticed(self, campaign_id: str) -> None:
        waiting = self._waiters.get(campaign_id)
        if waiting:
            for event in waiting:
                event.set()
            return
        if len(self._early) >= EARLY_KEPT:
            self._early.clear()
        self._early.add(campaign_id)

    def start(self) -> None:
        """Listen from now on (e.g. for predictions, before any campaign waits)."""
        self._start()

    def _prediction(self, prediction_id: str) -> None:
        if self.on_prediction is not None:
            try:
                self.on_prediction(prediction_id)
            except Exception:  # a nudge is an optimisation: the owner's poll finds it anyway
                log.exception("could not act on a prediction notice")

    async def _listen(self) -> None:
        told = False  # an outage is logged once, not at every reconnect attempt
        while True:
            try:
                conn = await connect(self._url)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {PREDICTIONS}")
                    self.listening.set()
                    told = False
                    async for notice in conn.notifies():
                        if notice.channel == PREDICTIONS:
                            self._prediction(notice.payload)
                        else:
                            self._noticed(notice.payload)
            except Exception as exc:  # the database went away: poll until it is back
                if not told:
                    log.warning(
                        "cancel notices from %s interrupted (the poll goes on): %s",
                        redact(self._url),
                        scrub(str(exc), self._url),
                    )
                told = True
            finally:
                self.listening.clear()
            await asyncio.sleep(RECONNECT_S)
