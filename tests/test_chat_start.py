"""Starting a campaign in a new place (`bot.chat.start`): check, open, start, and take
the place back when the service refuses, the same for every front end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from bot.chat.followers import Followers
from bot.chat.start import start_in_new_place
from core.errors import CampaignError
from core.model import Campaign, SlackOrigin
from core.ports import ProgressSink
from core.request import CampaignRequest
from tests.fakes import GatedGenerator
from tests.test_chat_followers import Recorder


@dataclass
class Places:
    """A NewPlace that records what the flow asked of it; place ids count up."""

    opens: bool = True
    said: list[str] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    withdrawn: list[tuple[int, str | None]] = field(default_factory=list)
    shown: Recorder = field(default_factory=Recorder)

    async def refused(self, error: CampaignError) -> None:
        self.said.append(str(error))

    async def open(self) -> int | None:
        if not self.opens:
            self.said.append("nowhere to post")
            return None
        self.opened.append(len(self.opened) + 1)
        return self.opened[-1]

    def surface(self, place: int) -> Recorder:
        return self.shown

    async def withdraw(self, place: int, error: CampaignError | None) -> None:
        self.withdrawn.append((place, None if error is None else str(error)))


def cats(products: int = 1) -> CampaignRequest:
    return CampaignRequest(theme="cats", products=products, videos=False)


async def test_a_started_campaign_is_followed_in_its_new_place(make_service) -> None:
    service = make_service(GatedGenerator(open_all=True))
    followers = Followers(service, min_interval_s=0.0)
    new = Places()
    origins: list[int] = []

    async def run(place: int, sinks: Sequence[ProgressSink]) -> Campaign:
        origins.append(place)
        return await service.submit(cats(), sinks, origin=SlackOrigin(channel="C1", ts=str(place)))

    check = lambda: service.check(cats())  # noqa: E731
    started = await start_in_new_place(followers, new, run, check=check)
    assert started is not None
    campaign, place = started
    assert place == 1 and origins == [1] and campaign.origin == SlackOrigin(channel="C1", ts="1")
    assert new.said == [] and new.withdrawn == []
    await service.wait(campaign.id)
    await followers.aclose(5.0)


async def test_a_refused_check_opens_nothing(make_service) -> None:
    service = make_service(GatedGenerator(open_all=True), max_products=1)
    new = Places()

    async def run(place: int, sinks: Sequence[ProgressSink]) -> Campaign:
        raise AssertionError("never started")

    followers = Followers(service, min_interval_s=0.0)
    check = lambda: service.check(cats(2))  # noqa: E731
    assert await start_in_new_place(followers, new, run, check=check) is None
    ((said,),) = [new.said]
    assert "too many" in said and new.opened == []


async def test_nowhere_to_post_starts_nothing(make_service) -> None:
    service = make_service(GatedGenerator(open_all=True))
    new = Places(opens=False)
    followers = Followers(service, min_interval_s=0.0)

    async def run(place: int, sinks: Sequence[ProgressSink]) -> Campaign:
        raise AssertionError("never started")

    assert await start_in_new_place(followers, new, run) is None
    assert new.said == ["nowhere to post"] and list(await service.history(5)) == []


async def test_a_refusal_after_opening_takes_the_place_back(make_service) -> None:
    service = make_service(GatedGenerator(open_all=True), max_products=1)
    followers = Followers(service, min_interval_s=0.0)
    new = Places()

    async def run(place: int, sinks: Sequence[ProgressSink]) -> Campaign:
        return await service.submit(cats(2), sinks)  # submit finds the problem

    assert await start_in_new_place(followers, new, run) is None
    ((place, why),) = new.withdrawn
    assert place == 1 and why is not None and "too many" in why
    assert list(await service.history(5)) == []


async def test_an_unexpected_failure_takes_the_place_back_and_is_raised(make_service) -> None:
    service = make_service(GatedGenerator(open_all=True))
    followers = Followers(service, min_interval_s=0.0)
    new = Places()

    async def run(place: int, sinks: Sequence[ProgressSink]) -> Campaign:
        raise RuntimeError("the database is gone")

    with pytest.raises(RuntimeError, match="database"):
        await start_in_new_place(followers, new, run)
    assert new.withdrawn == [(1, None)]
