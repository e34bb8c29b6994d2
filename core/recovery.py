"""Taking over campaigns whose process stopped: once on request, or every `lease_s`.

An owner stopped when its lease lapsed (no heartbeat for `lease_s`), when it
released the campaign (a deploy hands over), or at once when its process is
gone from this host (core/lease.py judges which). A taken-over campaign runs
on here as a `CampaignRun`: finished steps keep their outcome, the others run
again with their stored prediction id or adopt the one their intent points to.
A finished campaign whose owner stopped between its summary and its reel gets
the reel made here (core/reel.py), from its stored clips.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from core.lease import Held, Ownership, ResumeReport, judge
from core.model import Campaign
from core.ports import ProgressSink
from core.reel import Reels
from core.run import Runs
from core.store_ports import CampaignLeases, CampaignRecords

log = logging.getLogger(__name__)

SinksFor = Callable[[Campaign], Sequence[ProgressSink]]
Accept = Callable[[Campaign], bool]  # which orphans a process takes over


def _no_sinks(_campaign: Campaign) -> Sequence[ProgressSink]:
    return ()


def _take_all(_campaign: Campaign) -> bool:
    return True


class Recovery:
    """Finds unfinished campaigns whose owner stopped and starts them on this process."""

    def __init__(
        self,
        records: CampaignRecords,
        leases: CampaignLeases,
        ownership: Ownership,
        runs: Runs,
        reels: Reels,
    ) -> None:
        self.records = records
        self.leases = leases
        self.ownership = ownership
        self.runs = runs
        self.reels = reels
        self._loop: asyncio.Task[None] | None = None

    async def resume(
        self, sinks_for: SinksFor = _no_sinks, accept: Accept = _take_all
    ) -> ResumeReport:
        """Take over every free orphan that `accept`s, and say what is held elsewhere."""
        report = ResumeReport([], [], [])
        ownership = self.ownership
        now = ownership.clock()
        leases = await self.leases.unfinished()
        for verdict in judge(leases, ownership.owner, now, ownership.lease_s):
            campaign_id = verdict.lease.campaign_id
            if campaign_id in self.runs:
                continue
            campaign = await self.records.get(campaign_id)
            if not verdict.free:
                report.held.append(
                    Held(campaign, verdict.lease.owner or "", round(verdict.free_in_s, 1))
                )
            elif not accept(campaign):
                report.skipped.append(campaign)
            elif await ownership.claim(campaign_id, replacing=verdict.dead_owner):
                log.warning("resuming campaign %s, left by a stopped process", campaign_id)
                self.runs.start(campaign, sinks_for(campaign))
                report.resumed.append(campaign)
        await self._reels(report, sinks_for, accept)
        return report

    async def _reels(self, report: ResumeReport, sinks_for: SinksFor, accept: Accept) -> None:
        """Make the reels that stopped owners left owed (quietly skip those a live one makes)."""
        ownership = self.ownership
        if self.reels.fns is None:  # this process makes no reels
            return
        due = await self.leases.reels_due()
        for verdict in judge(due, ownership.owner, ownership.clock(), ownership.lease_s):
            campaign_id = verdict.lease.campaign_id
            if not verdict.free or campaign_id in self.runs or campaign_id in self.reels:
                continue
            campaign = await self.records.get(campaign_id)
            if accept(campaign) and await ownership.claim(campaign_id, verdict.dead_owner):
                log.warning(
                    "making the reel of campaign %s, left by a stopped process", campaign_id
                )
                if self.reels.start(campaign, sinks_for(campaign)):
                    report.reels.append(campaign)

    def start(self, sinks_for: SinksFor = _no_sinks, accept: Accept = _take_all) -> None:
        """Resume now and every `lease_s` from now on, until aclose()."""
        if self._loop is None:
            self._loop = asyncio.create_task(self._resume_loop(sinks_for, accept))

    async def _resume_loop(self, sinks_for: SinksFor, accept: Accept) -> None:
        while True:
            try:
                await self.resume(sinks_for, accept)
            except Exception:  # a locked or broken database: try again next round
                log.exception("resuming orphaned campaigns failed")
            await asyncio.sleep(self.ownership.lease_s)

    async def aclose(self) -> None:
        """Stop resuming."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
