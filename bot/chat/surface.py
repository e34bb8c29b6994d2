"""The chat-surface protocol: the four things a campaign's place in a chat does.

A place is a status message plus a thread: Slack's `SlackThread` (parent
message and its thread) and Discord's `DiscordTarget` (status message and the
thread opened on it) implement it; `ChatProgress` drives either one.
"""

from __future__ import annotations

from typing import Protocol

from core.model import Campaign, Product
from core.progress import CampaignSnapshot


class ChatSurface(Protocol):
    """Where one campaign is shown in a chat."""

    async def render_status(self, snapshot: CampaignSnapshot) -> None:
        """Show this snapshot on the status message."""
        ...

    async def post_product(self, campaign: Campaign, product: Product) -> None:
        """Post one finished product (its files, or why there are none) into the thread."""
        ...

    async def post_summary(self, campaign: Campaign) -> None:
        """Post the campaign's outcome in the thread (at its last product)."""
        ...

    async def post_reel(self, campaign: Campaign, reel: str | None, failure: str) -> None:
        """Post the reel (`reel`, a path) after the summary, or why there is none."""
        ...
