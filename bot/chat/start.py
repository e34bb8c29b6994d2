"""Starting a new campaign in a place of its own, for every chat front end, once.

    check  -> a refusal (blocklist, quota) is told to the user only; nothing is posted
    open   -> the status message (Slack: the parent, Discord: plus a thread on it)
    start  -> the service call, followed on that place (`Followers.start`)
    undo   -> the service refused after all: the front end takes the place back
              (Slack edits the parent into the refusal, Discord deletes both)

A front end supplies the steps that speak its platform as a `NewPlace` built
for the one command (it knows the channel and how to answer the user); the
order, and what happens when a step fails, live only here.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from bot.chat.followers import Followers
from bot.chat.surface import ChatSurface
from core.errors import CampaignError
from core.model import Campaign
from core.ports import ProgressSink

P = TypeVar("P")
Check = Callable[[], Awaitable[object]]  # e.g. service.check with the request bound


class NewPlace(Protocol[P]):
    """The platform's side of starting a campaign in a new place (`P`: its ids)."""

    async def refused(self, error: CampaignError) -> None:
        """Tell the user why the campaign may not start (nothing was posted)."""
        ...

    async def open(self) -> P | None:
        """Post the status message (and thread); None once the user is told why not."""
        ...

    def surface(self, place: P) -> ChatSurface:
        """Where the campaign's follower posts in this place."""
        ...

    async def withdraw(self, place: P, error: CampaignError | None) -> None:
        """Take the place back after the start failed (`error`: the service's refusal,
        None: an unexpected failure, which is raised on afterwards)."""
        ...


async def start_in_new_place(
    followers: Followers,
    new: NewPlace[P],
    run: Callable[[P, Sequence[ProgressSink]], Awaitable[Campaign]],
    *,
    check: Check | None = None,
) -> tuple[Campaign, P] | None:
    """Check, open a place, and start `run(place, sinks)` followed there.

    Returns the campaign and its place, or None when it did not start (the
    user has been told why and no place is left behind).
    """
    if check is not None:
        try:
            await check()
        except CampaignError as exc:
            await new.refused(exc)
            return None
    place = await new.open()
    if place is None:
        return None
    try:
        campaign = await followers.start(new.surface(place), functools.partial(run, place))
    except CampaignError as exc:
        await new.withdraw(place, exc)
        return None
    except Exception:
        await new.withdraw(place, None)
        raise
    return campaign, place
