"""The one access policy: who may use the bot here, see a campaign, and control it,
for the viewers Slack and Discord build from their payloads."""

from __future__ import annotations

from bot.chat.access import Allowlist, Viewer, blocked_by, may_control, may_see
from bot.slack_ui.settings import SlackSettings
from core.model import Campaign, CampaignStatus, origin_from_json
from core.request import CampaignRequest


def campaign(requester: str, **origin: str) -> Campaign:
    return Campaign(
        id="c1",
        request=CampaignRequest(theme="cats", products=1),
        status=CampaignStatus.RUNNING,
        created_at=0.0,
        executor="local",
        generator="offline",
        requester=requester,
        origin=origin_from_json(origin),
    )


SLACK = SlackSettings(admins=frozenset({"UADMIN"}))
IN_C1 = campaign("slack:U1", platform="slack", channel="C1", ts="1.0")
IN_GUILD = campaign("discord:1", platform="discord", guild="42", channel="7")


def discord(user: str, guild: str, *, manager: bool = False) -> Viewer:
    here = {"platform": "discord", "guild": guild}
    return Viewer(requester=f"discord:{user}", here=here, manager=manager)


def test_slack_requester_admin_or_its_channel_may_see() -> None:
    assert may_see(SLACK.viewer("U1", "C9"), IN_C1)  # the requester, anywhere
    assert may_see(SLACK.viewer("UADMIN", "C9"), IN_C1)  # an admin, anywhere
    assert may_see(SLACK.viewer("U2", "C1"), IN_C1)  # anyone in its channel
    assert not may_see(SLACK.viewer("U2", "C9"), IN_C1)
    assert not may_see(SLACK.viewer("U2", "C1"), IN_GUILD)  # Discord's: never "here" on Slack


def test_slack_requester_or_admin_may_control() -> None:
    assert may_control(SLACK.viewer("U1", "C9"), IN_C1)
    assert may_control(SLACK.viewer("UADMIN", "C9"), IN_C1)
    assert not may_control(SLACK.viewer("U2", "C1"), IN_C1)  # its channel is not enough


def test_discord_requester_or_its_server_may_see() -> None:
    assert may_see(discord("1", "99"), IN_GUILD)
    assert may_see(discord("2", "42"), IN_GUILD)
    assert not may_see(discord("2", "99"), IN_GUILD)
    assert not may_see(discord("2", "99", manager=True), IN_GUILD)  # manager of another server


def test_discord_requester_or_a_manager_of_its_server_may_control() -> None:
    assert may_control(discord("1", "99"), IN_GUILD)
    assert may_control(discord("2", "42", manager=True), IN_GUILD)
    assert not may_control(discord("2", "42"), IN_GUILD)
    assert not may_control(discord("2", "99", manager=True), IN_GUILD)


def test_nobody_owns_a_campaign_without_a_requester() -> None:
    anonymous = Viewer(requester="", here={})
    assert not may_see(anonymous, campaign("", platform="slack", channel="C1"))


def test_allowlists_channel_first_then_members_but_admins_and_managers_pass() -> None:
    allow = Allowlist(channels=frozenset({"C1"}), members=frozenset({"U1", "R1"}))
    assert (
        blocked_by(
            Viewer("slack:U1", {}, channels=frozenset({"C1"}), groups=frozenset({"U1"})), allow
        )
        is None
    )
    assert blocked_by(Viewer("slack:U1", {}, channels=frozenset({"C2"})), allow) == "channel"
    thread = Viewer("discord:5", {}, channels=frozenset({"T9", "C1"}))  # a thread of C1
    assert blocked_by(thread, allow) == "member"
    assert blocked_by(Viewer("slack:U2", {}, admin=True, channels=frozenset({"C1"})), allow) is None
    assert blocked_by(Viewer("d:5", {}, manager=True, channels=frozenset({"C1"})), allow) is None
    assert blocked_by(Viewer("slack:U2", {}), Allowlist()) is None  # empty lists allow all
    assert SLACK.may_use("anyone", "anywhere")
