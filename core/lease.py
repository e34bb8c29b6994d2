"""Who runs a campaign: owner ids, leases, and telling a dead owner from a live one.

A process that runs a campaign owns it: its owner id ("host:pid:tag") is
stored on the campaign with a heartbeat. The lease lapses `lease_s` after
the last beat, or at once when the owner's process is gone from this very
host (its pid no longer exists, or is a zombie): then another process may
take the campaign over. A process can also release a campaign on purpose (a
deploy hands over), which frees it at once. `Ownership` is this process's
side of the leases (claim, beat, release, the cancel flag); `Stop` is one
run's: whether it is being handed over (keep its predictions running) and
until when it surely still holds the lease.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.model import Campaign, Lease
from core.store_ports import CampaignLeases, CancelNotices

NOBODY_YET_S = 10.0  # a campaign just created is its creator's to claim for this long
SURE_SHARE = 0.8  # of the lease: a process that could not beat for longer spends nothing


def new_owner() -> str:
    """A unique owner id for this process: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def dead_here(owner: str | None) -> bool:
    """Whether `owner` is a process of this host that no longer runs."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@dataclass
class Stop:
    """How a campaign's run is being stopped, and whether it may still spend.

    `keep`: leave its predictions running (handed over or taken over).
    `valid_until`: monotonic time until which this process surely holds the
    lease (its last successful heartbeat plus the lease, less a margin).
    """

    keep: bool = False
    valid_until: float = float("inf")

    def may_spend(self) -> bool:
        """Whether a paid request may go out now."""
        return not self.keep and time.monotonic() < self.valid_until


class Ownership:
    """This process's leases: one owner id that claims, beats and releases campaigns."""

    def __init__(
        self, leases: CampaignLeases, lease_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.leases = leases
        self.lease_s = lease_s
        self.clock = clock
        # Stored with a heartbeat so that another process can tell a live
        # campaign from one whose process died.
        self.owner = new_owner()

    async def claim(self, campaign_id: str, replacing: str | None = None) -> bool:
        """Take the campaign unless a live owner holds it (`replacing`: a dead one's)."""
        now = self.clock()
        stale_before = now - self.lease_s
        return await self.leases.claim(campaign_id, self.owner, now, stale_before, replacing)

    def fresh_stop(self) -> Stop:
        """The stop state of a run that has just claimed its campaign."""
        return Stop(valid_until=time.monotonic() + self.lease_s * SURE_SHARE)

    async def beat(self, campaign_id: str, stop: Stop) -> bool:
        """Beat the campaign's heartbeat and extend `stop`; False once another owns it."""
        beat_at = time.monotonic()
        if not await self.leases.heartbeat(campaign_id, self.owner, self.clock()):
            return False
        stop.valid_until = beat_at + self.lease_s * SURE_SHARE
        return True

    async def release(self, campaign_id: str) -> None:
        """Give the campaign up for the next owner (a no-op if another owns it now)."""
        await self.leases.release(campaign_id, self.owner)

    async def cancel_requested(self, campaign_id: str) -> bool:
        """Whether another process flagged the campaign for cancellation."""
        return await self.leases.cancel_requested(campaign_id)

    async def wait_cancel(self, campaign_id: str, timeout_s: float) -> None:
        """Wait `timeout_s` between polls, cut short if the store announces a cancel."""
        if isinstance(self.leases, CancelNotices):
            await self.leases.wait_cancel(campaign_id, timeout_s)
        else:
            await asyncio.sleep(timeout_s)


@dataclass(frozen=True)
class Held:
    """An unfinished campaign that a live process still runs."""

    campaign: Campaign
    owner: str
    free_in_s: float  # until its lease lapses, if that process stops beating


@dataclass(frozen=True)
class ResumeReport:
    """What a resume found."""

    resumed: list[Campaign]  # taken over by this process and now running here
    held: list[Held]  # run by a live process
    skipped: list[Campaign]  # orphans this process does not take (another front end's)
    reels: list[Campaign] = field(default_factory=list)  # finished; their owed reel made here

    @property
    def nothing_to_do(self) -> bool:
        """Neither resumed, held nor made a reel of anything."""
        return not self.resumed and not self.held and not self.reels


@dataclass(frozen=True)
class Verdict:
    """One lease as a resumer sees it."""

    lease: Lease
    free: bool  # may be taken over now
    dead_owner: str | None  # the owner whose process is gone (taken over at once)
    free_in_s: float


def judge(leases: Sequence[Lease], me: str, now: float, lease_s: float) -> list[Verdict]:
    """Which unfinished campaigns are free to take over, and when the others will be."""
    verdicts = []
    for lease in leases:
        if lease.owner == me:
            continue
        creating = lease.owner is None and lease.heartbeat_at is None  # its creator claims it
        if creating and now - lease.created_at < NOBODY_YET_S:
            continue
        dead = lease.owner if dead_here(lease.owner) else None
        beat = lease.heartbeat_at or 0.0
        free_in = max(0.0, beat + lease_s - now)
        verdicts.append(Verdict(lease, dead is not None or free_in <= 0, dead, free_in))
    return verdicts
