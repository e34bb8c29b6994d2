"""What every use case of one CampaignService shares, and the knobs it is made with.

`ServiceContext` holds the ports (store, generator, executor), the knobs
(`ServiceConfig`), the clock, this process's leases (`Ownership`) and the
campaigns it runs (`Runs`); the use cases in core/submit.py, core/after.py and
core/cancel.py each get the same one. It prices requests (`estimate`), opens
the spend guard (`gate`), starts a claimed campaign and waits for one.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.audit import Gate
from core.errors import RequestBlocked
from core.folders import campaign_folder
from core.lease import Ownership
from core.model import Campaign, StepName
from core.pictures import Renderers, as_pictures
from core.pipeline import step_names
from core.ports import Executor, Generator, Planner, ProgressSink
from core.reel import Reels
from core.request import CampaignRequest, motion_prompt
from core.run import RunContext, Runs
from core.scheduler import Scheduler
from core.store_ports import CampaignStore

if TYPE_CHECKING:  # pydantic loads with the settings, not with the service
    from core.settings import CoreSettings


@dataclass
class ServiceConfig:
    """Knobs of the service that are not ports: the core's settings section (data folder,
    products limit, lease, cancel poll and heartbeat, quotas, blocklist), and what the
    wiring adds."""

    settings: CoreSettings
    # The models the generator's price table knows, per kind ("text", "image",
    # "video") as `owner/name`: a request naming any other model of a listed
    # kind is refused, so no estimate or cost is a guess. Empty: no check (a
    # generator that ignores models, like the offline one).
    priced_models: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimate:
    """What a request or an action will cost before it starts."""

    steps: int
    cost_usd: float
    seconds: float | None = None  # how long it typically takes, where known (actions)


class ServiceContext:
    """The ports, knobs, leases and runs the use cases of one service share."""

    def __init__(
        self,
        *,
        store: CampaignStore,
        planner: Planner,
        generator: Generator,
        executor: Executor,
        scheduler: Scheduler,
        sheet: Renderers,
        config: ServiceConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.generator = generator  # runs on the executor; the use cases read its name and prices
        self.executor = executor
        self.config = config
        self.clock = clock
        self.ownership = Ownership(store, config.settings.lease_s, clock)
        beat_s = min(config.settings.cancel_poll_s, config.settings.lease_s / 3)
        folder = functools.partial(campaign_folder, config.settings.data_dir)
        reel, lanes = as_pictures(sheet).reel, config.settings.limits.cpu - 1
        self.reels = Reels(reel, executor, store, self.ownership, folder, beat_s, lanes)
        self.runs = Runs(
            RunContext(
                records=store,
                ownership=self.ownership,
                planner=planner,
                executor=executor,
                scheduler=scheduler,
                sheet=sheet,
                data_dir=config.settings.data_dir,
                beat_s=beat_s,
                clock=clock,
                finished=self._audit_finished,
                reels=self.reels,
                price=generator.price_usd,
                typical=generator.typical_s,
            )
        )

    def estimate(self, request: CampaignRequest) -> Estimate:
        """Steps and expected cost of a request, before anything is started."""
        models = {StepName.IMAGE: request.models.image, StepName.VIDEO: request.models.video}
        per_product = [(s, self.generator.price_usd(s, models[s])) for s in step_names(request)]
        return Estimate(
            steps=request.products * len(per_product),
            cost_usd=round(request.products * sum(p for _, p in per_product), 6),
        )

    def gate(self) -> Gate:
        """Screening, quotas and the audit ledger (core/audit.py)."""
        config = self.config
        return Gate(
            self.store,
            quotas=config.settings.quotas,
            blocklist=config.settings.blocklist,
            priced_models=config.priced_models,
            clock=self.clock,
        )

    def prompt(self, prompt: str | None) -> str | None:
        """A checked motion prompt (InvalidRequest, RequestBlocked), or None for the plan's."""
        if prompt is None or not prompt.strip():
            return None
        checked = motion_prompt(prompt)
        entry = self.config.settings.blocklist.match(checked)
        if entry is not None:
            raise RequestBlocked("prompt", entry)
        return checked

    def folder(self, campaign_id: str) -> Path:
        """Where the campaign's files go."""
        return self.runs.ctx.folder(campaign_id)

    async def claim_and_start(self, campaign: Campaign, sinks: Sequence[ProgressSink]) -> None:
        """Take the lease of a just-stored campaign and run it here."""
        await self.ownership.claim(campaign.id)
        self.runs.start(campaign, sinks)

    async def wait(self, campaign_id: str) -> Campaign:
        """The campaign once it is finished (now, if it is not running here)."""
        run = self.runs.get(campaign_id)
        if run is not None and run.task is not None:
            return await asyncio.shield(run.task)
        return await self.store.get(campaign_id)

    async def _audit_finished(self, campaign: Campaign) -> None:
        """The audit line of a campaign that has just been finalized."""
        await self.gate().finished(campaign, self.estimate(campaign.request).cost_usd)
