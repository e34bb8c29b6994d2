"""Leases and fencing: a lost lease stops the run and spends nothing, a hand-over keeps the
predictions running, resume tells dead, released, held and someone else's campaigns apart."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import LeaseLost
from core.lease import Ownership, Stop, dead_here, judge
from core.model import (
    CampaignStatus,
    DiscordOrigin,
    Lease,
    StepName,
    StepRecord,
    StepStatus,
    TerminalOrigin,
)
from core.request import CampaignRequest
from storage.open import Store
from tests.conftest import ServiceFactory
from tests.fakes import GatedGenerator, make_orphan

pytestmark = pytest.mark.both_stores

REQUEST = CampaignRequest(theme="leased cats", products=2, videos=True)


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _owner(pid: int, host: str | None = None) -> str:
    return f"{host or socket.gethostname()}:{pid}:abc123"


async def _images_at_the_provider(store: Store, campaign_id: str) -> None:
    """Wait until every image step has stored its prediction id."""
    for _ in range(3000):
        stored = await store.get(campaign_id)
        if stored.products and all(p.steps[0].provider_id for p in stored.products):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the images never reached the provider")


# --- the store ------------------------------------------------------------------------


@pytest.mark.sqlite_only  # a fake clock's times; PostgreSQL beats on its own (test_postgres)
async def test_fenced_writes_refuse_a_stale_owner(store: Store) -> None:
    cid = await make_orphan(store, TerminalOrigin())
    assert await store.claim(cid, "me", now=100.0, stale_before=0.0)
    step = StepRecord(0, StepName.IMAGE, StepStatus.RUNNING, 1)
    await store.save_step(cid, step, "me")
    assert await store.claim(cid, "them", now=200.0, stale_before=150.0)  # my lease lapsed
    assert not await store.heartbeat(cid, "me", 201.0)
    with pytest.raises(LeaseLost):
        await store.save_step(cid, step.evolve(status=StepStatus.CANCELED), "me")
    with pytest.raises(LeaseLost):
        await store.save_status(cid, CampaignStatus.CANCELED, owner="me")
    stored = await store.get(cid)
    assert stored.status is CampaignStatus.RUNNING
    assert stored.products[0].step(StepName.IMAGE).status is StepStatus.RUNNING  # type: ignore[union-attr]


async def test_release_frees_a_campaign_at_once(store: Store) -> None:
    cid = await make_orphan(store, TerminalOrigin())
    assert await store.claim(cid, "me", now=time.time(), stale_before=0.0)
    await store.release(cid, "someone else")  # not theirs to give
    assert (await store.unfinished())[0].owner == "me"
    await store.release(cid, "me")
    lease = (await store.unfinished())[0]
    assert (lease.owner, lease.heartbeat_at) == (None, 0)


@pytest.mark.sqlite_only  # a fake clock's times; PostgreSQL beats on its own (test_postgres)
async def test_ownership_claims_beats_and_releases_under_one_owner(store: Store) -> None:
    cid = await make_orphan(store, TerminalOrigin())
    clock = [100.0]
    mine = Ownership(store, lease_s=10.0, clock=lambda: clock[0])
    theirs = Ownership(store, lease_s=10.0, clock=lambda: clock[0])
    assert mine.owner != theirs.owner
    assert await mine.claim(cid)
    assert not await theirs.claim(cid)  # my lease is live
    stop = Stop(valid_until=0.0)
    before = time.monotonic()
    clock[0] = 105.0
    assert await mine.beat(cid, stop) and stop.may_spend()
    assert before + 8.0 <= stop.valid_until <= time.monotonic() + 8.0  # 80% of the lease
    clock[0] = 120.0  # my lease lapsed: another process takes over
    assert await theirs.claim(cid)
    stale = Stop(valid_until=0.0)
    assert not await mine.beat(cid, stale) and not stale.may_spend()  # no longer mine
    await mine.release(cid)  # not mine to give
    assert (await store.unfinished())[0].owner == theirs.owner
    await store.request_cancel(cid)
    assert await theirs.cancel_requested(cid)
    await theirs.release(cid)
    assert (await store.unfinished())[0].owner is None


# --- judging leases ---------------------------------------------------------------------


def test_a_dead_process_on_this_host_frees_its_campaigns_at_once() -> None:
    dead, live = _owner(_gone_pid()), _owner(1)  # pid 1 always runs
    assert dead_here(dead) and not dead_here(live)
    assert not dead_here(_owner(_gone_pid(), host="another-host"))  # cannot tell: wait
    now = 1000.0
    leases = [
        Lease("a", dead, now - 1, 0.0),
        Lease("b", live, now - 1, 0.0),
        Lease("c", None, 0.0, 0.0),  # released by a hand-over
        Lease("d", None, None, now - 1),  # just created: its creator claims it
        Lease("e", live, now - 30, 0.0),  # lease lapsed
    ]
    verdicts = {v.lease.campaign_id: v for v in judge(leases, "me", now, 10.0)}
    assert verdicts["a"].free and verdicts["a"].dead_owner == dead
    assert not verdicts["b"].free and verdicts["b"].free_in_s == pytest.approx(9.0)
    assert verdicts["c"].free and verdicts["e"].free and "d" not in verdicts


# --- the service ------------------------------------------------------------------------


async def test_a_lost_lease_stops_the_run_and_cancels_nothing(
    make_service: ServiceFactory, store: Store
) -> None:
    gen = GatedGenerator()
    service = make_service(gen, cancel_poll_s=0.05)
    campaign = await service.submit(REQUEST)
    await _images_at_the_provider(store, campaign.id)
    assert await store.claim(campaign.id, "thief", now=time.time() + 60, stale_before=1e12)
    done = await asyncio.wait_for(service.wait(campaign.id), 30)
    assert sorted(gen.kept) == [(0, "image"), (1, "image")] and gen.canceled == []
    assert done.status is CampaignStatus.RUNNING  # the new owner's to finish
    assert all(s.status is not StepStatus.CANCELED for s in done.steps())
    assert (await store.unfinished())[0].owner == "thief"


async def test_no_paid_call_without_the_lease(make_service: ServiceFactory, store: Store) -> None:
    gen = GatedGenerator(spend_late=True)
    service = make_service(gen, cancel_poll_s=60.0)  # the heartbeat will not notice in time
    request = CampaignRequest(theme="leased cats", products=2)
    campaign = await service.submit(request)
    await gen.wait_started(2)
    gen.open((0, "image"))
    await gen.finished[(0, "image")].wait()
    step = (await store.get(campaign.id)).products[0].step(StepName.IMAGE)
    assert gen.spent == [(0, "image")]
    assert step is not None and step.intent_at is not None  # recorded before the create
    assert await store.claim(campaign.id, "thief", now=time.time() + 60, stale_before=1e12)
    gen.open((1, "image"))  # its create would go out now: the fence refuses it
    done = await asyncio.wait_for(service.wait(campaign.id), 30)
    assert gen.spent == [(0, "image")]  # nothing paid by a process without the lease
    assert done.status is CampaignStatus.RUNNING
    assert done.products[1].steps[0].intent_at is None


async def test_a_hand_over_leaves_predictions_running_and_the_next_owner_finishes(
    make_service: ServiceFactory, store: Store
) -> None:
    first = GatedGenerator()
    service = make_service(first)
    campaign = await service.submit(REQUEST)
    await _images_at_the_provider(store, campaign.id)
    await service.aclose(hand_over=True)
    assert sorted(first.kept) == [(0, "image"), (1, "image")] and first.canceled == []
    lease = (await store.unfinished())[0]
    assert (lease.owner, lease.heartbeat_at) == (None, 0)
    second = GatedGenerator(open_all=True)
    successor = make_service(second)
    report = await successor.resume_orphans()
    assert [c.id for c in report.resumed] == [campaign.id]  # at once: no lease to wait out
    done = await asyncio.wait_for(successor.wait(campaign.id), 30)
    assert done.status is CampaignStatus.SUCCEEDED
    assert second.provider_ids[(0, "image")] == "pred-0-image"  # re-polled, not paid again
    assert (0, "image") not in second.spent


@pytest.mark.sqlite_only  # a fake clock's times; PostgreSQL beats on its own (test_postgres)
async def test_resume_reports_held_and_skips_other_front_ends(
    make_service: ServiceFactory, store: Store
) -> None:
    held = await make_orphan(store, DiscordOrigin())
    live = _owner(1, host="another-host")
    assert await store.claim(held, live, now=time.time(), stale_before=0.0)
    service = make_service(GatedGenerator(open_all=True))
    report = await service.resume_orphans()
    assert report.resumed == [] and [h.campaign.id for h in report.held] == [held]
    assert report.held[0].owner == live and 0 < report.held[0].free_in_s <= 10
    await store.claim(held, live, now=1.0, stale_before=1e12)  # its owner stopped beating
    report = await service.resume_orphans(accept=lambda c: c.platform == "slack")
    assert [c.id for c in report.skipped] == [held] and report.resumed == []
    report = await service.resume_orphans(accept=lambda c: c.platform == "discord")
    assert [c.id for c in report.resumed] == [held]
    assert (await service.wait(held)).status is CampaignStatus.SUCCEEDED


async def test_a_dead_owners_campaign_is_resumed_without_waiting(
    make_service: ServiceFactory, store: Store, tmp_path: Path
) -> None:
    cid = await make_orphan(store, TerminalOrigin())
    assert await store.claim(cid, _owner(_gone_pid()), now=time.time(), stale_before=0.0)
    service = make_service(GatedGenerator(open_all=True))
    report = await service.resume_orphans()
    assert [c.id for c in report.resumed] == [cid] and report.held == []
    assert (await service.wait(cid)).status is CampaignStatus.SUCCEEDED
