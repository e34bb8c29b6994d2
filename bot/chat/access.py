"""Who may do what, for every chat front end: use the bot here, see a campaign,
and control it (cancel, retry).

A front end reads a `Viewer` off its payload (Slack: user and channel, the
admins from SLACK_ADMINS; Discord: member, server and channel, Manage Server)
and asks these functions; the rules themselves live only here:

    use      the channel allowlist (empty: every channel), then the member
             allowlist (empty: everyone; admins and managers always pass)
    see      the requester, an admin, or anyone in the campaign's own place
             (Slack: its channel; Discord: its server)
    control  the requester, an admin, or a manager of the campaign's own place
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from core.errors import CampaignNotFound
from core.model import Campaign
from core.service import CampaignService


@dataclass(frozen=True)
class Viewer:
    """Who asks, and from where."""

    requester: str  # as campaigns store it: "slack:U1", "discord:42"
    here: Mapping[str, str]  # origin keys naming this place, e.g. platform and channel
    admin: bool = False  # a bot admin everywhere (Slack: SLACK_ADMINS)
    manager: bool = False  # manages this place (Discord: Manage Server in this server)
    channels: frozenset[str] = field(default_factory=frozenset)  # the channel (and its parent)
    groups: frozenset[str] = field(default_factory=frozenset)  # user id or role ids, for allowlists


@dataclass(frozen=True)
class Allowlist:
    """Where and for whom the bot is enabled; an empty set allows all."""

    channels: frozenset[str] = frozenset()
    members: frozenset[str] = frozenset()


def blocked_by(viewer: Viewer, allow: Allowlist) -> Literal["channel", "member"] | None:
    """Which allowlist keeps this viewer out here, or None if it may use the bot."""
    if allow.channels and not viewer.channels & allow.channels:
        return "channel"
    privileged = viewer.admin or viewer.manager
    if allow.members and not privileged and not viewer.groups & allow.members:
        return "member"
    return None


def is_here(viewer: Viewer, campaign: Campaign) -> bool:
    """Whether the campaign was started in the viewer's place (channel or server)."""
    origin = campaign.origin.to_json()
    return bool(viewer.here) and all(origin.get(k) == v for k, v in viewer.here.items())


def may_see(viewer: Viewer, campaign: Campaign) -> bool:
    """The requester, an admin, or anyone where the campaign was started."""
    return _owns(viewer, campaign) or viewer.admin or is_here(viewer, campaign)


def may_control(viewer: Viewer, campaign: Campaign) -> bool:
    """The requester, an admin, or a manager of the place where it was started."""
    mine = _owns(viewer, campaign) or viewer.admin
    return mine or (viewer.manager and is_here(viewer, campaign))


async def find_visible(
    service: CampaignService, viewer: Viewer, campaign_id: str
) -> Campaign | None:
    """The campaign if this viewer may see it; None alike for an unknown id and someone
    else's campaign, so ids leak nothing."""
    try:
        campaign = await service.get(campaign_id)
    except CampaignNotFound:
        return None
    return campaign if may_see(viewer, campaign) else None


def _owns(viewer: Viewer, campaign: Campaign) -> bool:
    return bool(campaign.requester) and campaign.requester == viewer.requester
