"""Socket Mode: the real AsyncApp and slack-sdk's aiohttp Socket Mode client against a
local fake websocket (apps.connections.open on the fake Web API returns its ws:// URL)."""

from __future__ import annotations

from typing import Any

from bot.slack_ui.app import SlackFrontEnd, socket_mode
from core.model import CampaignStatus
from tests.fakes import GatedGenerator
from tests.fakes.slack_api import APP_TOKEN, FakeSlackApi, SlackHarness, fake_settings, settle


async def test_slash_command_over_socket_mode_runs_a_campaign(make_service: Any) -> None:
    service = make_service(GatedGenerator(open_all=True))
    api = FakeSlackApi()
    slack = fake_settings(await api.start(), signing_secret="")  # Socket Mode signs nothing
    front = SlackFrontEnd(service, slack, max_products=20)
    form = SlackHarness(api, front, "").command_form("socket cats products:2 videos:yes")
    envelope = {
        "envelope_id": "env-1",
        "type": "slash_commands",
        "accepts_response_payload": True,
        "payload": form,
    }
    try:
        async with socket_mode(front, APP_TOKEN):
            ack = await api.socket_send(envelope)
            await api.wait_for(
                lambda: any(
                    "Campaign" in str(c.params.get("initial_comment"))
                    for c in api.of("files.completeUploadExternal")
                )
            )
            await settle(front)
    finally:
        await front.aclose()
        await api.close()
    assert ack["envelope_id"] == "env-1"
    assert "socket cats" in ack["payload"]["text"] and "Estimate: 4 steps" in ack["payload"]["text"]
    assert api.methods()[:2] == ["apps.connections.open", "auth.test"]
    parent = next(c for c in api.of("chat.postMessage") if not c.params.get("thread_ts"))
    ts = parent.answer["ts"]
    completes = api.of("files.completeUploadExternal")
    assert len(completes) == 3 and all(c.params["thread_ts"] == ts for c in completes)
    [campaign] = await service.history(5)
    assert campaign.status is CampaignStatus.SUCCEEDED and campaign.origin.ts == ts
