"""Screening before spend: the blocklist stops a request before any provider call.

A blocked request reaches neither the planner nor the generator (both record
every call), stores no campaign and leaves exactly one audit line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import AppSettings
from core.errors import ConfigError, RequestBlocked
from core.model import CampaignStatus, SlackOrigin
from core.plan_json import plan_prompt
from core.planner import OfflinePlanner
from core.ports import OnPlan, PlanContext, Plans
from core.quotas import AuditEvent
from core.request import CampaignRequest
from core.screening import Blocklist
from core.settings import CoreSettings
from tests.fakes import GatedGenerator
from tests.fakes.audit import audit_entries


class RecordingPlanner:
    """The offline plans, and every request it was asked to plan (with its LLM prompt)."""

    name = "recording"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def plan(
        self,
        request: CampaignRequest,
        ctx: PlanContext | None = None,
        on_plan: OnPlan | None = None,
    ) -> Plans:
        self.prompts.append(plan_prompt(request))
        return await OfflinePlanner().plan(request, ctx, on_plan)


BLOCKLIST = Blocklist.parse("voldemort, dark arts, re:\\bkill(s|ed|ing)?\\b")


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("Voldemort mugs", "voldemort"),
        ("VOLDEMORT", "voldemort"),
        ("ｖｏｌｄｅｍｏｒｔ fan art", "voldemort"),  # full-width letters
        ("vol\u200bdemort", "voldemort"),  # a zero-width space inside the word
        ("defence against the dark\n arts", "dark arts"),
        ("how to KILL time", "re:\\bkill(s|ed|ing)?\\b"),
        ("voldemort's cat", "voldemort"),
    ],
)
def test_words_phrases_and_patterns_match(text: str, entry: str) -> None:
    assert BLOCKLIST.match(text) == entry


@pytest.mark.parametrize("text", ["voldemorts", "skilled cats", "darkarts", "dark side", ""])
def test_word_boundaries_are_respected(text: str) -> None:
    assert BLOCKLIST.match(text) is None


def test_blocked_message_names_the_field_and_hides_the_list() -> None:
    request = CampaignRequest(theme="cute cats", audience="dark arts students")
    with pytest.raises(RequestBlocked) as blocked:
        BLOCKLIST.screen(request)
    assert blocked.value.field == "audience" and blocked.value.entry == "dark arts"
    text = str(blocked.value)
    assert text.startswith("audience: not allowed") and "nothing was started" in text
    assert "dark" not in text and "voldemort" not in text and "kill" not in text
    assert "voldemort" not in repr(BLOCKLIST) and "voldemort" not in repr(
        CoreSettings(blocklist=BLOCKLIST)
    )
    BLOCKLIST.screen(CampaignRequest(theme="cute cats", audience="students"))  # passes


async def test_a_blocked_request_reaches_no_provider(service_on) -> None:
    gen = GatedGenerator(open_all=True)
    planner = RecordingPlanner()
    async with service_on(gen, planner=planner, blocklist=BLOCKLIST) as service:
        origin = SlackOrigin(channel="C1", team="T1")
        with pytest.raises(RequestBlocked, match=r"^theme: "):
            await service.submit(
                CampaignRequest(theme="Voldemort merch", products=3, videos=True),
                requester="slack:U1",
                origin=origin,
            )
        assert planner.prompts == [] and gen.calls == [] and gen.spent == []
        assert await service.history(10) == []
        (entry,) = await audit_entries(service.store)
        assert entry.event is AuditEvent.BLOCKED and entry.campaign_id is None
        assert entry.reason == "theme matched blocklist entry 'voldemort'"
        assert (entry.who.requester, entry.who.channel, entry.who.guild) == (
            "slack:U1",
            "slack:C1",
            "slack:T1",
        )
        assert entry.theme == "Voldemort merch" and entry.estimate_usd == 0.06
        with pytest.raises(RequestBlocked, match=r"^theme: "):  # the terminal is screened too
            await service.check(CampaignRequest(theme="killing time"))
        assert len(await audit_entries(service.store)) == 2
        fine = await service.submit(CampaignRequest(theme="retro cats", audience="gamers"))
        assert (await service.wait(fine.id)).status is CampaignStatus.SUCCEEDED
    # The planner's prompt holds the screened text verbatim: screening the request covers it.
    assert "retro cats" in planner.prompts[0] and "gamers" in planner.prompts[0]


def test_blocklist_from_env_and_file(tmp_path: Path) -> None:
    listed = tmp_path / "blocklist.txt"
    listed.write_text("# one entry a line\n\nre:foo,bar\n  spoilers  \n", encoding="utf-8")
    env = {"CAMPAIGN_BLOCKLIST": "alpha, beta gamma,", "CAMPAIGN_BLOCKLIST_FILE": str(listed)}
    blocklist = AppSettings.from_mapping(env).core.blocklist
    assert blocklist.entries == ("alpha", "beta gamma", "re:foo,bar", "spoilers")
    assert blocklist.match("a foo,bar b") == "re:foo,bar"
    assert len(AppSettings.from_mapping({}).core.blocklist) == 0
    with pytest.raises(ConfigError, match=r"CAMPAIGN_BLOCKLIST=.*bad pattern"):
        AppSettings.from_mapping({"CAMPAIGN_BLOCKLIST": "re:(unclosed"})
    with pytest.raises(ConfigError, match=r"CAMPAIGN_BLOCKLIST_FILE=.*cannot be read"):
        AppSettings.from_mapping({"CAMPAIGN_BLOCKLIST_FILE": str(tmp_path / "missing.txt")})
